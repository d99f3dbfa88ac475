#pragma once

#include <signal.h>

namespace dynamo_batcher {

// Routes the process's signals to one waiting thread: SIGTERM and SIGINT
// start the drain, SIGHUP asks for a config reload. The constructor blocks
// the three in the calling thread, so it must run before any thread is
// started (threads inherit the mask): a signal sent during start-up is then
// handled once running, never kills the process, and start-up loops can ask
// StopPending(). SIGPIPE is ignored (a peer closing a socket is an error
// value, not a reason to die).
//
// Thread-safety: Wait from one thread at a time; StopPending from the
// thread that constructed it (pending signals are per thread and process).
//
// Usage:
//   ProcessSignals signals;          // first thing, before threads
//   while ((sig = signals.Wait()) == SIGHUP) reloader.Reload();
//   signals.ExitOnNextStopSignal();  // a second SIGTERM forces exit
class ProcessSignals {
 public:
  ProcessSignals();

  // SIGTERM or SIGINT was sent and not consumed yet.
  bool StopPending() const;
  // Waits for the next SIGTERM, SIGINT or SIGHUP and returns it.
  int Wait();
  // From now on, the next SIGTERM or SIGINT exits the process at once (exit
  // code 1), whatever the drain is waiting for. Starts a detached thread.
  void ExitOnNextStopSignal();

  static const char* Name(int sig);

 private:
  sigset_t stop_;          // SIGTERM, SIGINT
  sigset_t stop_and_hup_;  // and SIGHUP
};

}  // namespace dynamo_batcher
