//! HTTP routes:
//! - `GET /`: the status page;
//! - `GET /api/turnstile`, `GET /api/turnstile/{station_id}`: the turnstile table as JSON;
//! - `GET /api/turnstile/hourly[/{station_id}]`, `GET /api/turnstile/recent[/{station_id}]`:
//!   entries per station per hour (tumbling) and per 15 minutes every 5 (hopping);
//! - `GET /api/status`: everything the page shows, as JSON;
//! - `GET /health`, `GET /static/style.css`.
//!
//! Errors are JSON `{"error": "..."}` with 400/404; nothing here panics on input.

use crate::transit::queries::Window;
use crate::web::templates::StatusPage;
use crate::web::WebState;
use askama::Template;
use serde::Serialize;
use warp::http::StatusCode;
use warp::reply::Response;
use warp::{Filter, Rejection, Reply};

const STYLE: &str = include_str!("../../static/style.css");

fn json_error(status: StatusCode, msg: &str) -> Response {
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

pub fn routes(
    state: WebState,
) -> impl Filter<Extract = (Response,), Error = std::convert::Infallible> + Clone {
    let with_state = warp::any().map(move || state.clone());

    let page = warp::path::end()
        .and(warp::get())
        .and(with_state.clone())
        .map(|s: WebState| match s.tables.status(s.status.snapshot()) {
            Ok(st) => match StatusPage::from_status(&st).render() {
                Ok(html) => warp::reply::html(html).into_response(),
                Err(e) => internal(e),
            },
            Err(e) => internal(e),
        });

    let turnstile_all = warp::path!("api" / "turnstile")
        .and(warp::get())
        .and(with_state.clone())
        .map(|s: WebState| match s.tables.turnstile_all() {
            Ok(v) => json_ok(&v),
            Err(e) => internal(e),
        });

    let turnstile_one = warp::path!("api" / "turnstile" / String)
        .and(warp::get())
        .and(with_state.clone())
        .map(|id: String, s: WebState| match id.parse::<i32>() {
            Err(_) => json_error(StatusCode::BAD_REQUEST, "station_id must be an integer"),
            Ok(id) => match s.tables.turnstile_one(id) {
                Ok(Some(v)) => json_ok(&v),
                Ok(None) => json_error(
                    StatusCode::NOT_FOUND,
                    "no turnstile entries for this station",
                ),
                Err(e) => internal(e),
            },
        });

    let windowed = warp::path!("api" / "turnstile" / String / ..)
        .and(warp::path::tail())
        .and(warp::get())
        .and(with_state.clone())
        .and_then(
            |kind: String, tail: warp::path::Tail, s: WebState| async move {
                let window = match kind.as_str() {
                    "hourly" => Window::Hourly,
                    "recent" => Window::Recent,
                    _ => return Err(warp::reject::not_found()),
                };
                let station = match tail.as_str() {
                    "" => None,
                    id => match id.parse::<i32>() {
                        Ok(id) => Some(id),
                        Err(_) => {
                            return Ok(json_error(
                                StatusCode::BAD_REQUEST,
                                "station_id must be an integer",
                            ))
                        }
                    },
                };
                Ok(match s.tables.turnstile_windows(window, station) {
                    Ok(v) => json_ok(&v),
                    Err(e) => internal(e),
                })
            },
        );

    let status = warp::path!("api" / "status")
        .and(warp::get())
        .and(with_state.clone())
        .map(|s: WebState| match s.tables.status(s.status.snapshot()) {
            Ok(st) => json_ok(&st),
            Err(e) => internal(e),
        });

    let health = warp::path!("health")
        .and(warp::get())
        .map(|| warp::reply::html("ok").into_response());

    let style = warp::path!("static" / "style.css")
        .and(warp::get())
        .map(|| {
            warp::reply::with_header(STYLE, "content-type", "text/css; charset=utf-8")
                .into_response()
        });

    page.or(turnstile_all)
        .unify()
        .or(windowed)
        .unify()
        .or(turnstile_one)
        .unify()
        .or(status)
        .unify()
        .or(health)
        .unify()
        .or(style)
        .unify()
        .recover(
            |r: Rejection| async move { Ok::<Response, std::convert::Infallible>(rejection(r)) },
        )
        .unify()
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
