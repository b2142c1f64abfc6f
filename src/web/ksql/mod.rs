//! A ksqlDB-compatible REST endpoint over the worker's own tables, mounted next to the JSON
//! API, so ksqlDB clients (its CLI's statements, client libraries, `worker --ksql-url` of
//! another worker) query the native tables as they would query ksqlDB:
//! - `POST /ksql` `{"ksql": "SHOW TABLES;"}`: `SHOW STREAMS`, `SHOW TABLES`, `DESCRIBE x`
//!   ([`catalog`]), answered as ksqlDB's entity array;
//! - `POST /query` `{"ksql": "SELECT ..."}`: a pull query, answered as ksqlDB's
//!   `application/vnd.ksql.v1+json` array (header with the schema, then rows);
//! - `POST /query-stream` `{"sql": "SELECT ..."}`: the same over HTTP/1.1, as newline-delimited
//!   JSON (`application/vnd.ksqlapi.delimited.v1`, the default) or one JSON array when the
//!   client accepts `application/json`;
//! - `GET /info`: the server info ksqlDB clients read on connect.
//!
//! Statements are parsed with `sqlparser` ([`parse`]) and run across workers like the JSON
//! API ([`execute`]); answers take ksqlDB's shapes ([`format`]). Anything else (joins, push
//! queries, DDL, conditions on non-key columns, statements over 16 KiB, IN lists over 1000
//! values, bodies that are not JSON) answers 400 with ksqlDB's error object
//! `{"@type": "statement_error", "error_code": 40001, "message": …, "statementText": …}`;
//! only a worker that cannot answer (restoring its tables, a peer down) answers 503.

pub mod catalog;
pub mod client;
pub mod execute;
pub mod format;
pub mod parse;

use crate::web::routes::labeled;
use crate::web::WebState;
use parse::Statement;
use serde_json::{json, Value as Json};
use warp::http::StatusCode;
use warp::reply::Response;
use warp::{Filter, Rejection, Reply};

/// Content type of `/ksql` and `/query`.
pub const KSQL_V1: &str = "application/vnd.ksql.v1+json";
/// Default content type of `/query-stream`.
pub const DELIMITED: &str = "application/vnd.ksqlapi.delimited.v1";
/// Largest request body of these routes: room for a statement of
/// [`parse::MAX_STATEMENT_BYTES`] with JSON escapes; larger ones answer 400.
pub const MAX_BODY_BYTES: u64 = 64 * 1024;

/// ksqlDB's error object.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub status: StatusCode,
    /// `statement_error` for a statement that cannot run, `generic_error` otherwise.
    pub kind: &'static str,
    pub code: u32,
    pub message: String,
    pub statement: Option<String>,
}

impl ApiError {
    /// 400 / 40001 (ksqlDB's BAD_STATEMENT).
    pub fn statement(message: impl Into<String>, text: &str) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            kind: "statement_error",
            code: 40001,
            message: message.into(),
            statement: Some(text.to_string()),
        }
    }

    /// 400 / 40000: the request itself is malformed.
    pub fn request(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            kind: "generic_error",
            code: 40000,
            message: message.into(),
            statement: None,
        }
    }

    /// 503 / 50300: the worker cannot answer now.
    pub fn unavailable(e: impl std::fmt::Display) -> Self {
        tracing::warn!(error = %e, "ksqlDB endpoint: query failed");
        Self {
            status: StatusCode::SERVICE_UNAVAILABLE,
            kind: "generic_error",
            code: 50300,
            message: e.to_string(),
            statement: None,
        }
    }

    pub fn to_json(&self, entities: Vec<Json>) -> Json {
        let mut v = json!({
            "@type": self.kind,
            "error_code": self.code,
            "message": self.message,
        });
        if let Some(s) = &self.statement {
            v["statementText"] = json!(s);
            v["entities"] = Json::Array(entities);
        }
        v
    }

    fn response(&self, entities: Vec<Json>) -> Response {
        reply(self.status, KSQL_V1, self.to_json(entities).to_string())
    }
}

fn reply(status: StatusCode, content_type: &'static str, body: String) -> Response {
    warp::reply::with_status(
        warp::reply::with_header(body, "content-type", content_type),
        status,
    )
    .into_response()
}

/// The body limit of a path, when it is one of these routes.
pub fn body_limit(path: &str) -> Option<u64> {
    matches!(path, "/ksql" | "/query" | "/query-stream").then_some(MAX_BODY_BYTES)
}

/// The answer to a body over [`MAX_BODY_BYTES`].
pub fn body_too_large() -> Response {
    ApiError::request(format!(
        "request body over {MAX_BODY_BYTES} bytes; statements are limited to {} bytes",
        parse::MAX_STATEMENT_BYTES
    ))
    .response(Vec::new())
}

/// 503 while this worker restores its tables (answers would be incomplete).
fn recovering(s: &WebState) -> Option<ApiError> {
    s.restoring().map(|st| {
        ApiError::unavailable(format!(
            "recovering: {} of {} changelog records restored; try again shortly",
            st.restore_done, st.restore_total
        ))
    })
}

