// jemalloc's start-up options, compiled in (jemalloc reads the global
// `malloc_conf`; the MALLOC_CONF environment variable still overrides them).
//
// Without them an idle sidecar kept what a burst had dirtied: jemalloc purges
// dirty pages only when a thread allocates, and an idle sidecar barely does,
// so RSS stayed at 100+ MiB after a burst. Measured with
// `bench/run --footprint-only` (see docs/benchmarks.md), after a
// 100,000-op burst that peaked at ~100 MiB:
//   defaults:                          111 MiB still after 20 s idle
//   background_thread:true             46 MiB after 30 s (<= 48 MiB from 18 s)
//   + dirty_decay_ms:5000, narenas:2   46 MiB after 30 s (<= 48 MiB from 5-9 s)
// background_thread: jemalloc's own threads (one per arena in use, asleep
//   while there is nothing to purge) return dirty pages on schedule.
// dirty_decay_ms:5000: dirty pages go back to the kernel within ~5 s rather
//   than 10 s (muzzy_decay_ms is already 0, so they are MADV_DONTNEED'd and
//   leave RSS at once rather than lingering as MADV_FREE pages).
// narenas:2: fewer arenas each holding its own dirty pages; the hot path is
//   one engine thread plus gRPC's few completion threads.
extern "C" {
// NOLINTNEXTLINE: the name and type are jemalloc's interface.
const char* malloc_conf = "background_thread:true,dirty_decay_ms:5000,narenas:2";
}
