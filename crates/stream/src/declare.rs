//! The short way to declare an app (Faust's `@app.agent` and `app.Table`): closure agents,
//! tables from a name and a source topic, and the record's key as text.
//!
//! Owns only declarations: the closures run in the same runtime as [`Agent`] implementations
//! (the poll loop in [`crate::app`], or [`crate::testing::TestDriver`]). Bigger
//! agents keep implementing [`Agent`] (two required methods, `topic` and `process`).

use crate::agent::Agent;
use crate::app::App;
use crate::error::{DecodeError, Result};
use crate::record::Record;
use crate::session::{SessionTable, Sessions};
use crate::shutdown::Shutdown;
use crate::table::{Table, TableKey, TableSpec, TableValue};
use crate::window::{WindowedTable, Windows};

/// An agent made of a topic and a closure.
pub struct FnAgent<F> {
    topic: String,
    f: F,
}

impl<F> FnAgent<F>
where
    F: FnMut(&Record<'_>) -> Result<()> + Send,
{
    pub fn new(topic: impl Into<String>, f: F) -> Self {
        Self {
            topic: topic.into(),
            f,
        }
    }
}

impl<F> Agent for FnAgent<F>
where
    F: FnMut(&Record<'_>) -> Result<()> + Send,
{
    fn name(&self) -> &str {
        &self.topic
    }

    fn topic(&self) -> &str {
        &self.topic
    }

    fn process(&mut self, record: &Record<'_>) -> Result<()> {
        (self.f)(record)
    }
}

impl App {
    /// Runs `f` for every record of `topic`, in offset order per partition. An error of kind
    /// [`crate::ErrorKind::Data`] dead-letters the record; any other stops the worker
    /// before offsets are committed.
    pub fn agent_fn<F>(&mut self, topic: impl Into<String>, f: F)
    where
        F: FnMut(&Record<'_>) -> Result<()> + Send + 'static,
    {
        self.agent(FnAgent::new(topic, f));
    }

    /// Declares the table `name`, partitioned like and fed by `source_topic`, with the
    /// changelog `{app_id}-{name}-changelog`.
    pub fn table_on<K: TableKey, V: TableValue>(
        &mut self,
        name: &str,
        source_topic: &str,
    ) -> Table<K, V> {
        self.table(TableSpec {
            name: name.to_string(),
            source_topic: source_topic.to_string(),
            changelog_topic: None,
        })
    }

    /// Declares the windowed table `name` fed by `source_topic`.
    pub fn windowed_table_on<K: TableKey, V: TableValue>(
        &mut self,
        name: &str,
        source_topic: &str,
        windows: Windows,
    ) -> WindowedTable<K, V> {
        let spec = TableSpec {
            name: name.to_string(),
            source_topic: source_topic.to_string(),
            changelog_topic: None,
        };
        self.windowed_table(spec, windows)
    }

    /// Declares the session table `name` fed by `source_topic`.
    pub fn session_table_on<K: TableKey, V: TableValue>(
        &mut self,
        name: &str,
        source_topic: &str,
        sessions: Sessions,
    ) -> SessionTable<K, V> {
        let spec = TableSpec {
            name: name.to_string(),
            source_topic: source_topic.to_string(),
            changelog_topic: None,
        };
        self.session_table(spec, sessions)
    }
}

impl Shutdown {
    /// A shutdown that Ctrl-C or SIGTERM triggers (see [`Shutdown::trigger_on_signals`]); call
    /// within a tokio runtime.
    pub fn on_ctrl_c() -> Self {
        let shutdown = Shutdown::new();
        shutdown.trigger_on_signals();
        shutdown
    }
}

impl<'a> Record<'a> {
    /// The record's key as UTF-8 text; a missing or non-UTF-8 key is a data error (the record
    /// is dead-lettered).
    pub fn key_str(&self) -> std::result::Result<&'a str, DecodeError> {
        let key = self
            .key
            .ok_or_else(|| DecodeError::Text("the record has no key".into()))?;
        std::str::from_utf8(key).map_err(|e| DecodeError::Text(format!("key is not UTF-8: {e}")))
    }

    /// The record's value as UTF-8 text (a missing or non-UTF-8 value is a data error).
    pub fn value_str(&self) -> std::result::Result<&'a str, DecodeError> {
        let value = self.payload.ok_or(DecodeError::Empty)?;
        std::str::from_utf8(value)
            .map_err(|e| DecodeError::Text(format!("value is not UTF-8: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    fn record(key: Option<&'static [u8]>) -> Record<'static> {
        Record {
            topic: "words",
            partition: 0,
            offset: 0,
            timestamp: None,
            key,
            payload: Some(b"\xff"),
        }
    }

    #[test]
    fn closure_agents_see_records_and_keys_are_text_or_data_errors() {
        let mut seen = Vec::new();
        let mut agent = FnAgent::new("words", |r: &Record<'_>| {
            seen.push(r.key_str()?.to_string());
            Ok(())
        });
        assert_eq!(agent.topic(), "words");
        agent.process(&record(Some(b"hello"))).unwrap();
        let missing = agent.process(&record(None)).unwrap_err();
        let binary = agent.process(&record(Some(b"\xc3\x28"))).unwrap_err();
        assert_eq!(missing.kind(), ErrorKind::Data);
        assert!(binary.to_string().contains("not UTF-8"), "{binary}");
        assert!(record(None).value_str().is_err());
        drop(agent);
        assert_eq!(seen, vec!["hello".to_string()]);
    }
}
