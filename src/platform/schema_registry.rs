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

use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::fs::{self, File};
use std::io::{self, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use apache_avro::schema_compatibility::{Compatibility, SchemaCompatibility};
use apache_avro::Schema;
use bytes::{Buf, Bytes, BytesMut};
use futures::{Stream, StreamExt};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use warp::http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use warp::http::{HeaderMap, Method, StatusCode};
use warp::path::FullPath;
use warp::{Filter, Reply as _};

/// Content type of every response, as the Confluent registry sends it.
pub const RESPONSE_CONTENT_TYPE: &str = "application/vnd.schemaregistry.v1+json";

/// Largest accepted request body; bigger bodies get HTTP 413.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// An over-limit body is read and thrown away up to this many bytes, so that the client gets
/// to read the 413 instead of a reset connection; past it the connection is simply dropped.
const DRAIN_LIMIT_BYTES: u64 = 16 * MAX_BODY_BYTES as u64;

/// Name of the data file inside the data directory.
const DATA_FILE: &str = "schemas.json";

/// Version of the data file layout.
const DATA_FORMAT: u32 = 1;

/// Request content types the registry accepts for bodies (besides none at all).
const ACCEPTED_CONTENT_TYPES: [&str; 4] = [
    "application/vnd.schemaregistry.v1+json",
    "application/vnd.schemaregistry+json",
    "application/json",
    "application/octet-stream",
];

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

    /// Reads the body (within limits), then hands the request to the blocking pool: handling
    /// takes the state lock, checks compatibility and may write the data file.
    async fn respond<S, B>(
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

    // ----- config -----

    fn get_global_config(&self) -> Answer {
        let level = self.inner.lock().global;
        Answer::ok(json!({ "compatibilityLevel": level.as_str() }))
    }

    fn put_global_config(&self, req: &Request) -> Result<Answer, Answer> {
        let level = parse_level_request(req)?;
        self.update(|state| {
            let changed = state.global != level;
            state.global = level;
            Ok((
                changed,
                Answer::ok(json!({ "compatibility": level.as_str() })),
            ))
        })
    }

    fn get_subject_config(&self, subject: &str, query: &str) -> Result<Answer, Answer> {
        let state = self.inner.lock();
        let level = match state.subject_levels.get(subject) {
            Some(level) => *level,
            None if query_flag(query, "defaultToGlobal") => state.global,
            None => return Err(Answer::subject_level_not_configured(subject)),
        };
        Ok(Answer::ok(json!({ "compatibilityLevel": level.as_str() })))
    }

    fn put_subject_config(&self, subject: &str, req: &Request) -> Result<Answer, Answer> {
        let level = parse_level_request(req)?;
        self.update(|state| {
            let previous = state.subject_levels.insert(subject.to_owned(), level);
            Ok((
                previous != Some(level),
                Answer::ok(json!({ "compatibility": level.as_str() })),
            ))
        })
    }

    fn delete_subject_config(&self, subject: &str) -> Result<Answer, Answer> {
        self.update(|state| match state.subject_levels.remove(subject) {
            Some(level) => Ok((
                true,
                Answer::ok(json!({ "compatibilityLevel": level.as_str() })),
            )),
            None => Err(Answer::subject_level_not_configured(subject)),
        })
    }

    // ----- schemas and subjects -----

    fn get_schema_by_id(&self, id: u32) -> Result<Answer, Answer> {
        let state = self.inner.lock();
        match state.schemas.get(&id) {
            Some(stored) => Ok(Answer::ok(json!({ "schema": stored.text }))),
            None => Err(Answer::schema_not_found()),
        }
    }

    fn list_subjects(&self) -> Answer {
        let state = self.inner.lock();
        let names: Vec<&String> = state.subjects.keys().collect();
        Answer::ok(json!(names))
    }

    fn list_versions(&self, subject: &str) -> Result<Answer, Answer> {
        let state = self.inner.lock();
        let versions = state
            .subjects
            .get(subject)
            .ok_or_else(|| Answer::subject_not_found(subject))?;
        let numbers: Vec<u32> = versions.iter().map(|v| v.version).collect();
        Ok(Answer::ok(json!(numbers)))
    }

    fn get_version(&self, subject: &str, version: &str) -> Result<Answer, Answer> {
        // Like Confluent, an unparseable version is reported before an unknown subject.
        let wanted = parse_version(version)?;
        let state = self.inner.lock();
        let versions = state
            .subjects
            .get(subject)
            .ok_or_else(|| Answer::subject_not_found(subject))?;
        let entry = match wanted {
            VersionSelector::Latest => versions.last(),
            VersionSelector::Number(n) => versions.iter().find(|v| v.version == n),
        }
        .ok_or_else(|| Answer::version_not_found(version))?;
        state.describe(subject, *entry)
    }

    fn lookup(&self, subject: &str, req: &Request) -> Result<Answer, Answer> {
        let candidate = Candidate::from_request(req)?;
        let state = self.inner.lock();
        let versions = state.subjects.get(subject);
        let found = state
            .ids_by_identity
            .get(&candidate.identity)
            .and_then(|id| versions.and_then(|versions| versions.iter().find(|v| v.id == *id)));
        match (found, versions) {
            (Some(entry), _) => state.describe(subject, *entry),
            (None, None) => Err(Answer::subject_not_found(subject)),
            (None, Some(_)) => Err(Answer::schema_not_found()),
        }
    }

    fn register(&self, subject: &str, req: &Request) -> Result<Answer, Answer> {
        let candidate = Candidate::from_request(req)?;
        self.update(|state| {
            let known_id = state.ids_by_identity.get(&candidate.identity).copied();
            let versions = state.subjects.get(subject).cloned().unwrap_or_default();

            // Registering what the subject already has is a no-op that answers the same id.
            if let Some(id) = known_id {
                if versions.iter().any(|v| v.id == id) {
                    return Ok((false, Answer::ok(json!({ "id": id }))));
                }
            }

            let level = state.level_for(subject);
            let problems = state.incompatibilities(level, &candidate.parsed, &versions);
            if !problems.is_empty() {
                return Err(Answer::error(
                    StatusCode::CONFLICT,
                    409,
                    format!(
                        "Schema being registered is incompatible with an earlier schema for \
                         subject \"{subject}\" (compatibility level {}), details: [{}]",
                        level.as_str(),
                        problems.join("; ")
                    ),
                ));
            }

            let id = match known_id {
                Some(id) => id,
                None => {
                    let id = state.next_id;
                    state.next_id = id
                        .checked_add(1)
                        .ok_or_else(|| Answer::internal("Schema id space exhausted"))?;
                    state.insert_schema(id, candidate.text, candidate.parsed, candidate.identity);
                    id
                }
            };
            let version = match versions.last() {
                Some(last) => last
                    .version
                    .checked_add(1)
                    .ok_or_else(|| Answer::internal("Version space exhausted"))?,
                None => 1,
            };
            state
                .subjects
                .entry(subject.to_owned())
                .or_default()
                .push(VersionEntry { version, id });
            tracing::info!(subject, version, id, "schema registered");
            Ok((true, Answer::ok(json!({ "id": id }))))
        })
    }

    fn delete_subject(&self, subject: &str) -> Result<Answer, Answer> {
        self.update(|state| match state.subjects.remove(subject) {
            Some(versions) => {
                let numbers: Vec<u32> = versions.iter().map(|v| v.version).collect();
                tracing::info!(subject, ?numbers, "subject deleted");
                Ok((true, Answer::ok(json!(numbers))))
            }
            None => Err(Answer::subject_not_found(subject)),
        })
    }

    /// Applies `change` to a copy of the state; if it reports a change, persists the copy and
    /// only then makes it the current state, so a failed write changes nothing.
    fn update<F>(&self, change: F) -> Result<Answer, Answer>
    where
        F: FnOnce(&mut State) -> Result<(bool, Answer), Answer>,
    {
        let mut state = self.inner.lock();
        let mut next = state.clone();
        let (changed, answer) = change(&mut next)?;
        if changed {
            if let Some(path) = &self.inner.data_file {
                if let Err(e) = persist(path, &next) {
                    tracing::error!(error = %e, "schema registry could not persist its state");
                    return Err(Answer::internal("Error in the backend data store"));
                }
            }
            *state = next;
        }
        Ok(answer)
    }
}

// ===== state =====

/// Compatibility levels, spelled as Confluent spells them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
enum Level {
    None,
    Backward,
    BackwardTransitive,
    Forward,
    ForwardTransitive,
    Full,
    FullTransitive,
}

impl Level {
    const ALL: [Level; 7] = [
        Level::None,
        Level::Backward,
        Level::BackwardTransitive,
        Level::Forward,
        Level::ForwardTransitive,
        Level::Full,
        Level::FullTransitive,
    ];

    fn as_str(self) -> &'static str {
        match self {
            Level::None => "NONE",
            Level::Backward => "BACKWARD",
            Level::BackwardTransitive => "BACKWARD_TRANSITIVE",
            Level::Forward => "FORWARD",
            Level::ForwardTransitive => "FORWARD_TRANSITIVE",
            Level::Full => "FULL",
            Level::FullTransitive => "FULL_TRANSITIVE",
        }
    }

    fn parse(text: &str) -> Option<Level> {
        let text = text.trim();
        Level::ALL
            .into_iter()
            .find(|level| level.as_str().eq_ignore_ascii_case(text))
    }

    /// The new schema must read data written with the old ones.
    fn backward(self) -> bool {
        matches!(
            self,
            Level::Backward | Level::BackwardTransitive | Level::Full | Level::FullTransitive
        )
    }

    /// The old schemas must read data written with the new one.
    fn forward(self) -> bool {
        matches!(
            self,
            Level::Forward | Level::ForwardTransitive | Level::Full | Level::FullTransitive
        )
    }

    fn transitive(self) -> bool {
        matches!(
            self,
            Level::BackwardTransitive | Level::ForwardTransitive | Level::FullTransitive
        )
    }
}

