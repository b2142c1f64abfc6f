//! The web layer: the status page (askama, complete on first load and without JavaScript),
//! kept live in the browser by a small local script fed by Server-Sent Events; the JSON API
//! over the read models; and `/metrics` in Prometheus text format. Reads the transit read
//! models and the runtime's [`Status`] only.
//!
//! The server is hyper's HTTP/1.1 connection driver around the warp filters, so that its
//! limits can be set (see [`WebLimits`]): header count and size, a header read timeout, a
//! request body limit, and a cap on open connections.

pub mod client;
pub mod cluster;
pub mod diagram;
pub mod events;
pub mod ksql;
pub mod metrics;
pub mod routes;
pub mod templates;

use crate::stream::{Directory, KafkaConfig, Shutdown, Status};
use crate::transit::agents::TransitTables;
use metrics::Metrics;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What the handlers read.
#[derive(Clone)]
pub struct WebState {
    pub tables: TransitTables,
    pub status: Arc<Status>,
    pub metrics: Arc<Metrics>,
    /// The other workers of the app, for queries on partitions this one does not own.
    pub directory: Option<Directory>,
    /// The live page's content, built once for all its clients.
    pub live: Arc<events::LiveFeed>,
}

impl WebState {
    pub fn new(tables: TransitTables, status: Arc<Status>) -> Self {
        let metrics = Arc::new(Metrics::new(status.clone(), tables.clone(), None));
        Self {
            tables,
            status,
            metrics,
            directory: None,
            live: Arc::default(),
        }
    }

    /// Routes queries for partitions owned by other workers through `directory`.
    pub fn with_directory(self, directory: Option<Directory>) -> Self {
        Self { directory, ..self }
    }

    /// The worker's status while it restores its tables (answers would be incomplete), else
    /// `None`.
    pub fn restoring(&self) -> Option<crate::stream::StatusSnapshot> {
        if !self
            .status
            .recovering
            .load(std::sync::atomic::Ordering::Relaxed)
        {
            return None;
        }
        Some(self.status.snapshot()).filter(|st| st.recovering)
    }

    /// Lets `/metrics` report consumer lag, reading high watermarks from this cluster.
    pub fn with_kafka(self, kafka: KafkaConfig) -> Self {
        let metrics = Arc::new(Metrics::new(
            self.status.clone(),
            self.tables.clone(),
            Some(kafka),
        ));
        Self { metrics, ..self }
    }
}

/// Limits of the HTTP server. The defaults are what the worker uses.
#[derive(Debug, Clone)]
pub struct WebLimits {
    /// Open connections at most; further clients wait in the listen backlog until one closes.
    /// Each open status page holds one (its event stream).
    pub max_connections: usize,
    /// Request line plus headers, in bytes; beyond it the answer is 431.
    pub max_header_bytes: usize,
    /// Header fields per request; beyond it the answer is 431.
    pub max_headers: usize,
    /// Request bodies larger than this are refused with 413 (only the ksqlDB routes take a
    /// body; they have their own limit, [`ksql::MAX_BODY_BYTES`]).
    pub max_body_bytes: u64,
    /// A client must send a request's headers within this time, or the connection is closed;
    /// an idle keep-alive connection is closed after it too (hyper's header read timeout).
    pub header_read_timeout: Duration,
    /// How long shutdown waits for open requests (event streams end at once).
    pub shutdown_grace: Duration,
}

