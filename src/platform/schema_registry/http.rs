//! The registry's HTTP side: what a request becomes ([`Answer`], with Confluent's status codes
//! and `error_code`s), how one request is read and handed to the blocking pool
//! ([`SchemaRegistry::respond`]), and which endpoint each method and path goes to
//! ([`SchemaRegistry::handle`]).
//!
//! Not here: the endpoints themselves (`endpoints`), reading the parts of a request
//! (`request`), the warp server (`SchemaRegistry::serve` in the module root).

use bytes::Buf;
use futures::Stream;
use serde_json::{json, Value};
use warp::http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use warp::http::{HeaderMap, Method, StatusCode};
use warp::path::FullPath;
use warp::Reply as _;

use super::request::{decode_segments, read_body, BodyError, Request};
use super::{SchemaRegistry, MAX_BODY_BYTES, RESPONSE_CONTENT_TYPE};

/// An HTTP answer: status and JSON body.
#[derive(Debug)]
pub(super) struct Answer {
    pub(super) status: StatusCode,
    body: Value,
}

impl Answer {
    pub(super) fn ok(body: Value) -> Self {
        Answer {
            status: StatusCode::OK,
            body,
        }
    }

    pub(super) fn error(status: StatusCode, error_code: u32, message: impl Into<String>) -> Self {
        Answer {
            status,
            body: json!({ "error_code": error_code, "message": message.into() }),
        }
    }

    pub(super) fn not_found() -> Self {
        Answer::error(StatusCode::NOT_FOUND, 404, "HTTP 404 Not Found")
    }

    pub(super) fn method_not_allowed() -> Self {
        Answer::error(
            StatusCode::METHOD_NOT_ALLOWED,
            405,
            "HTTP 405 Method Not Allowed",
        )
    }

    pub(super) fn subject_not_found(subject: &str) -> Self {
        Answer::error(
            StatusCode::NOT_FOUND,
            40401,
            format!("Subject '{subject}' not found."),
        )
    }

    pub(super) fn version_not_found(version: &str) -> Self {
        Answer::error(
            StatusCode::NOT_FOUND,
            40402,
            format!("Version {version} not found."),
        )
    }

    pub(super) fn schema_not_found() -> Self {
        Answer::error(StatusCode::NOT_FOUND, 40403, "Schema not found")
    }

    pub(super) fn subject_level_not_configured(subject: &str) -> Self {
        Answer::error(
            StatusCode::NOT_FOUND,
            40408,
            format!("Subject '{subject}' does not have subject-level compatibility configured"),
        )
    }

    pub(super) fn invalid_schema(detail: impl std::fmt::Display) -> Self {
        Answer::error(
            StatusCode::UNPROCESSABLE_ENTITY,
            42201,
            format!("Invalid schema: {detail}"),
        )
    }

    pub(super) fn internal(message: &str) -> Self {
        Answer::error(StatusCode::INTERNAL_SERVER_ERROR, 50001, message)
    }

    pub(super) fn into_response(self) -> warp::reply::Response {
        let body = serde_json::to_vec(&self.body).unwrap_or_else(|_| b"{}".to_vec());
        warp::reply::with_status(
            warp::reply::with_header(body, CONTENT_TYPE, RESPONSE_CONTENT_TYPE),
            self.status,
        )
        .into_response()
    }
}

impl SchemaRegistry {
    /// Reads the body (within limits), then hands the request to the blocking pool: handling
    /// takes the state lock, checks compatibility and may write the data file.
    pub(super) async fn respond<S, B>(
        self,
        method: Method,
        path: FullPath,
        query: String,
        headers: HeaderMap,
        body: S,
    ) -> warp::reply::Response
    where
        S: Stream<Item = Result<B, warp::Error>> + Send,
        B: Buf + Send,
    {
        let declared_len = headers
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        let body = match read_body(body, declared_len).await {
            Ok(body) => body,
            Err(BodyError::TooLarge) => {
                return Answer::error(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    413,
                    format!("Request body is larger than {MAX_BODY_BYTES} bytes"),
                )
                .into_response();
            }
            Err(BodyError::Transport(e)) => {
                tracing::debug!(error = %e, "schema registry could not read a request body");
                return Answer::error(StatusCode::BAD_REQUEST, 400, "Could not read request body")
                    .into_response();
            }
        };
        let content_type = headers
            .get(CONTENT_TYPE)
            .map(|v| v.to_str().unwrap_or("invalid").to_owned());
        let Some(segments) = decode_segments(path.as_str()) else {
            return Answer::not_found().into_response();
        };
        let request = Request {
            method,
            segments,
            query,
            content_type,
            body,
        };

        let registry = self.clone();
        let described = format!("{} {}", request.method, path.as_str());
        let answer = match tokio::task::spawn_blocking(move || registry.handle(&request)).await {
            Ok(answer) => answer,
            Err(e) => {
                tracing::error!(request = %described, error = %e, "schema registry handler failed");
                Answer::internal("Internal server error")
            }
        };
        tracing::debug!(request = %described, status = %answer.status, "schema registry request");
        answer.into_response()
    }

    /// Routes one request. Synchronous; runs on the blocking pool.
    fn handle(&self, req: &Request) -> Answer {
        let segments: Vec<&str> = req.segments.iter().map(String::as_str).collect();
        let method = &req.method;
        let outcome = match segments.as_slice() {
            [] => match *method {
                Method::GET => Ok(Answer::ok(json!({}))),
                _ => Err(Answer::method_not_allowed()),
            },
            ["config"] => match *method {
                Method::GET => Ok(self.get_global_config()),
                Method::PUT => self.put_global_config(req),
                _ => Err(Answer::method_not_allowed()),
            },
            ["config", subject] if !subject.is_empty() => match *method {
                Method::GET => self.get_subject_config(subject, &req.query),
                Method::PUT => self.put_subject_config(subject, req),
                Method::DELETE => self.delete_subject_config(subject),
                _ => Err(Answer::method_not_allowed()),
            },
            ["schemas", "ids", id] => match (id.parse::<u32>(), method) {
                (Err(_), _) => Err(Answer::not_found()),
                (Ok(id), &Method::GET) => self.get_schema_by_id(id),
                (Ok(_), _) => Err(Answer::method_not_allowed()),
            },
            ["subjects"] => match *method {
                Method::GET => Ok(self.list_subjects()),
                _ => Err(Answer::method_not_allowed()),
            },
            ["subjects", subject] if !subject.is_empty() => match *method {
                Method::POST => self.lookup(subject, req),
                Method::DELETE => self.delete_subject(subject),
                _ => Err(Answer::method_not_allowed()),
            },
            ["subjects", subject, "versions"] if !subject.is_empty() => match *method {
                Method::GET => self.list_versions(subject),
                Method::POST => self.register(subject, req),
                _ => Err(Answer::method_not_allowed()),
            },
            ["subjects", subject, "versions", version] if !subject.is_empty() => match *method {
                Method::GET => self.get_version(subject, version),
                _ => Err(Answer::method_not_allowed()),
            },
            _ => Err(Answer::not_found()),
        };
        outcome.unwrap_or_else(|error| error)
    }
}