struct StoredSchema {
    /// The schema text as first registered; what clients get back.
    text: String,
    parsed: Schema,
}

#[derive(Clone, Copy, Debug)]
struct VersionEntry {
    version: u32,
    id: u32,
}

#[derive(Clone)]
struct State {
    global: Level,
    next_id: u32,
    schemas: BTreeMap<u32, Arc<StoredSchema>>,
    ids_by_identity: HashMap<String, u32>,
    /// Subjects and their versions, oldest first; a listed subject has at least one version.
    subjects: BTreeMap<String, Vec<VersionEntry>>,
    subject_levels: BTreeMap<String, Level>,
}

impl State {
    fn new() -> Self {
        State {
            global: Level::Backward,
            next_id: 1,
            schemas: BTreeMap::new(),
            ids_by_identity: HashMap::new(),
            subjects: BTreeMap::new(),
            subject_levels: BTreeMap::new(),
        }
    }

    fn level_for(&self, subject: &str) -> Level {
        self.subject_levels
            .get(subject)
            .copied()
            .unwrap_or(self.global)
    }

    fn insert_schema(&mut self, id: u32, text: String, parsed: Schema, identity: String) {
        self.ids_by_identity.entry(identity).or_insert(id);
        self.schemas
            .insert(id, Arc::new(StoredSchema { text, parsed }));
    }

