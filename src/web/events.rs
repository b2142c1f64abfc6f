//! `GET /api/events`: the status page's content as Server-Sent Events, for `static/live.js`.
//!
//! Each client gets an `event: status` at once, then one whenever the content changed. One
//! [`LiveFeed`] per server builds the content for every client: as soon as this worker has
//! processed records (checked every [`POLL`], at most one build per [`MIN_GAP`]), and every
//! [`TICK`] in any case (for what other workers own, stale marks and restores). The data is
//! the page's view model ([`StatusPage`], built from `crate::web::cluster::status`) as JSON,
//! so the script shows exactly what a reload would. A comment line every 15 s keeps idle
//! proxies from closing the stream. The stream ends when the server shuts down; browsers then
//! reconnect on their own after `retry`.

use crate::stream::Shutdown;
use crate::web::templates::StatusPage;
use crate::web::WebState;
use futures::Stream;
use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;
use warp::reply::Response;
use warp::sse::Event;
use warp::Reply;

/// The longest a client waits for a change it would see on a reload.
pub const TICK: Duration = Duration::from_secs(1);
/// How often the feed looks at this worker's progress (an atomic read).
pub const POLL: Duration = Duration::from_millis(5);
/// The shortest time between two builds of the content (at most 50 a second, for all clients
/// together, while records arrive).
pub const MIN_GAP: Duration = Duration::from_millis(20);

/// The page's content now (across workers, as the page shows it), as the JSON the script
/// reads.
pub async fn payload(state: &WebState) -> Result<String, crate::web::cluster::ClusterError> {
    let status = crate::web::cluster::status(state, false).await?;
    Ok(serde_json::to_string(&StatusPage::from_status(&status)).unwrap_or_default())
}

/// The content every client of one server receives, built once for all of them; started by
/// the first client.
#[derive(Default)]
pub struct LiveFeed {
    tx: watch::Sender<Option<Arc<str>>>,
    started: AtomicBool,
}

impl LiveFeed {
    fn subscribe(
        &self,
        state: &WebState,
        shutdown: &Shutdown,
    ) -> watch::Receiver<Option<Arc<str>>> {
        let rx = self.tx.subscribe();
        if !self.started.swap(true, Ordering::AcqRel) {
            tokio::spawn(build(state.clone(), self.tx.clone(), shutdown.clone()));
        }
        rx
    }
}

/// The feed's loop: builds the content when this worker made progress or a tick passed, while
/// anyone listens; publishes it when it changed.
async fn build(state: WebState, tx: watch::Sender<Option<Arc<str>>>, shutdown: Shutdown) {
    let progress = |s: &WebState| s.status.consumed.load(Ordering::Relaxed);
    let mut seen = progress(&state);
    let mut built = Instant::now();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(POLL) => {}
            _ = shutdown.wait() => return,
        }
        if tx.receiver_count() == 0 {
            continue;
        }
        let now = progress(&state);
        let since = built.elapsed();
        if since < TICK && (now == seen || since < MIN_GAP) {
            continue;
        }
        seen = now;
        built = Instant::now();
        match payload(&state).await {
            Ok(body) => {
                tx.send_if_modified(|cur| {
                    if cur.as_deref() == Some(body.as_str()) {
                        return false;
                    }
                    *cur = Some(body.into());
                    true
                });
            }
            Err(e) => tracing::warn!(error = %e, "live update skipped"),
        }
    }
}

struct Cursor {
    state: WebState,
    shutdown: Shutdown,
    feed: watch::Receiver<Option<Arc<str>>>,
    last: Option<Arc<str>>,
    first: bool,
}

fn stream(state: WebState, shutdown: Shutdown) -> impl Stream<Item = Result<Event, Infallible>> {
    let feed = state.live.subscribe(&state, &shutdown);
    let cursor = Cursor {
        state,
        shutdown,
        feed,
        last: None,
        first: true,
    };
    futures::stream::unfold(cursor, |mut c| async move {
        loop {
            if c.shutdown.is_triggered() {
                return None;
            }
            let body: Arc<str> = if c.first {
                // The content now, for this client alone (the feed may not have built yet).
                c.first = false;
                // On a task of its own: the stream must stay `Sync`, the queries' futures are
                // not.
                let state = c.state.clone();
                match tokio::spawn(async move { payload(&state).await }).await {
                    Ok(Ok(b)) => b.into(),
                    Ok(Err(e)) => {
                        tracing::warn!(error = %e, "live update skipped");
                        continue;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "live update task failed");
                        continue;
                    }
                }
            } else {
                tokio::select! {
                    changed = c.feed.changed() => if changed.is_err() { return None },
                    _ = c.shutdown.wait() => return None,
                }
                match c.feed.borrow_and_update().clone() {
                    Some(b) => b,
                    None => continue,
                }
            };
            if c.last.as_deref() == Some(&*body) {
                continue;
            }
            let event = Event::default()
                .event("status")
                .retry(Duration::from_secs(3))
                .data(&*body);
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
