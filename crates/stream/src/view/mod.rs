//! Web views of tables (Faust's table views): a warp filter any app mounts to list a table and
//! read one key, each read answered by the worker that owns the key's partition.
//!
//! - `GET /tables/{name}`: every entry, `[{"key", "value", "partition"}]` sorted by key: this
//!   worker's partitions and, unless `?scope=local`, every other worker's (asked with
//!   `?scope=local`, found in the [`Directory`]).
//! - `GET /tables/{name}/{key}`: `{"key", "value", "partition"}`. The key's partition comes from
//!   the partitioner ([`Table::partition_of`]); when this worker does not hold it, the request
//!   goes to the worker the directory names as its owner. The key in the path is percent-decoded
//!   and read as JSON when it parses as the key type (`40380`), else as a JSON string (`hello`).
//!   A [`Table::scattered`] table (keys not its source records' keys) has no owner per key: the
//!   answer is the list of every copy of the key, `[{"key", "value", "partition"}]`, gathered
//!   from every worker.
//!
//! Statuses: 404 no such key, 503 partition unknown or without an owner yet (retry), 502 the
//! owner did not answer, 500 the store failed. Owns no application types; what an app shows on
//! its own pages stays in the app.

use crate::directory::Directory;
use crate::error::{Result, StreamError};
use crate::shutdown::Shutdown;
use crate::table::{Table, TableKey, TableRuntime, TableValue};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use warp::filters::BoxedFilter;
use warp::http::StatusCode;
use warp::reply::{Reply, Response};
use warp::{Filter, Rejection};

/// One table entry as the views answer it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry<K, V> {
    pub key: K,
    pub value: V,
    pub partition: i32,
}

/// The query of a view: `?scope=local` restricts an answer to this worker's partitions (what
/// workers ask each other with).
#[derive(Debug, Default, Deserialize)]
pub struct Scope {
    pub scope: Option<String>,
}

impl Scope {
    pub fn local(&self) -> bool {
        self.scope.as_deref() == Some("local")
    }
}

/// A failed view request: its status and the one-line reason sent as `{"error": ...}`.
struct Failure(StatusCode, String);

impl From<StreamError> for Failure {
    fn from(e: StreamError) -> Self {
        Failure(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
    }
}

fn answer(result: std::result::Result<Response, Failure>) -> Response {
    result.unwrap_or_else(|Failure(status, error)| {
        let body = warp::reply::json(&serde_json::json!({ "error": error }));
        warp::reply::with_status(body, status).into_response()
    })
}

struct View<K, V> {
    table: Table<K, V>,
    directory: Option<Directory>,
    client: reqwest::Client,
}

/// How long a peer may take to answer a forwarded read.
const PEER_TIMEOUT: Duration = Duration::from_secs(3);

/// The views of `table` under `/tables/{name}`; `directory` (the app's, when it advertises a
/// query URL) routes reads of other workers' partitions. Combine views with `.or(...)`.
pub fn table_view<K: TableKey, V: TableValue>(
    table: Table<K, V>,
    directory: Option<Directory>,
) -> BoxedFilter<(Response,)> {
    let name: Arc<str> = table.name().into();
    let view = Arc::new(View {
        table,
        directory,
        client: reqwest::Client::builder()
            .timeout(PEER_TIMEOUT)
            .build()
            .unwrap_or_default(),
    });
    let base = warp::get()
        .and(warp::path("tables"))
        .and(warp::path::param::<String>())
        .and_then(move |n: String| {
            // Peers ask with the name percent-encoded (`train%2Dpositions`).
            let decoded = percent_encoding::percent_decode_str(&n).decode_utf8_lossy();
            let ok = *decoded == *name;
            async move { ok.then_some(()).ok_or_else(warp::reject::not_found) }
        })
        .untuple_one();
    let v = view.clone();
    let list = base
        .clone()
        .and(warp::path::end())
        .and(warp::query::<Scope>())
        .then(move |scope: Scope| {
            let v = v.clone();
            async move { answer(v.list(scope.local()).await) }
        });
    let one = base
        .and(warp::path::param::<String>())
        .and(warp::path::end())
        .and(warp::query::<Scope>())
        .then(move |raw: String, scope: Scope| {
            let v = view.clone();
            async move { answer(v.one(&raw, scope.local()).await) }
        });
    list.or(one).unify().boxed()
}

impl<K: TableKey, V: TableValue> View<K, V> {
    async fn list(&self, local: bool) -> std::result::Result<Response, Failure> {
        let mine = self
            .table
            .items_shared()?
            .iter()
            .map(|(partition, key, value)| Entry {
                key: key.clone(),
                value: value.clone(),
                partition: *partition,
            })
            .collect();
        let path = format!("/tables/{}", encode(self.table.name()));
        let entries = self.with_peers(mine, &path, local).await?;
        Ok(warp::reply::json(&entries).into_response())
    }

    /// `mine` and, unless `local`, every other worker's answer to `path` (a list of entries),
    /// sorted by key and partition.
    async fn with_peers(
        &self,
        mut entries: Vec<Entry<K, V>>,
        path: &str,
        local: bool,
    ) -> std::result::Result<Vec<Entry<K, V>>, Failure> {
        let peers = match (&self.directory, local) {
            (Some(d), false) => d.peer_urls(),
            _ => Vec::new(),
        };
        for url in peers {
            let (status, body) = self.ask(&url, path).await?;
            if status != StatusCode::OK {
                return Err(Failure(
                    StatusCode::BAD_GATEWAY,
                    format!("worker {url} answered {status}"),
                ));
            }
            let theirs: Vec<Entry<K, V>> = serde_json::from_slice(&body)
                .map_err(|e| Failure(StatusCode::BAD_GATEWAY, format!("worker {url}: {e}")))?;
            entries.extend(theirs);
        }
        entries.sort_by(|a, b| a.key.cmp(&b.key).then(a.partition.cmp(&b.partition)));
        Ok(entries)
    }