    fn describe(&self, subject: &str, entry: VersionEntry) -> Result<Answer, Answer> {
        let stored = self
            .schemas
            .get(&entry.id)
            .ok_or_else(|| Answer::internal("Registry state is inconsistent"))?;
        Ok(Answer::ok(json!({
            "subject": subject,
            "version": entry.version,
            "id": entry.id,
            "schema": stored.text,
        })))
    }

    /// Why `new` may not follow `versions` under `level`; empty when it may.
    fn incompatibilities(
        &self,
        level: Level,
        new: &Schema,
        versions: &[VersionEntry],
    ) -> Vec<String> {
        let against: &[VersionEntry] = if level.transitive() {
            versions
        } else {
            match versions.split_last() {
                Some((last, _)) => std::slice::from_ref(last),
                None => &[],
            }
        };
        let mut problems = Vec::new();
        for entry in against {
            let Some(old) = self.schemas.get(&entry.id) else {
                problems.push(format!(
                    "version {}: schema {} is missing",
                    entry.version, entry.id
                ));
                continue;
            };
            if level.backward() {
                if let Err(reason) = reads_fully(&old.parsed, new) {
                    problems.push(format!(
                        "the new schema cannot read data written with version {}: {reason}",
                        entry.version
                    ));
                }
            }
            if level.forward() {
                if let Err(reason) = reads_fully(new, &old.parsed) {
                    problems.push(format!(
                        "version {} cannot read data written with the new schema: {reason}",
                        entry.version
                    ));
                }
            }
        }
        problems
    }
}

