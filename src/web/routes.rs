//! HTTP routes:
//! - `GET /`: the status page;
//! - `GET /api/turnstile`, `GET /api/turnstile/{station_id}`: the turnstile table as JSON;
//! - `GET /api/status`: everything the page shows, as JSON;
//! - `GET /api/events`: the page's content as Server-Sent Events ([`crate::web::events`]);
//! - `GET /metrics`: Prometheus text format ([`crate::web::metrics`]);
//! - `GET /health`, `GET /static/style.css`, `GET /static/live.js`.
//!
//! Errors are JSON `{"error": "..."}`: 400 for bad parameters, 404 for unknown paths, 405 for
//! other methods, 413 for bodies over the limit, 503 when the state store fails. Nothing here
//! panics on input. Every answer carries its route template as a [`RouteLabel`] extension,
//! which the HTTP metrics use as their `route` label (`unmatched` when no route took it).

use crate::stream::Shutdown;
use crate::web::templates::StatusPage;
use crate::web::WebState;
use askama::Template;
use serde::Serialize;
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

fn labeled(route: &'static str, mut r: Response) -> Response {
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

pub fn routes(
    state: WebState,
    shutdown: Shutdown,
) -> impl Filter<Extract = (Response,), Error = std::convert::Infallible> + Clone {
    let with_state = warp::any().map(move || state.clone());

    let page = warp::path::end()
        .and(warp::get())
        .and(with_state.clone())
        .map(|s: WebState| {
            let r = match s.tables.status(s.status.snapshot()) {
                Ok(st) => match StatusPage::from_status(&st).render() {
                    Ok(html) => warp::reply::html(html).into_response(),
                    Err(e) => internal(e),
                },
                Err(e) => internal(e),
            };
            labeled("/", r)
        });

    let turnstile_all = warp::path!("api" / "turnstile")
        .and(warp::get())
        .and(with_state.clone())
        .map(|s: WebState| {
            let r = match s.tables.turnstile_all() {
                Ok(v) => json_ok(&v),
                Err(e) => internal(e),
            };
            labeled("/api/turnstile", r)
        });

    let turnstile_one = warp::path!("api" / "turnstile" / String)
        .and(warp::get())
        .and(with_state.clone())
        .map(|id: String, s: WebState| {
            let r = match id.parse::<i32>() {
                Err(_) => json_error(
                    StatusCode::BAD_REQUEST,
                    "station_id must be an integer (32-bit)",
                ),
                Ok(id) => match s.tables.turnstile_one(id) {
                    Ok(Some(v)) => json_ok(&v),
                    Ok(None) => json_error(
                        StatusCode::NOT_FOUND,
                        "no turnstile entries for this station",
                    ),
                    Err(e) => internal(e),
                },
            };
            labeled("/api/turnstile/:station_id", r)
        });

    let status = warp::path!("api" / "status")
        .and(warp::get())
        .and(with_state.clone())
        .map(|s: WebState| {
            let r = match s.tables.status(s.status.snapshot()) {
                Ok(st) => json_ok(&st),
                Err(e) => internal(e),
            };
            labeled("/api/status", r)
        });

    let events = warp::path!("api" / "events")
        .and(warp::get())
        .and(with_state.clone())
        .map(move |s: WebState| {
            labeled(
                "/api/events",
                crate::web::events::reply(s, shutdown.clone()),
            )
        });

    let metrics = warp::path!("metrics")
        .and(warp::get())
        .and(with_state.clone())
        .then(|s: WebState| async move {
            let rendered = tokio::task::spawn_blocking(move || s.metrics.render()).await;
            let r = match rendered {
                Ok(Ok(text)) => asset_owned(text, prometheus::TEXT_FORMAT),
                Ok(Err(e)) => internal(e),
                Err(e) => internal(e),
            };
            labeled("/metrics", r)
        });

    let health = warp::path!("health")
        .and(warp::get())
        .map(|| labeled("/health", warp::reply::html("ok").into_response()));

    let style = warp::path!("static" / "style.css")
        .and(warp::get())
        .map(|| {
            labeled(
                "/static/style.css",
                asset(STYLE_CSS, "text/css; charset=utf-8"),
            )
        });

    let live = warp::path!("static" / "live.js").and(warp::get()).map(|| {
        labeled(
            "/static/live.js",
            asset(LIVE_JS, "text/javascript; charset=utf-8"),
        )
    });

    page.or(turnstile_all)
        .unify()
        .or(turnstile_one)
        .unify()
        .or(status)
        .unify()
        .or(events)
        .unify()
        .or(metrics)
        .unify()
        .or(health)
        .unify()
        .or(style)
        .unify()
        .or(live)
        .unify()
        .recover(
            |r: Rejection| async move { Ok::<Response, std::convert::Infallible>(rejection(r)) },
        )
        .unify()
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
