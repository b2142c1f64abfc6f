//! Benchmarks of the pipeline (the `cta-stream-bench` crate, outside the application's library),
//! run by the `bench` binary (`src/main.rs`, flags only) and by the criterion benches in
//! `benches/`:
//!
//! - [`throughput`]: the same N turnstile records read by a raw rdkafka consumer and by the
//!   worker's turnstile pipeline (decode, RocksDB table, changelog, commits), with CPU time,
//!   peak RSS and an exact-count check;
//! - [`recovery`]: warm restart with a short and a long changelog behind the checkpoint, and a
//!   cold restore from the changelog into an empty data dir;
//! - [`simspeed`]: records per second the simulation produces with no sleep;
//! - [`http`]: requests per second and latency of the JSON API and the page under a bounded
//!   loopback load;
//! - [`latency`]: produce → visible latency of a turnstile entry in the JSON API and the live
//!   page's event stream, under a steady background load;
//! - [`flush`]: latency of the checkpoint's producer flush in isolation;
//! - [`memory`]: the worker's resident memory over a long run (10M records in rounds);
//! - [`fixtures`]: in-memory inputs for the criterion benches (a full status, sample records).
//!
//! Shared pieces: [`env`] (embedded platform or external broker), [`workload`] (the turnstile
//! records and their exact counts), [`worker`] (the CTA worker run as a task, with readiness
//! and progress probes).
//!
//! Measurement helpers ([`measure`]) read getrusage, per-thread CPU from `/proc/self/task` (to
//! separate the embedded broker's thread, `rdk:mock`, from everything else) and peak RSS
//! (`VmHWM`, reset between phases through `/proc/self/clear_refs`).
//!
//! Every figure is measured, never assumed; a run whose counts are wrong is an error (exit 1),
//! not a fast run.

pub mod env;
pub mod fixtures;
pub mod flush;
pub mod http;
pub mod latency;
pub mod measure;
pub mod memory;
pub mod recovery;
pub mod simspeed;
pub mod throughput;
pub mod worker;
pub mod workload;

use cta_stream::platform::PlatformError;
use cta_stream::stream::StreamError;
use cta_stream::web::WebError;
use std::time::Duration;

/// Why a benchmark run failed.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error(transparent)]
    Stream(#[from] StreamError),
    #[error(transparent)]
    Platform(#[from] PlatformError),
    #[error(transparent)]
    Web(#[from] WebError),
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{phase}: timed out after {} s ({detail})", .after.as_secs())]
    Timeout {
        phase: &'static str,
        after: Duration,
        detail: String,
    },
    #[error("{phase}: counts are wrong: {detail}")]
    Mismatch { phase: &'static str, detail: String },
    #[error("topic {topic} already holds {records} records; the benchmark needs an empty topic (start a fresh broker, e.g. `cargo run --release --bin cta -- platform`)")]
    TopicNotEmpty { topic: String, records: i64 },
    #[error("{phase}: the worker stopped early: {detail}")]
    WorkerStopped { phase: &'static str, detail: String },
    #[error("{0}")]
    Invalid(String),
}

pub type Result<T, E = BenchError> = std::result::Result<T, E>;

/// Records per second, 0 for an empty interval.
pub fn rate(records: u64, elapsed: Duration) -> f64 {
    let s = elapsed.as_secs_f64();
    if s > 0.0 {
        records as f64 / s
    } else {
        0.0
    }
}

/// The `q` quantile (0 to 1) of microsecond samples sorted ascending, in milliseconds: the
/// sample at rank ceil(n·q); 0 without samples.
pub fn quantile_ms<T: Copy + Into<u64>>(sorted_us: &[T], q: f64) -> f64 {
    if sorted_us.is_empty() {
        return 0.0;
    }
    let i = ((sorted_us.len() as f64 * q).ceil() as usize).clamp(1, sorted_us.len()) - 1;
    sorted_us[i].into() as f64 / 1000.0
}

/// Formats a rate with thousands separators, e.g. `1,234,567`.
pub fn thousands(v: f64) -> String {
    let n = v.round().max(0.0) as u64;
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_groups_digits() {
        assert_eq!(thousands(0.0), "0");
        assert_eq!(thousands(999.4), "999");
        assert_eq!(thousands(1000.0), "1,000");
        assert_eq!(thousands(1_234_567.0), "1,234,567");
    }

    #[test]
    fn rate_of_empty_interval_is_zero() {
        assert_eq!(rate(10, Duration::ZERO), 0.0);
        assert_eq!(rate(10, Duration::from_millis(500)), 20.0);
    }
}
