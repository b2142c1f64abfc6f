//! HTTP routes:
//! - `GET /`: the status page;
//! - `GET /api/turnstile`, `GET /api/turnstile/{station_id}`: the turnstile table as JSON;
//! - `GET /api/turnstile/hourly[/{station_id}]`, `GET /api/turnstile/recent[/{station_id}]`:
//!   entries per station per hour (tumbling) and per 15 minutes every 5 (hopping);
//! - `GET /api/status`: everything the page shows, as JSON;
//! - `GET /api/events`: the page's content as Server-Sent Events ([`crate::web::events`]);
//! - `GET /metrics`: Prometheus text format ([`crate::web::metrics`]);
//! - `GET /health`, `GET /static/style.css`, `GET /static/live.js`;
//! - `POST /ksql`, `POST /query`, `POST /query-stream`, `GET /info`: ksqlDB's REST API over
//!   the same tables ([`crate::web::ksql`]);
//! - `GET /tables/{name}`, `GET /tables/{name}/{key}`: the stream core's generic table views of
//!   `stations`, `train-positions`, `weather` and (when counted here) `turnstile-summary`.
//!
//! Every table answer covers all workers of the app (see [`crate::web::cluster`]);
//! `?scope=local` limits it to this worker's partitions. While this worker restores its tables
//! the table API answers 503 `{"error": "recovering", ...}` and the page says so.
//!
//! Errors are JSON `{"error": "..."}`: 400 for bad parameters, 404 for unknown paths, 405 for
//! other methods, 413 for bodies over the limit, 503 when the state store fails. Nothing here
//! panics on input. Every answer carries its route template as a [`RouteLabel`] extension,
//! which the HTTP metrics use as their `route` label (`unmatched` when no route took it).

// `?scope=local` restricts an answer to this worker's partitions, as in the core's views.
use crate::stream::view::Scope;
use crate::stream::Shutdown;
use crate::transit::queries::Window;
use crate::web::cluster::{self, ClusterError};
use crate::web::templates::StatusPage;
use crate::web::WebState;
use askama::Template;
use serde::Serialize;
use warp::filters::BoxedFilter;
use warp::http::StatusCode;
use warp::reply::Response;
use warp::{Filter, Rejection, Reply};

/// The only files under `/static/`, compiled in.
pub const STYLE_CSS: &str = include_str!("../../static/style.css");
pub const LIVE_JS: &str = include_str!("../../static/live.js");

/// The route template that answered a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouteLabel(pub &'static str);

/// Label of answers no route produced (unknown paths, wrong methods).
pub const UNMATCHED: &str = "unmatched";

pub fn json_error(status: StatusCode, msg: &str) -> Response {
    warp::reply::with_status(
        warp::reply::json(&serde_json::json!({ "error": msg })),
        status,
    )
    .into_response()
}

fn json_ok<T: Serialize>(v: &T) -> Response {
    warp::reply::json(v).into_response()
}

fn internal(e: impl std::fmt::Display) -> Response {
    tracing::error!(error = %e, "query failed");
    json_error(StatusCode::SERVICE_UNAVAILABLE, "state store unavailable")
}

fn unavailable(e: ClusterError) -> Response {
    tracing::warn!(error = %e, "query failed");
    json_error(StatusCode::SERVICE_UNAVAILABLE, &e.to_string())
}

/// 503 while this worker restores its tables: answers would be incomplete.
fn recovering(s: &WebState) -> Option<Response> {
    s.restoring().map(|st| {
        let body = serde_json::json!({
            "error": "recovering",
            "restored": st.restore_done,
            "total": st.restore_total,
        });
        warp::reply::with_status(warp::reply::json(&body), StatusCode::SERVICE_UNAVAILABLE)
            .into_response()
    })
}

fn bad_station() -> Response {
    json_error(
        StatusCode::BAD_REQUEST,
        "station_id must be an integer (32-bit)",
    )
}

pub(crate) fn labeled(route: &'static str, mut r: Response) -> Response {
    r.extensions_mut().insert(RouteLabel(route));
    r
}

