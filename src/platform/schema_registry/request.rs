//! What a request carries, read and checked: the body within [`MAX_BODY_BYTES`]
//! ([`read_body`]), the percent-decoded path ([`decode_segments`]), JSON bodies with their
//! content type ([`json_body`]), a schema to register or look up ([`Candidate`]), a
//! compatibility level, a version (`latest` or a number) and query flags. Each refusal is the
//! [`Answer`] Confluent gives.
//!
//! Not here: what the endpoints do with them (`endpoints`).

use apache_avro::Schema;
use bytes::{Buf, Bytes, BytesMut};
use futures::{Stream, StreamExt};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::Value;
use warp::http::{Method, StatusCode};

use super::http::Answer;
use super::state::{schema_identity, Level};
use super::MAX_BODY_BYTES;

/// An over-limit body is read and thrown away up to this many bytes, so that the client gets
/// to read the 413 instead of a reset connection; past it the connection is simply dropped.
const DRAIN_LIMIT_BYTES: u64 = 16 * MAX_BODY_BYTES as u64;

/// Request content types the registry accepts for bodies (besides none at all).
const ACCEPTED_CONTENT_TYPES: [&str; 4] = [
    "application/vnd.schemaregistry.v1+json",
    "application/vnd.schemaregistry+json",
    "application/json",
    "application/octet-stream",
];

pub(super) struct Request {
    pub(super) method: Method,
    /// Percent-decoded path segments.
    pub(super) segments: Vec<String>,
    pub(super) query: String,
    pub(super) content_type: Option<String>,
    pub(super) body: Bytes,
}

/// Body of register and lookup requests.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SchemaRequest {
    schema: Option<String>,
    schema_type: Option<String>,
    references: Option<Vec<Value>>,
}

/// Body of `PUT /config[/{subject}]`.
#[derive(Deserialize)]
struct ConfigRequest {
    compatibility: Option<String>,
}

/// A schema from a request, parsed and ready for comparison.
pub(super) struct Candidate {
    pub(super) text: String,
    pub(super) parsed: Schema,
    pub(super) identity: String,
}

impl Candidate {
    pub(super) fn from_request(req: &Request) -> Result<Self, Answer> {
        let body: SchemaRequest = json_body(req)?;
        if let Some(kind) = body.schema_type.as_deref() {
            if !kind.eq_ignore_ascii_case("AVRO") {
                return Err(Answer::invalid_schema(format_args!(
                    "schema type '{kind}' is not supported, this registry only accepts AVRO"
                )));
            }
        }
        if body.references.as_ref().is_some_and(|r| !r.is_empty()) {
            return Err(Answer::invalid_schema(
                "schema references are not supported by this registry",
            ));
        }
        let text = match body.schema {
            Some(text) if !text.trim().is_empty() => text,
            _ => return Err(Answer::invalid_schema("empty schema")),
        };
        let parsed = Schema::parse_str(&text).map_err(Answer::invalid_schema)?;
        let identity = schema_identity(&parsed).map_err(Answer::invalid_schema)?;
        Ok(Candidate {
            text,
            parsed,
            identity,
        })
    }
}

pub(super) fn parse_level_request(req: &Request) -> Result<Level, Answer> {
    let body: ConfigRequest = json_body(req)?;
    body.compatibility
        .as_deref()
        .and_then(Level::parse)
        .ok_or_else(|| {
            Answer::error(
                StatusCode::UNPROCESSABLE_ENTITY,
                42203,
                "Invalid compatibility level. Valid values are none, backward, forward, full, \
                 backward_transitive, forward_transitive, and full_transitive",
            )
        })
}

