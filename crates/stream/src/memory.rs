//! Process-wide memory settings for a process that runs a worker.
//!
//! librdkafka's broker threads, RocksDB's background threads and the runtime's threads all
//! allocate through the C library's `malloc`. glibc gives each thread that meets contention an
//! arena of its own (up to 8 per core), and memory freed in one arena is not reused by another:
//! on a broker that answers fetches in large bursts (noida-db), the worker's peak RSS over 1M
//! records was 377–455 MiB with the default and 186–269 MiB with two arenas, throughput
//! unchanged (BENCHMARKS.md, "Memory on a real broker").

/// Arenas allowed when `MALLOC_ARENA_MAX` is not set.
pub const MALLOC_ARENAS: i32 = 2;

/// Caps glibc's malloc arenas at [`MALLOC_ARENAS`] unless the environment sets
/// `MALLOC_ARENA_MAX` (which glibc reads itself). Call it first thing in `main`. Does nothing
/// on other C libraries.
pub fn limit_malloc_arenas() {
    if std::env::var_os("MALLOC_ARENA_MAX").is_some() {
        return;
    }
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes a malloc tunable; M_ARENA_MAX takes any positive count.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, MALLOC_ARENAS);
    }
}
