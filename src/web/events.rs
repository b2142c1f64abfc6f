//! `GET /api/events`: the status page's content as Server-Sent Events, for `static/live.js`.
//!
//! Each client gets an `event: status` at once, then one whenever the content changed, checked
//! every [`TICK`]. The data is the page's view model ([`StatusPage`], built from
//! `crate::web::cluster::status`) as JSON, so the script shows exactly what a reload would. A
//! comment line every 15 s keeps idle proxies from closing the stream. The stream ends when
//! the server shuts down; browsers then reconnect on their own after `retry`.

use crate::stream::Shutdown;
use crate::web::templates::StatusPage;
use crate::web::WebState;
use futures::Stream;
use std::convert::Infallible;
use std::time::Duration;
use warp::reply::Response;
use warp::sse::Event;
use warp::Reply;

/// How often a client's stream looks for changes.
pub const TICK: Duration = Duration::from_secs(1);

/// The page's content now (across workers, as the page shows it), as the JSON the script
/// reads.
pub async fn payload(state: &WebState) -> Result<String, crate::web::cluster::ClusterError> {
    let status = crate::web::cluster::status(state, false).await?;
    Ok(serde_json::to_string(&StatusPage::from_status(&status)).unwrap_or_default())
}

struct Cursor {
    state: WebState,
    shutdown: Shutdown,
    last: Option<String>,
    first: bool,
}

fn stream(state: WebState, shutdown: Shutdown) -> impl Stream<Item = Result<Event, Infallible>> {
    let cursor = Cursor {
        state,
        shutdown,
        last: None,
        first: true,
    };
    futures::stream::unfold(cursor, |mut c| async move {
        loop {
            if c.shutdown.is_triggered() {
                return None;
            }
            if !c.first {
                tokio::select! {
                    _ = tokio::time::sleep(TICK) => {}
                    _ = c.shutdown.wait() => return None,
                }
            }
            c.first = false;
            // On a task of its own: the stream must stay `Sync`, the queries' futures are not.
            let state = c.state.clone();
            let body = match tokio::spawn(async move { payload(&state).await }).await {
                Ok(Ok(b)) => b,
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "live update skipped");
                    continue;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "live update task failed");
                    continue;
                }
            };
            if c.last.as_deref() == Some(body.as_str()) {
                continue;
            }
            let event = Event::default()
                .event("status")
                .retry(Duration::from_secs(3))
                .data(body.clone());
            c.last = Some(body);
            return Some((Ok(event), c));
        }
    })
}

/// The event-stream answer for one client.
pub fn reply(state: WebState, shutdown: Shutdown) -> Response {
    let events = stream(state, shutdown);
    let mut r = warp::sse::reply(
        warp::sse::keep_alive()
            .interval(Duration::from_secs(15))
            .stream(events),
    )
    .into_response();
    r.headers_mut().insert(
        "cache-control",
        warp::http::HeaderValue::from_static("no-cache"),
    );
    r
}
