// jemalloc's start-up options, compiled in (jemalloc reads the global
// `malloc_conf`; the MALLOC_CONF environment variable still overrides them).
//
// Without them an idle sidecar kept what a burst had dirtied: jemalloc purges
// dirty pages only when a thread allocates, and an idle sidecar barely does,
// so RSS stayed at 100+ MiB after a burst. Measured with
// `bench/run --footprint-only` (see docs/benchmarks.md), RSS after 20-30 s
// idle following a 100,000-op burst that peaked at ~100 MiB:
//   defaults:                          111 MiB (nothing returned)
//   background_thread:true             46 MiB (<= 48 MiB from 18 s)
//   + dirty_decay_ms:5000, narenas:2   46 MiB (<= 48 MiB from 5-9 s)
// The rest was live memory (TableBatcher's key index, now released when a
// table drains): after a 200,000-op burst peaking at 167 MiB, 42 MiB from
// 10 s idle. Idle CPU stays at 0.04% of a core.
//
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