/// Whether `reader` can read everything written with `writer`. Partial compatibility (some
/// union branches or enum symbols missing) counts as incompatible, as it does for Confluent.
fn reads_fully(writer: &Schema, reader: &Schema) -> Result<(), String> {
    match SchemaCompatibility::can_read(writer, reader) {
        Ok(Compatibility::Full) => Ok(()),
        Ok(Compatibility::Partial) => Err(
            "only partially compatible (a union branch or an enum symbol of the writer is \
             missing from the reader)"
                .to_owned(),
        ),
        Err(e) => Err(e.to_string()),
    }
}

/// Normalized JSON of a parsed schema: object keys sorted, no whitespace. Keeps everything
/// that matters for reading data (names, defaults, logical types), drops formatting.
fn schema_identity(schema: &Schema) -> Result<String, String> {
    let value = serde_json::to_value(schema).map_err(|e| e.to_string())?;
    let mut out = String::new();
    write_sorted_json(&value, &mut out);
    Ok(out)
}

fn write_sorted_json(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            out.push('{');
            for (i, (key, value)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(key.clone()).to_string());
                out.push(':');
                write_sorted_json(value, out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_sorted_json(item, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

// ===== persistence =====

#[derive(Serialize, Deserialize)]
struct PersistedState {
    format: u32,
    compatibility: Level,
    next_id: u32,
    schemas: Vec<PersistedSchema>,
    subjects: BTreeMap<String, Vec<PersistedVersion>>,
    #[serde(default)]
    subject_compatibility: BTreeMap<String, Level>,
}

#[derive(Serialize, Deserialize)]
struct PersistedSchema {
    id: u32,
    schema: String,
}

#[derive(Serialize, Deserialize)]
struct PersistedVersion {
    version: u32,
    id: u32,
}

impl PersistedState {
    fn from_state(state: &State) -> Self {
        PersistedState {
            format: DATA_FORMAT,
            compatibility: state.global,
            next_id: state.next_id,
            schemas: state
                .schemas
                .iter()
                .map(|(id, stored)| PersistedSchema {
                    id: *id,
                    schema: stored.text.clone(),
                })
                .collect(),
            subjects: state
                .subjects
                .iter()
                .map(|(name, versions)| {
                    let versions = versions
                        .iter()
                        .map(|v| PersistedVersion {
                            version: v.version,
                            id: v.id,
                        })
                        .collect();
                    (name.clone(), versions)
                })
                .collect(),
            subject_compatibility: state.subject_levels.clone(),
        }
    }

    fn into_state(self) -> Result<State, String> {
        if self.format != DATA_FORMAT {
            return Err(format!(
                "unsupported format {} (expected {DATA_FORMAT})",
                self.format
            ));
        }
        let mut state = State::new();
        state.global = self.compatibility;
        state.subject_levels = self.subject_compatibility;
        let mut max_id = 0;
        for schema in self.schemas {
            if schema.id == 0 {
                return Err("schema id 0 is not allowed".to_owned());
            }
            if state.schemas.contains_key(&schema.id) {
                return Err(format!("schema id {} appears twice", schema.id));
            }
            let parsed = Schema::parse_str(&schema.schema)
                .map_err(|e| format!("schema {} does not parse: {e}", schema.id))?;
            let identity = schema_identity(&parsed)
                .map_err(|e| format!("schema {} cannot be normalized: {e}", schema.id))?;
            max_id = max_id.max(schema.id);
            state.insert_schema(schema.id, schema.schema, parsed, identity);
        }
        state.next_id = self.next_id.max(max_id.saturating_add(1));
        for (subject, versions) in self.subjects {
            let mut entries: Vec<VersionEntry> = Vec::with_capacity(versions.len());
            for v in versions {
                if !state.schemas.contains_key(&v.id) {
                    return Err(format!(
                        "subject '{subject}' version {} refers to unknown schema id {}",
                        v.version, v.id
                    ));
                }
                if v.version == 0 || entries.last().is_some_and(|last| last.version >= v.version) {
                    return Err(format!(
                        "subject '{subject}' has versions out of order at version {}",
                        v.version
                    ));
                }
                entries.push(VersionEntry {
                    version: v.version,
                    id: v.id,
                });
            }
            if !entries.is_empty() {
                state.subjects.insert(subject, entries);
            }
        }
        Ok(state)
    }
}

fn load(path: &Path) -> Result<State, RegistryError> {
    let bytes = match fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(State::new()),
        Err(source) => {
            return Err(RegistryError::File {
                path: path.to_path_buf(),
                source,
            })
        }
    };
    let corrupt = |reason: String| RegistryError::Corrupt {
        path: path.to_path_buf(),
        reason,
    };
    let persisted: PersistedState =
        serde_json::from_slice(&bytes).map_err(|e| corrupt(e.to_string()))?;
    let state = persisted.into_state().map_err(corrupt)?;
    tracing::info!(
        path = %path.display(),
        schemas = state.schemas.len(),
        subjects = state.subjects.len(),
        "schema registry loaded"
    );
    Ok(state)
}

/// Writes the state to `path` atomically: temp file in the same directory, fsync, rename.
fn persist(path: &Path, state: &State) -> Result<(), RegistryError> {
    let file_error = |source: io::Error| RegistryError::File {
        path: path.to_path_buf(),
        source,
    };
    let bytes = serde_json::to_vec_pretty(&PersistedState::from_state(state))
        .map_err(|e| file_error(io::Error::other(e)))?;
    let tmp = path.with_extension("json.tmp");
    let written = (|| -> io::Result<()> {
        let mut file = File::create(&tmp)?;
        file.write_all(&bytes)?;
        file.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if let Err(e) = written {
        // Best effort: the temp file is garbage now, the real file is untouched.
        let _ = fs::remove_file(&tmp);
        return Err(file_error(e));
    }
    if let Some(dir) = path.parent() {
        // Make the rename itself durable where the platform allows it.
        if let Ok(dir) = File::open(dir) {
            let _ = dir.sync_all();
        }
    }
    Ok(())
}

// ===== requests and answers =====

struct Request {
    method: Method,
    /// Percent-decoded path segments.
    segments: Vec<String>,
    query: String,
    content_type: Option<String>,
    body: Bytes,
}

/// An HTTP answer: status and JSON body.
#[derive(Debug)]
struct Answer {
    status: StatusCode,
    body: Value,
}

impl Answer {
    fn ok(body: Value) -> Self {
        Answer {
            status: StatusCode::OK,
            body,
        }
    }

    fn error(status: StatusCode, error_code: u32, message: impl Into<String>) -> Self {
        Answer {
            status,
            body: json!({ "error_code": error_code, "message": message.into() }),
        }
    }

    fn not_found() -> Self {
        Answer::error(StatusCode::NOT_FOUND, 404, "HTTP 404 Not Found")
    }

    fn method_not_allowed() -> Self {
        Answer::error(
            StatusCode::METHOD_NOT_ALLOWED,
            405,
            "HTTP 405 Method Not Allowed",
        )
    }

    fn subject_not_found(subject: &str) -> Self {
        Answer::error(
            StatusCode::NOT_FOUND,
            40401,
            format!("Subject '{subject}' not found."),
        )
    }

    fn version_not_found(version: &str) -> Self {
        Answer::error(
            StatusCode::NOT_FOUND,
            40402,
            format!("Version {version} not found."),
        )
    }

    fn schema_not_found() -> Self {
        Answer::error(StatusCode::NOT_FOUND, 40403, "Schema not found")
    }

    fn subject_level_not_configured(subject: &str) -> Self {
        Answer::error(
            StatusCode::NOT_FOUND,
            40408,
            format!("Subject '{subject}' does not have subject-level compatibility configured"),
        )
    }

    fn invalid_schema(detail: impl std::fmt::Display) -> Self {
        Answer::error(
            StatusCode::UNPROCESSABLE_ENTITY,
            42201,
            format!("Invalid schema: {detail}"),
        )
    }

    fn internal(message: &str) -> Self {
        Answer::error(StatusCode::INTERNAL_SERVER_ERROR, 50001, message)
    }

    fn into_response(self) -> warp::reply::Response {
        let body = serde_json::to_vec(&self.body).unwrap_or_else(|_| b"{}".to_vec());
        warp::reply::with_status(
            warp::reply::with_header(body, CONTENT_TYPE, RESPONSE_CONTENT_TYPE),
            self.status,
        )
        .into_response()
    }
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
struct Candidate {
    text: String,
    parsed: Schema,
    identity: String,
}

impl Candidate {
    fn from_request(req: &Request) -> Result<Self, Answer> {
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

fn parse_level_request(req: &Request) -> Result<Level, Answer> {
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

enum VersionSelector {
    Latest,
    Number(u32),
}

fn parse_version(text: &str) -> Result<VersionSelector, Answer> {
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
fn query_flag(query: &str, name: &str) -> bool {
    query.split('&').any(|pair| match pair.split_once('=') {
        Some((key, value)) => key == name && value.eq_ignore_ascii_case("true"),
        None => false,
    })
}

/// Splits a raw request path into percent-decoded segments (so `a%2Fb` is one segment `a/b`).
/// A trailing slash is ignored. `None` for invalid escapes or non-UTF-8 results.
fn decode_segments(raw: &str) -> Option<Vec<String>> {
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

enum BodyError {
    TooLarge,
    Transport(warp::Error),
}

/// Collects the body up to [`MAX_BODY_BYTES`]. An over-limit body is drained (up to
/// [`DRAIN_LIMIT_BYTES`]) so the client can read the 413 answer.
async fn read_body<S, B>(body: S, declared_len: Option<u64>) -> Result<Bytes, BodyError>
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_are_percent_decoded() {
        assert_eq!(
            decode_segments("/subjects/a%2Fb.c/versions/"),
            Some(vec![
                "subjects".to_owned(),
                "a/b.c".to_owned(),
                "versions".to_owned()
            ])
        );
        assert_eq!(decode_segments("/"), Some(vec![]));
        assert_eq!(decode_segments("/subjects/%zz"), None);
        assert_eq!(decode_segments("/subjects/%2"), None);
        assert_eq!(decode_segments("/subjects/%FF"), None);
    }

    #[test]
    fn identity_ignores_formatting_but_not_defaults_or_logical_types() {
        let id = |s: &str| {
            Schema::parse_str(s)
                .map_err(|e| e.to_string())
                .and_then(|s| schema_identity(&s))
        };
        let a = id(r#"{"type":"record","name":"R","fields":[{"name":"x","type":"long"}]}"#);
        let b =
            id(r#"{ "fields": [ {"type": "long", "name": "x"} ], "name": "R", "type": "record" }"#);
        let c =
            id(r#"{"type":"record","name":"R","fields":[{"name":"x","type":"long","default":0}]}"#);
        let d = id(
            r#"{"type":"record","name":"R","fields":[{"name":"x","type":{"type":"long","logicalType":"timestamp-millis"}}]}"#,
        );
        assert!(a.is_ok());
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_ne!(a, d);
    }

    #[test]
    fn levels_parse_case_insensitively() {
        assert_eq!(Level::parse("full_transitive"), Some(Level::FullTransitive));
        assert_eq!(Level::parse("NONE"), Some(Level::None));
        assert_eq!(Level::parse("sideways"), None);
    }
}