fn asset(body: &'static str, content_type: &'static str) -> Response {
    let mut r = warp::reply::with_header(body, "content-type", content_type).into_response();
    r.headers_mut().insert(
        "cache-control",
        warp::http::HeaderValue::from_static("no-cache"),
    );
    r
}

/// Every route, in the order they are tried, and the JSON answer for what none takes.
pub fn routes(
    state: WebState,
    shutdown: Shutdown,
) -> impl Filter<Extract = (Response,), Error = std::convert::Infallible> + Clone {
    let state_for_ksql = state.clone();
    page(state.clone())
        .or(turnstile_all(state.clone()))
        .unify()
        .or(windowed(state.clone()))
        .unify()
        .or(turnstile_one(state.clone()))
        .unify()
        .or(status(state.clone()))
        .unify()
        .or(events(state.clone(), shutdown))
        .unify()
        .or(metrics(state))
        .unify()
        .or(health())
        .unify()
        .or(style())
        .unify()
        .or(live())
        .unify()
        .or(crate::web::ksql::routes(state_for_ksql.clone()))
        .unify()
        .or(table_views(&state_for_ksql))
        .unify()
        .recover(
            |r: Rejection| async move { Ok::<Response, std::convert::Infallible>(rejection(r)) },
        )
        .unify()
}

/// The stream core's generic views of the worker's keyed tables (Faust's table views):
/// `GET /tables/{name}` lists every entry, `GET /tables/{name}/{key}` reads one, each routed to
/// the worker that owns the key's partition through the same directory as the JSON API.
fn table_views(s: &WebState) -> BoxedFilter<(Response,)> {
    let d = || s.directory.clone();
    let t = &s.tables;
    let views = t.stations.view(d()).or(t.trains.view(d())).unify();
    let views = views.or(t.weather.view(d())).unify().boxed();
    let views = match t.turnstile.native() {
        Some(counts) => views.or(counts.view(d())).unify().boxed(),
        None => views,
    };
    views.map(|r| labeled("/tables/{name}", r)).boxed()
}

fn with_state(
    state: &WebState,
) -> impl Filter<Extract = (WebState,), Error = std::convert::Infallible> + Clone {
    let state = state.clone();
    warp::any().map(move || state.clone())
}

/// `GET /`: the status page.
fn page(state: WebState) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    warp::path::end()
        .and(warp::get())
        .and(with_state(&state))
        .then(|s: WebState| async move {
            let r = match cluster::status(&s, false).await {
                Ok(st) => match StatusPage::from_status(&st).render() {
                    Ok(html) => warp::reply::html(html).into_response(),
                    Err(e) => internal(e),
                },
                Err(e) => unavailable(e),
            };
            labeled("/", r)
        })
}

/// `GET /api/turnstile`: every station's count.
fn turnstile_all(state: WebState) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    warp::path!("api" / "turnstile")
        .and(warp::get())
        .and(warp::query::<Scope>())
        .and(with_state(&state))
        .then(|q: Scope, s: WebState| async move {
            let r = match recovering(&s) {
                Some(r) => r,
                None => match cluster::turnstile(&s, None, q.local()).await {
                    Ok(v) => json_ok(&v),
                    Err(e) => unavailable(e),
                },
            };
            labeled("/api/turnstile", r)
        })
}

/// `GET /api/turnstile/{hourly,recent}[/{station_id}]`: windowed counts.
fn windowed(state: WebState) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    warp::path!("api" / "turnstile" / String / ..)
        .and(warp::path::tail())
        .and(warp::get())
        .and(warp::query::<Scope>())
        .and(with_state(&state))
        .and_then(
            |kind: String, tail: warp::path::Tail, q: Scope, s: WebState| async move {
                let (window, label) = match kind.as_str() {
                    "hourly" => (Window::Hourly, "/api/turnstile/hourly"),
                    "recent" => (Window::Recent, "/api/turnstile/recent"),
                    _ => return Err(warp::reject::not_found()),
                };
                let station = match tail.as_str() {
                    "" => None,
                    id => match id.parse::<i32>() {
                        Ok(id) => Some(id),
                        Err(_) => return Ok(labeled(label, bad_station())),
                    },
                };
                let r = match recovering(&s) {
                    Some(r) => r,
                    None => match cluster::windows(&s, window, station, q.local()).await {
                        Ok(v) => json_ok(&v),
                        Err(e) => unavailable(e),
                    },
                };
                Ok(labeled(label, r))
            },
        )
}