    /// One key of a [`Table::scattered`] table: every copy, from every partition of every
    /// worker, as a list (empty from a worker asked `?scope=local`; 404 when no worker has it).
    async fn copies(
        &self,
        raw: &str,
        key: K,
        local: bool,
    ) -> std::result::Result<Response, Failure> {
        let mine = self
            .table
            .entries_of(&key)?
            .into_iter()
            .map(|(partition, value)| Entry {
                key: key.clone(),
                value,
                partition,
            })
            .collect();
        let path = format!("/tables/{}/{}", encode(self.table.name()), encode(raw));
        let entries = self.with_peers(mine, &path, local).await?;
        if entries.is_empty() && !local {
            return Err(Failure(StatusCode::NOT_FOUND, format!("no key {raw}")));
        }
        Ok(warp::reply::json(&entries).into_response())
    }

    async fn one(&self, raw: &str, local: bool) -> std::result::Result<Response, Failure> {
        let key: K = parse_key(raw)?;
        if self.table.is_scattered() {
            return self.copies(raw, key, local).await;
        }
        let partition = self.table.partition_of(&key).ok_or_else(|| {
            Failure(
                StatusCode::SERVICE_UNAVAILABLE,
                "the table's partition count is not known yet (no partition opened)".into(),
            )
        })?;
        if local || self.table.holds_partition(partition) {
            return match self.table.value(&key)? {
                Some(value) => Ok(warp::reply::json(&Entry {
                    key,
                    value,
                    partition,
                })
                .into_response()),
                None => Err(Failure(StatusCode::NOT_FOUND, format!("no key {raw}"))),
            };
        }
        let owner = self.directory.as_ref().and_then(|d| {
            d.owners()
                .remove(&(self.table.source_topic().to_string(), partition))
                .filter(|a| a.worker_id != d.worker_id())
        });
        let Some(owner) = owner else {
            return Err(Failure(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("partition {partition} has no owner yet"),
            ));
        };
        let path = format!("/tables/{}/{}", encode(self.table.name()), encode(raw));
        let (status, body) = self.ask(&owner.url, &path).await?;
        let mut response = Response::new(body.into());
        *response.status_mut() = status;
        response.headers_mut().insert(
            warp::http::header::CONTENT_TYPE,
            warp::http::HeaderValue::from_static("application/json"),
        );
        Ok(response)
    }

    /// GET `{url}{path}?scope=local`: the status and body of the answer.
    async fn ask(
        &self,
        url: &str,
        path: &str,
    ) -> std::result::Result<(StatusCode, Vec<u8>), Failure> {
        let full = format!("{}{path}?scope=local", url.trim_end_matches('/'));
        let failed = |e: reqwest::Error| {
            Failure(
                StatusCode::BAD_GATEWAY,
                format!("worker {url} did not answer: {e}"),
            )
        };
        let resp = self.client.get(&full).send().await.map_err(failed)?;
        let status =
            StatusCode::from_u16(resp.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
        let body = resp.bytes().await.map_err(failed)?;
        Ok((status, body.to_vec()))
    }
}

/// Percent-encodes a path segment.
fn encode(segment: &str) -> String {
    percent_encoding::utf8_percent_encode(segment, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// A key from a path segment: percent-decoded, then JSON of the key type, else a JSON string.
fn parse_key<K: TableKey>(raw: &str) -> std::result::Result<K, Failure> {
    let text = percent_encoding::percent_decode_str(raw)
        .decode_utf8()
        .map_err(|e| Failure(StatusCode::BAD_REQUEST, format!("key is not UTF-8: {e}")))?;
    serde_json::from_str::<K>(&text)
        .or_else(|_| serde_json::from_value::<K>(serde_json::Value::String(text.to_string())))
        .map_err(|e| Failure(StatusCode::BAD_REQUEST, format!("bad key {text}: {e}")))
}

/// Serves `filter` on `addr` (port 0 picks a free one) until `shutdown`; returns the bound
/// address and the server task.
pub async fn serve<F, R>(
    filter: F,
    addr: impl Into<SocketAddr>,
    shutdown: Shutdown,
) -> Result<(SocketAddr, tokio::task::JoinHandle<()>)>
where
    F: Filter<Extract = (R,), Error = Rejection> + Clone + Send + Sync + 'static,
    R: Reply,
{
    let addr = addr.into();
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| StreamError::Config(format!("cannot listen on {addr}: {e}")))?;
    let bound = listener
        .local_addr()
        .map_err(|e| StreamError::Config(format!("listener on {addr}: {e}")))?;
    let task = tokio::spawn(async move {
        warp::serve(filter)
            .incoming(listener)
            .graceful(async move { shutdown.wait().await })
            .run()
            .await;
    });
    Ok((bound, task))
}

impl<K: TableKey, V: TableValue> Table<K, V> {
    /// [`table_view`] of this table.
    pub fn view(&self, directory: Option<Directory>) -> BoxedFilter<(Response,)> {
        table_view(self.clone(), directory)
    }
}

#[cfg(test)]
mod tests;