/// The statement text of a request body: the string field `field` (`ksql` or `sql`; either
/// is taken).
fn statement_text(body: Option<bytes::Bytes>, field: &str) -> Result<String, ApiError> {
    let Some(body) = body else {
        return Err(ApiError::request(format!(
            "request body unreadable or over {MAX_BODY_BYTES} bytes"
        )));
    };
    let v: Json = serde_json::from_slice(&body).map_err(|e| {
        ApiError::request(format!(
            "request body is not JSON ({e}); send {{\"{field}\": \"<statement>\"}}"
        ))
    })?;
    [field, "ksql", "sql"]
        .iter()
        .find_map(|f| v.get(*f).and_then(Json::as_str))
        .map(str::to_string)
        .ok_or_else(|| {
            ApiError::request(format!(
                "request body has no \"{field}\" string; send {{\"{field}\": \"<statement>\"}}"
            ))
        })
}

/// `POST /ksql`.
async fn ksql(s: WebState, body: Option<bytes::Bytes>) -> Response {
    let parsed = match statement_text(body, "ksql").and_then(|sql| parse::parse(&sql)) {
        Ok(p) => p,
        Err(e) => return e.response(Vec::new()),
    };
    let mut entities = Vec::new();
    for p in parsed {
        let entity = match p.statement {
            Statement::ShowStreams { .. } => catalog::show(&p.text, true),
            Statement::ShowTables { .. } => catalog::show(&p.text, false),
            Statement::Describe { source, extended } => {
                match catalog::describe(&p.text, &source, &s.tables, extended) {
                    Some(d) => d,
                    None => {
                        let e = ApiError::statement(
                            format!(
                                "{source} does not exist; the tables are {}",
                                catalog::table_names()
                            ),
                            &p.text,
                        );
                        return e.response(entities);
                    }
                }
            }
            Statement::Pull(_) => {
                let mut e = ApiError::statement(
                    "SELECT statements run on /query or /query-stream, not /ksql",
                    &p.text,
                );
                e.code = 40002;
                return e.response(entities);
            }
        };
        entities.push(entity);
    }
    reply(StatusCode::OK, KSQL_V1, Json::Array(entities).to_string())
}

/// The one pull query of a `/query` or `/query-stream` body, run.
async fn pull(
    s: &WebState,
    body: Option<bytes::Bytes>,
    field: &str,
) -> Result<execute::ResultSet, ApiError> {
    let sql = statement_text(body, field)?;
    let mut parsed = parse::parse(&sql)?;
    if parsed.len() != 1 {
        return Err(ApiError::statement(
            format!(
                "{} statements given; a query takes exactly one",
                parsed.len()
            ),
            sql.trim(),
        ));
    }
    let p = parsed.remove(0);
    match p.statement {
        Statement::Pull(q) => execute::run(s, &q, &p.text).await,
        _ => Err(ApiError::statement(
            "only SELECT runs here; SHOW and DESCRIBE go to /ksql",
            &p.text,
        )),
    }
}

/// The routes, for [`crate::web::routes::routes`] to mount.
pub fn routes(state: WebState) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    let with_state = warp::any().map(move || state.clone());
    // A body that cannot be read (over the limit, cut off) becomes `None`: a 400, not a 5xx.
    let body = warp::body::bytes()
        .map(Some)
        .or(warp::any().map(|| None))
        .unify();

    let ksql_route = warp::path!("ksql")
        .and(warp::post())
        .and(with_state.clone())
        .and(body)
        .then(|s: WebState, b| async move { labeled("/ksql", ksql(s, b).await) });

    let query = warp::path!("query")
        .and(warp::post())
        .and(with_state.clone())
        .and(body)
        .then(|s: WebState, b| async move {
            let r = match pull(&s, b, "ksql").await {
                Ok(rs) => reply(
                    StatusCode::OK,
                    KSQL_V1,
                    format::query_v1(&rs, &format::query_id()),
                ),
                Err(e) => e.response(Vec::new()),
            };
            labeled("/query", r)
        });

    let query_stream = warp::path!("query-stream")
        .and(warp::post())
        .and(warp::header::optional::<String>("accept"))
        .and(with_state.clone())
        .and(body)
        .then(|accept: Option<String>, s: WebState, b| async move {
            let json = accept.is_some_and(|a| a.contains("application/json"));
            let r = match pull(&s, b, "sql").await {
                Ok(rs) if json => reply(
                    StatusCode::OK,
                    "application/json",
                    format::query_stream_json(&rs, &format::query_id()),
                ),
                Ok(rs) => reply(
                    StatusCode::OK,
                    DELIMITED,
                    format::query_stream_delimited(&rs, &format::query_id()),
                ),
                Err(e) => e.response(Vec::new()),
            };
            labeled("/query-stream", r)
        });

    let info = warp::path!("info").and(warp::get()).map(|| {
        let body = json!({"KsqlServerInfo": {
            "version": env!("CARGO_PKG_VERSION"),
            "kafkaClusterId": "",
            "ksqlServiceId": "cta-stream",
            "serverStatus": "RUNNING",
        }});
        labeled("/info", reply(StatusCode::OK, KSQL_V1, body.to_string()))
    });

    ksql_route
        .or(query)
        .unify()
        .or(query_stream)
        .unify()
        .or(info)
        .unify()
}
