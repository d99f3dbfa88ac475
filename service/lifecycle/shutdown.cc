#include "service/lifecycle/shutdown.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "service/common/log.h"

namespace dynamo_batcher {

bool RunDrain(DrainTarget* target, HealthState* health, const DrainOptions& options,
              uint64_t failed_before, const Clock& clock,
              const std::function<void(absl::Duration)>& sleep) {
  health->BeginShutdown();
  target->StopAccepting();
  Log(LogLevel::kInfo, "signal received; draining",
      {{"signal", options.signal},
       {"drain_timeout", absl::FormatDuration(options.drain_timeout)},
       {"pending_ops", absl::StrCat(target->pending_ops())},
       {"open_streams", absl::StrCat(target->active_streams())}});
  const absl::Time drain_start = clock.Now();
  bool clean = target->DrainBuffered(options.drain_timeout);
  Log(LogLevel::kInfo, "buffered writes drained",
      {{"elapsed", absl::FormatDuration(clock.Now() - drain_start)},
       {"pending_ops", absl::StrCat(target->pending_ops())},
       {"failed_during_drain", absl::StrCat(target->failed_ops() - failed_before)}});
  // Streams finish once every op they read has its result; a message whose
  // read completed just as the drain began may still be submitted here, so
  // the engine keeps running while gRPC shuts down, and drains once more.
  // Shutdown waits for open client connections until its deadline; clients
  // that keep their channel open would cost the whole grace, so it is cut
  // short once no stream or call is left to answer.
  const absl::Time grace_end = clock.Now() + options.server_grace;
  while (!target->idle() && clock.Now() < grace_end) sleep(options.poll);
  const absl::Time now = clock.Now();
  const absl::Time deadline =
      target->idle() ? std::min(grace_end, now + options.idle_grace) : grace_end;
  target->ShutdownServer(std::max(deadline - now, absl::ZeroDuration()));
  Log(LogLevel::kInfo, "gRPC server stopped",
      {{"elapsed", absl::FormatDuration(clock.Now() - drain_start)}});
  if (target->pending_ops() > 0) {
    clean = target->DrainBuffered(options.final_drain) && clean;
  }
  return clean && target->pending_ops() == 0 && target->failed_ops() == failed_before;
}

absl::Duration ShutdownHardLimit(absl::Duration drain_timeout, absl::Duration call_timeout) {
  return drain_timeout + call_timeout + absl::Seconds(10);
}

Watchdog::Watchdog(absl::Duration limit, std::function<void()> expire)
    : thread_([this, limit, expire = std::move(expire)] {
        if (!cancelled_.WaitForNotificationWithTimeout(limit)) expire();
      }) {}

Watchdog::~Watchdog() {
  Cancel();
  thread_.join();
}

void Watchdog::Cancel() {
  if (!cancel_requested_.exchange(true)) cancelled_.Notify();
}

}  // namespace dynamo_batcher