impl Default for WebLimits {
    fn default() -> Self {
        Self {
            max_connections: 256,
            max_header_bytes: 16 * 1024,
            max_headers: 64,
            max_body_bytes: 16 * 1024,
            header_read_timeout: Duration::from_secs(10),
            shutdown_grace: Duration::from_secs(5),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum WebError {
    #[error("cannot listen on {addr}: {source} (is another worker using the port? pick one with --web-addr)")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// Binds `addr` and serves with the default [`WebLimits`] until `shutdown`. Returns the bound
/// address and the server task.
pub async fn serve(
    addr: SocketAddr,
    state: WebState,
    shutdown: Shutdown,
) -> Result<(SocketAddr, tokio::task::JoinHandle<()>), WebError> {
    serve_with(addr, state, shutdown, WebLimits::default()).await
}

/// [`serve`] with explicit limits.
pub async fn serve_with(
    addr: SocketAddr,
    state: WebState,
    shutdown: Shutdown,
    limits: WebLimits,
) -> Result<(SocketAddr, tokio::task::JoinHandle<()>), WebError> {
    let listener = bind(addr).await?;
    let bound = listener
        .local_addr()
        .map_err(|source| WebError::Bind { addr, source })?;
    Ok((bound, serve_listener(listener, state, shutdown, limits)))
}

/// Binds `addr` (the worker binds before it starts, so it can advertise the bound address).
pub async fn bind(addr: SocketAddr) -> Result<tokio::net::TcpListener, WebError> {
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| WebError::Bind { addr, source })
}

/// Serves on a bound `listener` until `shutdown`.
pub fn serve_listener(
    listener: tokio::net::TcpListener,
    state: WebState,
    shutdown: Shutdown,
    limits: WebLimits,
) -> tokio::task::JoinHandle<()> {
    if let Ok(bound) = listener.local_addr() {
        tracing::info!(%bound, "status page at http://{bound}/");
    }
    tokio::spawn(accept_loop(listener, state, shutdown, limits))
}

async fn accept_loop(
    listener: tokio::net::TcpListener,
    state: WebState,
    shutdown: Shutdown,
    limits: WebLimits,
) {
    let metrics = state.metrics.clone();
    let filter = routes::routes(state, shutdown.clone());
    let permits = Arc::new(tokio::sync::Semaphore::new(limits.max_connections.max(1)));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let http = http1_builder(&limits);
    while let Some((permit, stream, remote)) = next_connection(&listener, &permits, &shutdown).await
    {
        let filter = filter.clone();
        let metrics = metrics.clone();
        let max_body = limits.max_body_bytes;
        let service =
            hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                let filter = filter.clone();
                let metrics = metrics.clone();
                async move {
                    let started = Instant::now();
                    let method = req.method().clone();
                    // The ksqlDB routes take statements up to 16 KiB, so bodies up to 64 KiB.
                    let ksql_limit = ksql::body_limit(req.uri().path());
                    let limit = ksql_limit.unwrap_or(max_body);
                    let resp = match body_too_large(&req, limit) {
                        Some(_) if ksql_limit.is_some() => ksql::body_too_large(),
                        Some(r) => r,
                        None => {
                            // A body without a declared length (chunked) is cut off at the same
                            // limit, should a route ever read one.
                            let req = req.map(|b| http_body_util::Limited::new(b, limit as usize));
                            let mut svc = warp::service(filter);
                            match tower_service::Service::call(&mut svc, req).await {
                                Ok(r) => r,
                                Err(never) => match never {},
                            }
                        }
                    };
                    metrics.observe_http(&method, &resp, started.elapsed());
                    Ok::<_, std::convert::Infallible>(resp)
                }
            });
        let conn = http.serve_connection(hyper_util::rt::TokioIo::new(stream), service);
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(%remote, error = %e, "connection ended with an error");
            }
            drop(permit);
        });
    }
    drop(listener);
    if tokio::time::timeout(limits.shutdown_grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("web server: open connections did not finish in time; closing them");
    }
}

/// hyper's HTTP/1.1 connection driver with the header limits and timeout of `limits`.
fn http1_builder(limits: &WebLimits) -> hyper::server::conn::http1::Builder {
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_headers(limits.max_headers)
        .max_header_size(limits.max_header_bytes)
        .keep_alive(true);
    http
}

/// The next connection with its slot; `None` once `shutdown` fired (or the slots closed).
async fn next_connection(
    listener: &tokio::net::TcpListener,
    permits: &Arc<tokio::sync::Semaphore>,
    shutdown: &Shutdown,
) -> Option<(
    tokio::sync::OwnedSemaphorePermit,
    tokio::net::TcpStream,
    SocketAddr,
)> {
    loop {
        // Take a connection slot first: at the limit, stop accepting (clients queue in the
        // kernel's backlog) instead of accepting and dropping.
        let permit = tokio::select! {
            p = permits.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => return None,
            },
            _ = shutdown.wait() => return None,
        };
        let (stream, remote) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    // Out of file descriptors and the like: wait a little, do not spin.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = shutdown.wait() => return None,
        };
        return Some((permit, stream, remote));
    }
}

/// A 413 answer when the request declares a body above `max_body` bytes.
fn body_too_large<B>(req: &hyper::Request<B>, max_body: u64) -> Option<warp::reply::Response> {
    let declared = req
        .headers()
        .get(hyper::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())?;
    (declared > max_body).then(|| {
        routes::json_error(
            warp::http::StatusCode::PAYLOAD_TOO_LARGE,
            "request body too large",
        )
    })
}
