//! One method per REST endpoint of the registry (config, schemas, subjects), and
//! [`SchemaRegistry::update`], the one way a change reaches the state and the data file.
//!
//! Not here: routing a request to these methods (`http`), parsing what they are given
//! (`request`), the compatibility rules (`state`).

use serde_json::json;
use warp::http::StatusCode;

use super::http::Answer;
use super::persist::persist;
use super::request::{
    parse_level_request, parse_version, query_flag, Candidate, Request, VersionSelector,
};
use super::state::{State, VersionEntry};
use super::SchemaRegistry;

impl SchemaRegistry {
    // ----- config -----

    pub(super) fn get_global_config(&self) -> Answer {
        let level = self.inner.lock().global;
        Answer::ok(json!({ "compatibilityLevel": level.as_str() }))
    }

    pub(super) fn put_global_config(&self, req: &Request) -> Result<Answer, Answer> {
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

    pub(super) fn get_subject_config(&self, subject: &str, query: &str) -> Result<Answer, Answer> {
        let state = self.inner.lock();
        let level = match state.subject_levels.get(subject) {
            Some(level) => *level,
            None if query_flag(query, "defaultToGlobal") => state.global,
            None => return Err(Answer::subject_level_not_configured(subject)),
        };
        Ok(Answer::ok(json!({ "compatibilityLevel": level.as_str() })))
    }

    pub(super) fn put_subject_config(
        &self,
        subject: &str,
        req: &Request,
    ) -> Result<Answer, Answer> {
        let level = parse_level_request(req)?;
        self.update(|state| {
            let previous = state.subject_levels.insert(subject.to_owned(), level);
            Ok((
                previous != Some(level),
                Answer::ok(json!({ "compatibility": level.as_str() })),
            ))
        })
    }

    pub(super) fn delete_subject_config(&self, subject: &str) -> Result<Answer, Answer> {
        self.update(|state| match state.subject_levels.remove(subject) {
            Some(level) => Ok((
                true,
                Answer::ok(json!({ "compatibilityLevel": level.as_str() })),
            )),
            None => Err(Answer::subject_level_not_configured(subject)),
        })
    }

    // ----- schemas and subjects -----

    pub(super) fn get_schema_by_id(&self, id: u32) -> Result<Answer, Answer> {
        let state = self.inner.lock();
        match state.schemas.get(&id) {
            Some(stored) => Ok(Answer::ok(json!({ "schema": stored.text }))),
            None => Err(Answer::schema_not_found()),
        }
    }

    pub(super) fn list_subjects(&self) -> Answer {
        let state = self.inner.lock();
        let names: Vec<&String> = state.subjects.keys().collect();
        Answer::ok(json!(names))
    }

    pub(super) fn list_versions(&self, subject: &str) -> Result<Answer, Answer> {
        let state = self.inner.lock();
        let versions = state
            .subjects
            .get(subject)
            .ok_or_else(|| Answer::subject_not_found(subject))?;
        let numbers: Vec<u32> = versions.iter().map(|v| v.version).collect();
        Ok(Answer::ok(json!(numbers)))
    }

    pub(super) fn get_version(&self, subject: &str, version: &str) -> Result<Answer, Answer> {
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

    pub(super) fn lookup(&self, subject: &str, req: &Request) -> Result<Answer, Answer> {
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

    pub(super) fn register(&self, subject: &str, req: &Request) -> Result<Answer, Answer> {
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

    pub(super) fn delete_subject(&self, subject: &str) -> Result<Answer, Answer> {
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
