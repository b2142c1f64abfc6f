//! The web layer: the live status page (askama, refreshed by the browser every 5 s, no
//! JavaScript or outside assets needed) and the JSON API over the turnstile table. Reads the
//! transit read models only.

pub mod client;
pub mod routes;
pub mod templates;

use crate::stream::{Shutdown, Status};
use crate::transit::agents::TransitTables;
use std::net::SocketAddr;
use std::sync::Arc;

/// What the handlers read.
#[derive(Clone)]
pub struct WebState {
    pub tables: TransitTables,
    pub status: Arc<Status>,
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

/// Binds `addr` and serves until `shutdown`. Returns the bound address and the server task.
pub async fn serve(
    addr: SocketAddr,
    state: WebState,
    shutdown: Shutdown,
) -> Result<(SocketAddr, tokio::task::JoinHandle<()>), WebError> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| WebError::Bind { addr, source })?;
    let bound = listener
        .local_addr()
        .map_err(|source| WebError::Bind { addr, source })?;
    let routes = routes::routes(state);
    let task = tokio::spawn(async move {
        warp::serve(routes)
            .incoming(listener)
            .graceful(async move { shutdown.wait().await })
            .run()
            .await;
    });
    tracing::info!(%bound, "status page at http://{bound}/");
    Ok((bound, task))
}
