//! HTTP routes:
//! - `GET /`: the status page;
//! - `GET /api/turnstile`, `GET /api/turnstile/{station_id}`: the turnstile table as JSON;
//! - `GET /api/turnstile/hourly[/{station_id}]`, `GET /api/turnstile/recent[/{station_id}]`:
//!   entries per station per hour (tumbling) and per 15 minutes every 5 (hopping);
//! - `GET /api/status`: everything the page shows, as JSON;
//! - `GET /health`, `GET /static/style.css`.
//!
//! Every API answer covers all workers of the app (see [`crate::web::cluster`]); `?scope=local`
//! limits it to this worker's partitions. While tables are being restored the API answers 503
//! `{"error": "recovering", ...}` and the page says so. Errors are JSON `{"error": "..."}` with
//! 400/404/503; nothing here panics on input.

use crate::transit::queries::Window;
use crate::web::cluster::{self, ClusterError};
use crate::web::templates::StatusPage;
use crate::web::WebState;
use askama::Template;
use serde::{Deserialize, Serialize};
use warp::http::StatusCode;
use warp::reply::Response;
use warp::{Filter, Rejection, Reply};

const STYLE: &str = include_str!("../../static/style.css");

/// `?scope=local` restricts an answer to this worker's partitions.
#[derive(Debug, Default, Deserialize)]
struct Scope {
    scope: Option<String>,
}

impl Scope {
    fn local(&self) -> bool {
        self.scope.as_deref() == Some("local")
    }
}

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

fn unavailable(e: ClusterError) -> Response {
    tracing::warn!(error = %e, "query failed");
    json_error(StatusCode::SERVICE_UNAVAILABLE, &e.to_string())
}

/// 503 while this worker restores its tables: answers would be incomplete.
fn recovering(s: &WebState) -> Option<Response> {
    let st = s.status.snapshot();
    st.recovering.then(|| {
        let body = serde_json::json!({
            "error": "recovering",
            "restored": st.restore_done,
            "total": st.restore_total,
        });
        warp::reply::with_status(warp::reply::json(&body), StatusCode::SERVICE_UNAVAILABLE)
            .into_response()
    })
}

fn parse_station(id: &str) -> Option<i32> {
    id.parse::<i32>().ok()
}

fn bad_station() -> Response {
    json_error(StatusCode::BAD_REQUEST, "station_id must be an integer")
}

pub fn routes(
    state: WebState,
) -> impl Filter<Extract = (Response,), Error = std::convert::Infallible> + Clone {
    let with_state = warp::any().map(move || state.clone());
    let scope = warp::query::<Scope>();

    let page = warp::path::end()
        .and(warp::get())
        .and(with_state.clone())
        .then(|s: WebState| async move {
            match cluster::status(&s, false).await {
                Ok(st) => match StatusPage::from_status(&st).render() {
                    Ok(html) => warp::reply::html(html).into_response(),
                    Err(e) => json_error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
                },
                Err(e) => unavailable(e),
            }
        });

    let turnstile_all = warp::path!("api" / "turnstile")
        .and(warp::get())
        .and(scope)
        .and(with_state.clone())
        .then(|q: Scope, s: WebState| async move {
            if let Some(r) = recovering(&s) {
                return r;
            }
            match cluster::turnstile(&s, None, q.local()).await {
                Ok(v) => json_ok(&v),
                Err(e) => unavailable(e),
            }
        });

    let windowed = warp::path!("api" / "turnstile" / String / ..)
        .and(warp::path::tail())
        .and(warp::get())
        .and(scope)
        .and(with_state.clone())
        .and_then(
            |kind: String, tail: warp::path::Tail, q: Scope, s: WebState| async move {
                let window = match kind.as_str() {
                    "hourly" => Window::Hourly,
                    "recent" => Window::Recent,
                    _ => return Err(warp::reject::not_found()),
                };
                let station = match tail.as_str() {
                    "" => None,
                    id => match parse_station(id) {
                        Some(id) => Some(id),
                        None => return Ok(bad_station()),
                    },
                };
                if let Some(r) = recovering(&s) {
                    return Ok(r);
                }
                Ok(
                    match cluster::windows(&s, window, station, q.local()).await {
                        Ok(v) => json_ok(&v),
                        Err(e) => unavailable(e),
                    },
                )
            },
        );

    let turnstile_one = warp::path!("api" / "turnstile" / String)
        .and(warp::get())
        .and(scope)
        .and(with_state.clone())
        .then(|id: String, q: Scope, s: WebState| async move {
            let Some(id) = parse_station(&id) else {
                return bad_station();
            };
            if let Some(r) = recovering(&s) {
                return r;
            }
            match cluster::turnstile(&s, Some(id), q.local()).await {
                Ok(v) => match v.first() {
                    Some(one) => json_ok(one),
                    None => json_error(
                        StatusCode::NOT_FOUND,
                        "no turnstile entries for this station",
                    ),
                },
                Err(e) => unavailable(e),
            }
        });

    let status = warp::path!("api" / "status")
        .and(warp::get())
        .and(scope)
        .and(with_state.clone())
        .then(|q: Scope, s: WebState| async move {
            match cluster::status(&s, q.local()).await {
                Ok(st) => json_ok(&st),
                Err(e) => unavailable(e),
            }
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
