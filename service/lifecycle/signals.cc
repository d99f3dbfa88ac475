#include "service/lifecycle/signals.h"

#include <pthread.h>
#include <unistd.h>

#include <thread>

#include "service/common/log.h"

namespace dynamo_batcher {

ProcessSignals::ProcessSignals() {
  sigemptyset(&stop_);
  sigaddset(&stop_, SIGTERM);
  sigaddset(&stop_, SIGINT);
  stop_and_hup_ = stop_;
  sigaddset(&stop_and_hup_, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &stop_and_hup_, nullptr);
  signal(SIGPIPE, SIG_IGN);
}

bool ProcessSignals::StopPending() const {
  sigset_t pending;
  sigemptyset(&pending);
  sigpending(&pending);
  return sigismember(&pending, SIGTERM) == 1 || sigismember(&pending, SIGINT) == 1;
}

int ProcessSignals::Wait() {
  int sig = 0;
  while (sigwait(&stop_and_hup_, &sig) != 0) {
  }
  return sig;
}

void ProcessSignals::ExitOnNextStopSignal() {
  std::thread([stop = stop_] {
    int sig = 0;
    while (sigwait(&stop, &sig) != 0) {
    }
    Log(LogLevel::kError, "second signal: exiting without finishing the drain");
    _exit(1);
  }).detach();
}

const char* ProcessSignals::Name(int sig) {
  switch (sig) {
    case SIGTERM:
      return "SIGTERM";
    case SIGINT:
      return "SIGINT";
    case SIGHUP:
      return "SIGHUP";
    default:
      return "signal";
  }
}

}  // namespace dynamo_batcher
