//! `bench http`: requests per second and latency of `GET /api/turnstile` and `GET /` under a
//! bounded loopback load.
//!
//! Set-up: the embedded platform, a simulated weekday (sleep 0) so every station, train and
//! the weather are in the tables, the worker caught up on all of it, and the web server on
//! 127.0.0.1 (any free port). Load: `connections` keep-alive HTTP/1.1 connections, each sending
//! one request at a time for `duration`, from one client thread with its own runtime (so the
//! server's runtime keeps its threads); latency is from writing a request to having read the
//! whole response. Optionally also `wrk` (Debian package `wrk`) with the same connections and
//! duration, as an outside cross-check.

use crate::env::{unique, BenchEnv, BrokerChoice};
use crate::measure::{MachineInfo, PhaseCost, PhaseMeter};
use crate::simspeed::WEEKDAY_MIDNIGHT_MS;
use crate::worker::{filled_worker, Fill};
use crate::{thousands, BenchError, Result};
use cta_stream::stream::{Shutdown, StreamError};
use serde::Serialize;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[derive(Debug, Clone)]
pub struct HttpOptions {
    pub connections: usize,
    pub duration: Duration,
    pub paths: Vec<String>,
    /// Simulated 5-minute steps to fill the tables with.
    pub sim_steps: u64,
    /// Also run `wrk` when it is installed.
    pub wrk: bool,
    pub work_dir: PathBuf,
    pub timeout: Duration,
}

/// One load run against one path.
#[derive(Debug, Clone, Serialize)]
pub struct LoadResult {
    pub path: String,
    pub connections: usize,
    pub secs: f64,
    pub requests: u64,
    pub errors: u64,
    pub response_bytes: u64,
    pub requests_per_sec: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub cost: PhaseCost,
    pub wrk: Option<WrkResult>,
}

