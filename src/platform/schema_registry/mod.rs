//! Embedded, Confluent-compatible Schema Registry for the demo platform.
//!
//! What this module owns: an in-process HTTP server that answers the subset of the Confluent
//! Schema Registry REST API that Kafka serializers (here `schema_registry_converter`) and the demo
//! need, with Confluent's status codes, `error_code`s and the
//! `application/vnd.schemaregistry.v1+json` content type:
//!
//! * `POST /subjects/{subject}/versions` (register), `POST /subjects/{subject}` (look up),
//!   `GET /subjects`, `GET /subjects/{subject}/versions`,
//!   `GET /subjects/{subject}/versions/{version|latest}`, `DELETE /subjects/{subject}`;
//! * `GET /schemas/ids/{id}`;
//! * `GET|PUT /config`, `GET|PUT|DELETE /config/{subject}` with the seven Confluent
//!   compatibility levels, enforced on registration (default `BACKWARD`);
//! * optional durability: the whole registry is kept in `<data_dir>/schemas.json`, rewritten
//!   atomically (temp file + rename) on every change.
//!
//! What it does not do: schema types other than AVRO, schema references, contexts, modes
//! (READONLY/IMPORT), metadata/rule sets, `guid`s, soft-delete bookkeeping (`DELETE` removes a
//! subject's versions for good, ids stay resolvable), authentication, TLS, clustering. It is a
//! development stand-in for a real registry, not a replacement for one.
//!
//! Schema identity: two registrations are "the same schema" when their parsed Avro schemas
//! serialize to the same normalized JSON (whitespace and attribute order do not matter; names,
//! defaults, docs and logical types do). The Avro *Parsing Canonical Form* is deliberately not
//! used for this: it strips defaults and logical types, so a schema that only adds a default or a
//! `timestamp-millis` would silently be given the id of the older schema.
//!
//! Where things are: this file holds the public face ([`SchemaRegistry::open`],
//! [`SchemaRegistry::serve`], [`RegistryError`], the limits); `http` turns a warp request into
//! an `Answer` and routes it; `endpoints` has one method per REST endpoint; `request`
//! reads and checks what a request carries (body, path, JSON, version, query); `state` is the
//! registry's data and its compatibility rules; `persist` is the data file.

mod endpoints;
mod http;
mod persist;
mod request;
mod state;
#[cfg(test)]
mod tests;

use std::convert::Infallible;
use std::fs;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use warp::http::{HeaderMap, Method, StatusCode};
use warp::path::FullPath;
use warp::Filter;

use http::Answer;
use persist::{load, DATA_FILE};
use state::State;

/// Content type of every response, as the Confluent registry sends it.
pub const RESPONSE_CONTENT_TYPE: &str = "application/vnd.schemaregistry.v1+json";

/// Largest accepted request body; bigger bodies get HTTP 413.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// Errors of the registry itself (not of individual HTTP requests, which get HTTP answers).
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// An I/O failure without a more specific place.
    #[error("schema registry I/O error: {0}")]
    Io(#[from] io::Error),
    /// Reading or writing the data file (or creating its directory) failed.
    #[error("schema registry cannot access {}: {source}", path.display())]
    File {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The data file exists but cannot be understood.
    #[error("schema registry data file {} is corrupt: {reason}", path.display())]
    Corrupt { path: PathBuf, reason: String },
    /// The listening socket could not be bound.
    #[error("schema registry cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: io::Error,
    },
}

/// An in-process schema registry. Cheap to clone; clones share the same state.
#[derive(Clone)]
pub struct SchemaRegistry {
    inner: Arc<Inner>,
}

struct Inner {
    /// The whole registry. A std mutex is enough: it is only taken inside synchronous code
    /// (request handling runs on the blocking pool) and never held across an `.await`.
    state: Mutex<State>,
    /// `<data_dir>/schemas.json`, or `None` for an in-memory registry.
    data_file: Option<PathBuf>,
}

impl std::fmt::Debug for SchemaRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self.inner.lock();
        f.debug_struct("SchemaRegistry")
            .field("data_file", &self.inner.data_file)
            .field("schemas", &state.schemas.len())
            .field("subjects", &state.subjects.len())
            .finish()
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        // Writers mutate a copy and swap it in whole, so a panic while the lock was held
        // cannot have left a half-updated state behind: a poisoned lock is safe to reuse.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl SchemaRegistry {
    /// In-memory when `data_dir` is `None`; otherwise loads and persists to
    /// `<data_dir>/schemas.json` (creating the directory if needed). Every change rewrites the
    /// file through a temp file and a rename, so a crash never leaves a half-written file.
    /// A file that cannot be understood gives [`RegistryError::Corrupt`].
    pub fn open(data_dir: Option<&Path>) -> Result<Self, RegistryError> {
        let (state, data_file) = match data_dir {
            None => (State::new(), None),
            Some(dir) => {
                fs::create_dir_all(dir).map_err(|source| RegistryError::File {
                    path: dir.to_path_buf(),
                    source,
                })?;
                let path = dir.join(DATA_FILE);
                (load(&path)?, Some(path))
            }
        };
        Ok(Self {
            inner: Arc::new(Inner {
                state: Mutex::new(state),
                data_file,
            }),
        })
    }

    /// Binds `addr` (port 0 picks a free port), and serves the registry on it until
    /// `shutdown` resolves. Returns the bound address and the server task; the task ends
    /// after `shutdown` resolved and the open connections have closed.
    pub async fn serve(
        &self,
        addr: SocketAddr,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> Result<(SocketAddr, tokio::task::JoinHandle<()>), RegistryError> {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| RegistryError::Bind { addr, source })?;
        let local = listener.local_addr()?;

        let registry = self.clone();
        let routes = warp::method()
            .and(warp::path::full())
            .and(warp::query::raw().or(warp::any().map(String::new)).unify())
            .and(warp::header::headers_cloned())
            .and(warp::body::stream())
            .then(
                move |method: Method, path: FullPath, query: String, headers: HeaderMap, body| {
                    let registry = registry.clone();
                    async move { registry.respond(method, path, query, headers, body).await }
                },
            )
            .recover(|rejection: warp::Rejection| async move {
                tracing::debug!(?rejection, "schema registry request rejected by warp");
                Ok::<_, Infallible>(
                    Answer::error(StatusCode::BAD_REQUEST, 400, "Bad request").into_response(),
                )
            })
            .unify();

        let task = tokio::spawn(async move {
            warp::serve(routes)
                .incoming(listener)
                .graceful(shutdown)
                .run()
                .await;
            tracing::info!(addr = %local, "schema registry stopped");
        });
        tracing::info!(addr = %local, "schema registry listening");
        Ok((local, task))
    }
}