/// Checks the content type and parses the JSON body. Malformed JSON is HTTP 400 (as
/// Confluent's JSON parse error mapper answers); well-formed JSON of the wrong shape is 422.
fn json_body<T: DeserializeOwned>(req: &Request) -> Result<T, Answer> {
    if let Some(content_type) = &req.content_type {
        let essence = content_type
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase();
        if !ACCEPTED_CONTENT_TYPES.contains(&essence.as_str()) {
            return Err(Answer::error(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                415,
                "HTTP 415 Unsupported Media Type",
            ));
        }
    }
    serde_json::from_slice(&req.body).map_err(|e| match e.classify() {
        serde_json::error::Category::Data => Answer::error(
            StatusCode::UNPROCESSABLE_ENTITY,
            422,
            format!("Unprocessable entity: {e}"),
        ),
        _ => Answer::error(StatusCode::BAD_REQUEST, 400, format!("Malformed JSON: {e}")),
    })
}

pub(super) enum VersionSelector {
    Latest,
    Number(u32),
}

pub(super) fn parse_version(text: &str) -> Result<VersionSelector, Answer> {
    if text.eq_ignore_ascii_case("latest") || text == "-1" {
        return Ok(VersionSelector::Latest);
    }
    match text.parse::<i32>() {
        Ok(n) if n >= 1 => Ok(VersionSelector::Number(n.unsigned_abs())),
        _ => Err(Answer::error(
            StatusCode::UNPROCESSABLE_ENTITY,
            42202,
            format!(
                "The specified version '{text}' is not a valid version id. Allowed values are \
                 between [1, 2^31-1] and the string \"latest\""
            ),
        )),
    }
}

/// Whether `name=true` is in the raw query string.
pub(super) fn query_flag(query: &str, name: &str) -> bool {
    query.split('&').any(|pair| match pair.split_once('=') {
        Some((key, value)) => key == name && value.eq_ignore_ascii_case("true"),
        None => false,
    })
}

/// Splits a raw request path into percent-decoded segments (so `a%2Fb` is one segment `a/b`).
/// A trailing slash is ignored. `None` for invalid escapes or non-UTF-8 results.
pub(super) fn decode_segments(raw: &str) -> Option<Vec<String>> {
    let trimmed = raw.strip_prefix('/').unwrap_or(raw);
    let trimmed = trimmed.strip_suffix('/').unwrap_or(trimmed);
    if trimmed.is_empty() {
        return Some(Vec::new());
    }
    trimmed.split('/').map(percent_decode).collect()
}

fn percent_decode(segment: &str) -> Option<String> {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            let hex = std::str::from_utf8(hex).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

pub(super) enum BodyError {
    TooLarge,
    Transport(warp::Error),
}

/// Collects the body up to [`MAX_BODY_BYTES`]. An over-limit body is drained (up to
/// [`DRAIN_LIMIT_BYTES`]) so the client can read the 413 answer.
pub(super) async fn read_body<S, B>(body: S, declared_len: Option<u64>) -> Result<Bytes, BodyError>
where
    S: Stream<Item = Result<B, warp::Error>>,
    B: Buf,
{
    let limit = MAX_BODY_BYTES as u64;
    let mut too_large = declared_len.is_some_and(|n| n > limit);
    if declared_len.is_some_and(|n| n > DRAIN_LIMIT_BYTES) {
        return Err(BodyError::TooLarge);
    }
    let mut body = std::pin::pin!(body);
    let mut collected = BytesMut::new();
    let mut seen: u64 = 0;
    while let Some(chunk) = body.next().await {
        let mut chunk = chunk.map_err(BodyError::Transport)?;
        seen = seen.saturating_add(chunk.remaining() as u64);
        if seen > limit {
            too_large = true;
        }
        if too_large {
            if seen > DRAIN_LIMIT_BYTES {
                break;
            }
            chunk.advance(chunk.remaining());
            continue;
        }
        while chunk.has_remaining() {
            let piece = chunk.chunk();
            let len = piece.len();
            collected.extend_from_slice(piece);
            chunk.advance(len);
        }
    }
    if too_large {
        Err(BodyError::TooLarge)
    } else {
        Ok(collected.freeze())
    }
}