#[derive(Debug, Clone, Serialize)]
pub struct WrkResult {
    pub requests_per_sec: Option<f64>,
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub output: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct HttpReport {
    pub machine: MachineInfo,
    pub broker: String,
    pub stations: usize,
    pub turnstile_rows: usize,
    pub results: Vec<LoadResult>,
}

pub async fn run(opts: &HttpOptions) -> Result<HttpReport> {
    if opts.connections == 0 || opts.duration.is_zero() {
        return Err(BenchError::Invalid(
            "--connections and --duration must be positive".into(),
        ));
    }
    let machine = MachineInfo::now();
    let env = BenchEnv::start(&BrokerChoice::embedded()).await?;
    let result = run_on(&env, opts, machine).await;
    env.stop().await;
    result
}

async fn run_on(env: &BenchEnv, opts: &HttpOptions, machine: MachineInfo) -> Result<HttpReport> {
    let app_id = unique("cta-bench-http");
    env.create_worker_topics(&app_id, 4).await?;
    let fill = Fill {
        steps: opts.sim_steps,
        seed: 11,
        start_ms: WEEKDAY_MIDNIGHT_MS,
    };
    let kafka = env.kafka.clone();
    let (w, _data, _) =
        filled_worker(env, &app_id, kafka, fill, &opts.work_dir, opts.timeout).await?;
    // A key can sit in several partitions (station rows are not keyed); count it once.
    let stations = w
        .tables
        .stations
        .items()?
        .into_iter()
        .map(|(_, k, _)| k)
        .collect::<std::collections::BTreeSet<_>>()
        .len();
    let turnstile_rows = w.tables.turnstile_all()?.len();

    let shutdown = Shutdown::new();
    let (addr, server) = w.serve_web(&shutdown).await?;
    let mut results = Vec::new();
    let outcome = async {
        for path in &opts.paths {
            // One request first: the path must answer 200 with a body.
            match get_once(addr, path).await {
                Some((200, len)) if len > 0 => {}
                other => {
                    return Err(BenchError::Invalid(format!(
                        "GET {path} did not answer 200 with a body: {other:?}"
                    )))
                }
            }
            tracing::info!(%path, "load");
            let mut r = load(addr, path.clone(), opts.connections, opts.duration).await?;
            if opts.wrk {
                r.wrk = run_wrk(addr, path, opts.connections, opts.duration).await;
            }
            results.push(r);
        }
        Ok(())
    }
    .await;
    shutdown.trigger();
    let _ = server.await;
    w.stop().await?;
    outcome?;
    Ok(HttpReport {
        machine,
        broker: env.describe(),
        stations,
        turnstile_rows,
        results,
    })
}

#[derive(Default)]
struct ConnStats {
    latencies_us: Vec<u32>,
    errors: u64,
    bytes: u64,
}

/// Runs the load on its own thread and runtime; returns the merged statistics.
async fn load(
    addr: SocketAddr,
    path: String,
    connections: usize,
    duration: Duration,
) -> Result<LoadResult> {
    let p = path.clone();
    let handle = std::thread::Builder::new()
        .name("bench-load".into())
        .spawn(move || -> std::io::Result<(Vec<ConnStats>, PhaseCost)> {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            rt.block_on(async move {
                let meter = PhaseMeter::start();
                let deadline = Instant::now() + duration;
                let tasks: Vec<_> = (0..connections)
                    .map(|_| tokio::spawn(connection(addr, p.clone(), deadline)))
                    .collect();
                let mut stats = Vec::new();
                for t in tasks {
                    stats.push(t.await.unwrap_or_default());
                }
                Ok((stats, meter.read()))
            })
        })
        .map_err(|source| BenchError::Io {
            what: "start the load thread".into(),
            source,
        })?;
    let (stats, cost) = tokio::task::spawn_blocking(move || handle.join())
        .await
        .map_err(|e| StreamError::Config(format!("load task failed: {e}")))?
        .map_err(|_| BenchError::Invalid("the load thread panicked".into()))?
        .map_err(|source| BenchError::Io {
            what: "load runtime".into(),
            source,
        })?;
    let mut lat: Vec<u32> = Vec::new();
    let (mut errors, mut bytes) = (0, 0);
    for s in stats {
        lat.extend(s.latencies_us);
        errors += s.errors;
        bytes += s.bytes;
    }
    lat.sort_unstable();
    let pct = |q: f64| crate::quantile_ms(&lat, q);
    let requests = lat.len() as u64;
    Ok(LoadResult {
        path,
        connections,
        secs: cost.wall_secs,
        requests,
        errors,
        response_bytes: bytes,
        requests_per_sec: requests as f64 / cost.wall_secs.max(1e-9),
        p50_ms: pct(0.50),
        p90_ms: pct(0.90),
        p99_ms: pct(0.99),
        max_ms: lat.last().map_or(0.0, |v| *v as f64 / 1000.0),
        cost,
        wrk: None,
    })
}

/// One keep-alive connection sending requests back to back until `deadline`; reconnects after
/// an error (at most 100 times).
async fn connection(addr: SocketAddr, path: String, deadline: Instant) -> ConnStats {
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: */*\r\n\r\n");
    let mut stats = ConnStats::default();
    let mut buf: Vec<u8> = Vec::with_capacity(64 * 1024);
    let mut reconnects = 0;
    'outer: while Instant::now() < deadline && reconnects < 100 {
        let Ok(mut stream) = TcpStream::connect(addr).await else {
            stats.errors += 1;
            reconnects += 1;
            continue;
        };
        let _ = stream.set_nodelay(true);
        loop {
            if Instant::now() >= deadline {
                break 'outer;
            }
            let t = Instant::now();
            buf.clear();
            let ok = match stream.write_all(request.as_bytes()).await {
                Ok(()) => read_response(&mut stream, &mut buf).await,
                Err(_) => None,
            };
            match ok {
                Some((200, body)) => {
                    stats
                        .latencies_us
                        .push(t.elapsed().as_micros().min(u32::MAX as u128) as u32);
                    stats.bytes += body as u64;
                }
                Some(_) => stats.errors += 1,
                None => {
                    stats.errors += 1;
                    reconnects += 1;
                    continue 'outer;
                }
            }
        }
    }
    stats
}

/// One request on a fresh connection: (status, body length).
pub async fn get_once(addr: SocketAddr, path: &str) -> Option<(u16, usize)> {
    let mut stream = TcpStream::connect(addr).await.ok()?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: */*\r\n\r\n");
    stream.write_all(request.as_bytes()).await.ok()?;
    let mut buf = Vec::new();
    read_response(&mut stream, &mut buf).await
}

/// Reads one response with a Content-Length body; returns (status, body length).
async fn read_response(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Option<(u16, usize)> {
    let mut chunk = [0u8; 16 * 1024];
    let header_end = loop {
        if let Some(i) = find(buf, b"\r\n\r\n") {
            break i + 4;
        }
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 || buf.len() > 1 << 20 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let (status, len) = parse_head(buf.get(..header_end)?)?;
    while buf.len() < header_end + len {
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    Some((status, len))
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Status code and Content-Length of a response head (None when chunked or malformed).
pub fn parse_head(head: &[u8]) -> Option<(u16, usize)> {
    let text = std::str::from_utf8(head).ok()?;
    let mut lines = text.split("\r\n");
    let status: u16 = lines.next()?.split_whitespace().nth(1)?.parse().ok()?;
    let mut len = None;
    for l in lines {
        if let Some((k, v)) = l.split_once(':') {
            if k.trim().eq_ignore_ascii_case("content-length") {
                len = v.trim().parse().ok();
            }
        }
    }
    Some((status, len?))
}

async fn run_wrk(
    addr: SocketAddr,
    path: &str,
    connections: usize,
    d: Duration,
) -> Option<WrkResult> {
    let out = tokio::process::Command::new("wrk")
        .arg("-t2")
        .arg(format!("-c{connections}"))
        .arg(format!("-d{}s", d.as_secs().max(1)))
        .arg("--latency")
        .arg(format!("http://{addr}{path}"))
        .output()
        .await;
    match out {
        Ok(o) if o.status.success() => {
            let text = String::from_utf8_lossy(&o.stdout).to_string();
            Some(WrkResult {
                requests_per_sec: wrk_value(&text, "Requests/sec:"),
                p50_ms: wrk_latency(&text, "50%"),
                p99_ms: wrk_latency(&text, "99%"),
                output: text,
            })
        }
        Ok(o) => {
            tracing::warn!(stderr = %String::from_utf8_lossy(&o.stderr), "wrk failed");
            None
        }
        Err(e) => {
            tracing::warn!(error = %e, "wrk not available (apt-get install wrk)");
            None
        }
    }
}

fn wrk_value(text: &str, label: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.trim_start().starts_with(label))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
}

/// A latency-distribution line of `wrk --latency`, e.g. `     99%    3.21ms`, in ms.
pub fn wrk_latency(text: &str, pct: &str) -> Option<f64> {
    let line = text.lines().find(|l| l.trim_start().starts_with(pct))?;
    let v = line.split_whitespace().nth(1)?;
    let (num, unit) = v.split_at(v.find(|c: char| c.is_ascii_alphabetic())?);
    let n: f64 = num.parse().ok()?;
    match unit {
        "us" => Some(n / 1000.0),
        "ms" => Some(n),
        "s" => Some(n * 1000.0),
        "m" => Some(n * 60_000.0),
        _ => None,
    }
}

impl fmt::Display for HttpReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "== http (loopback)")?;
        writeln!(f, "machine: {}", self.machine)?;
        writeln!(f, "broker:  {}", self.broker)?;
        writeln!(
            f,
            "tables: {} stations, {} turnstile rows",
            self.stations, self.turnstile_rows
        )?;
        for r in &self.results {
            writeln!(
                f,
                "GET {:<16} {} connections {:.1} s: {:>9} req/s  p50 {:.2} ms  p90 {:.2} ms  p99 {:.2} ms  max {:.2} ms  errors {}  avg body {} B  CPU {:.2} s",
                r.path,
                r.connections,
                r.secs,
                thousands(r.requests_per_sec),
                r.p50_ms,
                r.p90_ms,
                r.p99_ms,
                r.max_ms,
                r.errors,
                r.response_bytes.checked_div(r.requests).unwrap_or(0),
                r.cost.cpu.total()
            )?;
            if let Some(w) = &r.wrk {
                writeln!(
                    f,
                    "    wrk -t2:            {:>9} req/s  p50 {} ms  p99 {} ms",
                    w.requests_per_sec.map_or("?".into(), thousands),
                    w.p50_ms.map_or("?".into(), |v| format!("{v:.2}")),
                    w.p99_ms.map_or("?".into(), |v| format!("{v:.2}")),
                )?;
            }
        }
        write!(
            f,
            "note: client and server share this machine's cores; the client is one thread"
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn response_heads() {
        let h = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nContent-Length: 42\r\n\r\n";
        assert_eq!(parse_head(h), Some((200, 42)));
        let chunked = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n";
        assert_eq!(parse_head(chunked), None);
        assert_eq!(parse_head(b"garbage"), None);
    }

    #[test]
    fn wrk_output() {
        let text = "  Latency Distribution\n     50%  612.00us\n     75%    1.02ms\n     99%    4.50ms\nRequests/sec:  23456.78\n";
        assert_eq!(wrk_latency(text, "50%"), Some(0.612));
        assert_eq!(wrk_latency(text, "99%"), Some(4.5));
        assert_eq!(wrk_value(text, "Requests/sec:"), Some(23456.78));
        assert_eq!(wrk_latency(text, "90%"), None);
    }
}
