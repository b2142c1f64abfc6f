//! The data file `<data_dir>/schemas.json`: its layout ([`PersistedState`]), reading it with
//! every check a hand-edited file may fail ([`load`]), and rewriting it atomically
//! ([`persist`]).
//!
//! Not here: when the file is written (`SchemaRegistry::update` in `endpoints`).

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::Path;

use apache_avro::Schema;
use serde::{Deserialize, Serialize};

use super::state::{schema_identity, Level, State, VersionEntry};
use super::RegistryError;

/// Name of the data file inside the data directory.
pub(super) const DATA_FILE: &str = "schemas.json";

/// Version of the data file layout.
const DATA_FORMAT: u32 = 1;

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

pub(super) fn load(path: &Path) -> Result<State, RegistryError> {
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
pub(super) fn persist(path: &Path, state: &State) -> Result<(), RegistryError> {
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
