//! The web layer: the live status page (askama, refreshed by the browser every 5 s, no
//! JavaScript or outside assets needed) and the JSON API over the turnstile table. Reads the
//! transit read models only.

pub mod client;
pub mod cluster;
pub mod routes;
pub mod templates;

use crate::stream::{Directory, Shutdown, Status};
use crate::transit::agents::TransitTables;
use std::net::SocketAddr;
use std::sync::Arc;

/// What the handlers read.
#[derive(Clone)]
pub struct WebState {
    pub tables: TransitTables,
    pub status: Arc<Status>,
    /// The other workers of the app, for queries on partitions this one does not own.
    pub directory: Option<Directory>,
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

/// Binds `addr` (before the worker starts, so the worker can advertise the bound address).
pub async fn bind(addr: SocketAddr) -> Result<tokio::net::TcpListener, WebError> {
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| WebError::Bind { addr, source })
}

/// Serves on `listener` until `shutdown`. Returns the server task.
pub fn serve(
    listener: tokio::net::TcpListener,
    state: WebState,
    shutdown: Shutdown,
) -> tokio::task::JoinHandle<()> {
    let routes = routes::routes(state);
    if let Ok(bound) = listener.local_addr() {
        tracing::info!(%bound, "status page at http://{bound}/");
    }
    tokio::spawn(async move {
        warp::serve(routes)
            .incoming(listener)
            .graceful(async move { shutdown.wait().await })
            .run()
            .await;
    })
}