/// `GET /api/turnstile/{station_id}`: one station's count.
fn turnstile_one(state: WebState) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    warp::path!("api" / "turnstile" / String)
        .and(warp::get())
        .and(warp::query::<Scope>())
        .and(with_state(&state))
        .then(|id: String, q: Scope, s: WebState| async move {
            let r = match (id.parse::<i32>(), recovering(&s)) {
                (Err(_), _) => bad_station(),
                (Ok(_), Some(r)) => r,
                (Ok(id), None) => match cluster::turnstile(&s, Some(id), q.local()).await {
                    Ok(v) => match v.first() {
                        Some(one) => json_ok(one),
                        None => json_error(
                            StatusCode::NOT_FOUND,
                            "no turnstile entries for this station",
                        ),
                    },
                    Err(e) => unavailable(e),
                },
            };
            labeled("/api/turnstile/:station_id", r)
        })
}

/// `GET /api/status`: everything the page shows.
fn status(state: WebState) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    warp::path!("api" / "status")
        .and(warp::get())
        .and(warp::query::<Scope>())
        .and(with_state(&state))
        .then(|q: Scope, s: WebState| async move {
            let r = match cluster::status(&s, q.local()).await {
                Ok(st) => json_ok(&st),
                Err(e) => unavailable(e),
            };
            labeled("/api/status", r)
        })
}

/// `GET /api/events`: the page as Server-Sent Events.
fn events(
    state: WebState,
    shutdown: Shutdown,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    warp::path!("api" / "events")
        .and(warp::get())
        .and(with_state(&state))
        .map(move |s: WebState| {
            labeled(
                "/api/events",
                crate::web::events::reply(s, shutdown.clone()),
            )
        })
}

/// `GET /metrics`: Prometheus text format.
fn metrics(state: WebState) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    warp::path!("metrics")
        .and(warp::get())
        .and(with_state(&state))
        .then(|s: WebState| async move {
            let rendered = tokio::task::spawn_blocking(move || s.metrics.render()).await;
            let r = match rendered {
                Ok(Ok(text)) => asset_owned(text, prometheus::TEXT_FORMAT),
                Ok(Err(e)) => internal(e),
                Err(e) => internal(e),
            };
            labeled("/metrics", r)
        })
}

/// `GET /health`.
fn health() -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    warp::path!("health")
        .and(warp::get())
        .map(|| labeled("/health", warp::reply::html("ok").into_response()))
}

/// `GET /static/style.css`.
fn style() -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    warp::path!("static" / "style.css")
        .and(warp::get())
        .map(|| {
            labeled(
                "/static/style.css",
                asset(STYLE_CSS, "text/css; charset=utf-8"),
            )
        })
}

/// `GET /static/live.js`.
fn live() -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    warp::path!("static" / "live.js").and(warp::get()).map(|| {
        labeled(
            "/static/live.js",
            asset(LIVE_JS, "text/javascript; charset=utf-8"),
        )
    })
}

fn asset_owned(body: String, content_type: &'static str) -> Response {
    warp::reply::with_header(body, "content-type", content_type).into_response()
}

fn rejection(r: Rejection) -> Response {
    if r.is_not_found() {
        json_error(StatusCode::NOT_FOUND, "not found")
    } else if r.find::<warp::reject::MethodNotAllowed>().is_some() {
        json_error(StatusCode::METHOD_NOT_ALLOWED, "method not allowed")
    } else {
        json_error(StatusCode::BAD_REQUEST, "bad request")
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn assets_are_not_empty_and_script_writes_text_only() {
        assert!(super::STYLE_CSS.contains("body"));
        assert!(super::LIVE_JS.contains("EventSource"));
        // The live script must never parse data as HTML.
        for sink in [
            "innerHTML",
            "outerHTML",
            "insertAdjacentHTML",
            "document.write",
            "eval(",
        ] {
            assert!(!super::LIVE_JS.contains(sink), "live.js uses {sink}");
        }
    }
}
