//! The registry's data: schemas by id, subjects and their versions, compatibility levels
//! ([`State`], [`Level`]); the compatibility check a registration must pass
//! ([`State::incompatibilities`]); and schema identity ([`schema_identity`]: when two
//! registrations are the same schema).
//!
//! Not here: locking and changing the state (`endpoints`), saving it (`persist`).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use apache_avro::schema_compatibility::{Compatibility, SchemaCompatibility};
use apache_avro::Schema;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::http::Answer;

/// Compatibility levels, spelled as Confluent spells them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub(super) enum Level {
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

    pub(super) fn as_str(self) -> &'static str {
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

    pub(super) fn parse(text: &str) -> Option<Level> {
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

pub(super) struct StoredSchema {
    /// The schema text as first registered; what clients get back.
    pub(super) text: String,
    parsed: Schema,
}

#[derive(Clone, Copy, Debug)]
pub(super) struct VersionEntry {
    pub(super) version: u32,
    pub(super) id: u32,
}

#[derive(Clone)]
pub(super) struct State {
    pub(super) global: Level,
    pub(super) next_id: u32,
    pub(super) schemas: BTreeMap<u32, Arc<StoredSchema>>,
    pub(super) ids_by_identity: HashMap<String, u32>,
    /// Subjects and their versions, oldest first; a listed subject has at least one version.
    pub(super) subjects: BTreeMap<String, Vec<VersionEntry>>,
    pub(super) subject_levels: BTreeMap<String, Level>,
}

impl State {
    pub(super) fn new() -> Self {
        State {
            global: Level::Backward,
            next_id: 1,
            schemas: BTreeMap::new(),
            ids_by_identity: HashMap::new(),
            subjects: BTreeMap::new(),
            subject_levels: BTreeMap::new(),
        }
    }

    pub(super) fn level_for(&self, subject: &str) -> Level {
        self.subject_levels
            .get(subject)
            .copied()
            .unwrap_or(self.global)
    }

    pub(super) fn insert_schema(
        &mut self,
        id: u32,
        text: String,
        parsed: Schema,
        identity: String,
    ) {
        self.ids_by_identity.entry(identity).or_insert(id);
        self.schemas
            .insert(id, Arc::new(StoredSchema { text, parsed }));
    }

    pub(super) fn describe(&self, subject: &str, entry: VersionEntry) -> Result<Answer, Answer> {
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
    pub(super) fn incompatibilities(
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
pub(super) fn schema_identity(schema: &Schema) -> Result<String, String> {
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
