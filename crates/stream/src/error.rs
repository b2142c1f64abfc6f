//! Errors of the stream core: one `thiserror` enum, each variant saying which operation failed,
//! and one classification: an [`ErrorKind`] telling the runtime whether the fault is the data's
//! (skip / dead-letter), the outside world's, or ours (stop), and a [`RetryHint`] saying whether
//! trying the same operation again can succeed. Mapping errors to exit codes or messages for
//! users is the application's business, not this module's.

use std::path::PathBuf;

/// Who is at fault, which decides what the runtime does with the error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The record is bad: count it, dead-letter it, go on.
    Data,
    /// A broker, registry or disk misbehaved: retry or stop without committing.
    External,
    /// A bug or an impossible state: stop.
    Internal,
}

/// Whether trying the failed operation again can succeed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryHint {
    /// Same input, same failure (bad data, a configuration the user must change, a bug).
    Never,
    /// The cause may pass (a broker, registry or disk that is briefly away): retry later.
    WithBackoff,
}

/// Why a record's bytes could not be turned into a value.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("record has no value")]
    Empty,
    /// A key or value that should be text is missing or not UTF-8.
    #[error("record text: {0}")]
    Text(String),
    #[error("payload too short for the Confluent wire format ({0} bytes, need at least 5)")]
    TooShort(usize),
    #[error("bad magic byte {0} (Confluent wire format starts with 0)")]
    BadMagic(u8),
    #[error("unknown schema id {id}: {reason}")]
    UnknownSchema { id: u32, reason: String },
    #[error("avro body does not match schema {id}: {reason}")]
    Avro { id: u32, reason: String },
    #[error("invalid JSON: {0}")]
    Json(String),
    #[error("value out of range: {0}")]
    OutOfRange(String),
    /// A repartition key function found no key for the record (see [`crate::Repartition`]).
    #[error("no key for {topic}: {reason}")]
    NoKey { topic: String, reason: String },
}

/// Errors of the stream core. New variants may come, so matches need a `_` arm; classify
/// with [`StreamError::kind`] and [`StreamError::retry_hint`] instead of matching variants.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StreamError {
    #[error("kafka {op}: {source}")]
    Kafka {
        op: &'static str,
        #[source]
        source: rdkafka::error::KafkaError,
    },
    /// A client's fatal error (it can do nothing more), e.g. a producer fenced by a newer
    /// instance with its transactional id.
    #[error("kafka {op}: fatal error {code:?}: {reason}")]
    KafkaFatal {
        op: &'static str,
        code: rdkafka::error::RDKafkaErrorCode,
        reason: String,
    },
    #[error(transparent)]
    Decode(#[from] DecodeError),
    #[error("state store {path}: {source}")]
    Store {
        path: PathBuf,
        #[source]
        source: rocksdb::Error,
    },
    #[error("state store {path}: {reason}")]
    StoreMismatch { path: PathBuf, reason: String },
    /// RocksDB found the store's files damaged (e.g. garbage in CURRENT or a MANIFEST).
    #[error("state store {path} is corrupt ({cause}); run with --reset-state to rebuild it from the changelog")]
    StoreCorrupt {
        path: PathBuf,
        cause: rocksdb::Error,
    },
    #[error("state dir {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("changelog {topic}: {reason}")]
    Changelog { topic: String, reason: String },
    #[error("schema registry {url}: {reason}")]
    Registry { url: String, reason: String },
    #[error("configuration: {0}")]
    Config(String),
    /// The broker refused the consumer group for a reason that retrying does not cure (a
    /// session timeout outside the broker's bounds, missing ACLs, an invalid group id).
    #[error("the broker refused the consumer group: {code}; {hint}")]
    GroupRefused {
        code: rdkafka::error::RDKafkaErrorCode,
        hint: &'static str,
    },
    #[error("encode: {0}")]
    Encode(String),
    /// The group removed this worker (it missed a rebalance or its session) and did not
    /// assign it partitions again in time.
    #[error("removed from the consumer group and not given partitions again within {0} s; restart the worker")]
    Fenced(u64),
    /// The in-process broker of [`crate::embedded`] could not start or do what was asked.
    #[error(transparent)]
    Embedded(#[from] crate::embedded::BrokerError),
}

impl StreamError {
    pub fn kafka(op: &'static str) -> impl FnOnce(rdkafka::error::KafkaError) -> StreamError {
        move |source| StreamError::Kafka { op, source }
    }

    /// A consumer error librdkafka would retry forever although only a change of the
    /// configuration (or of the broker's ACLs) can cure it.
    pub fn group_refused(error: &rdkafka::error::KafkaError) -> Option<StreamError> {
        use rdkafka::error::RDKafkaErrorCode as C;
        let code = error.rdkafka_error_code()?;
        let hint = match code {
            C::InvalidSessionTimeout => "set -X session.timeout.ms within the broker's group.min.session.timeout.ms and group.max.session.timeout.ms",
            C::InvalidGroupId => "choose another --app-id",
            C::GroupAuthorizationFailed | C::TopicAuthorizationFailed | C::ClusterAuthorizationFailed => {
                "check the credentials (-X sasl.*) and the broker's ACLs for this group and its topics"
            }
            C::InconsistentGroupProtocol | C::UnsupportedAssignor => "every worker of an --app-id needs the same -X partition.assignment.strategy and group.protocol",
            C::GroupMaxSizeReached => "the group has as many members as the broker allows (group.max.size); stop a worker or raise the limit",
            _ => return None,
        };
        Some(StreamError::GroupRefused { code, hint })
    }

    /// A mistake in the configuration the user fixes in the flags (exit code 2): librdkafka
    /// refusing a client's properties, or the broker refusing the group.
    pub fn is_config(&self) -> bool {
        matches!(
            self,
            StreamError::GroupRefused { .. }
                | StreamError::Kafka {
                    source: rdkafka::error::KafkaError::ClientCreation(_),
                    ..
                }
        )
    }

    /// Whether retrying can help: outside faults usually pass, except a corrupt store and a
    /// client librdkafka refused to create (its properties); data and internal faults never.
    pub fn retry_hint(&self) -> RetryHint {
        if self.is_config() || matches!(self, StreamError::StoreCorrupt { .. }) {
            return RetryHint::Never;
        }
        match self.kind() {
            ErrorKind::External => RetryHint::WithBackoff,
            ErrorKind::Data | ErrorKind::Internal => RetryHint::Never,
        }
    }

    /// Who is at fault.
    pub fn kind(&self) -> ErrorKind {
        match self {
            StreamError::Decode(_) => ErrorKind::Data,
            StreamError::Kafka { .. }
            | StreamError::KafkaFatal { .. }
            | StreamError::Store { .. }
            | StreamError::StoreCorrupt { .. }
            | StreamError::Io { .. }
            | StreamError::Changelog { .. }
            | StreamError::Registry { .. }
            | StreamError::Fenced(_)
            | StreamError::Embedded(_) => ErrorKind::External,
            StreamError::StoreMismatch { .. }
            | StreamError::Config(_)
            | StreamError::Encode(_)
            | StreamError::GroupRefused { .. } => ErrorKind::Internal,
        }
    }
}

pub type Result<T, E = StreamError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification_pairs_kind_and_retry_hint() {
        let data = StreamError::Decode(DecodeError::Empty);
        assert_eq!(
            (data.kind(), data.retry_hint()),
            (ErrorKind::Data, RetryHint::Never)
        );
        let registry = StreamError::Registry {
            url: "http://registry".into(),
            reason: "connection refused".into(),
        };
        assert_eq!(
            (registry.kind(), registry.retry_hint()),
            (ErrorKind::External, RetryHint::WithBackoff)
        );
        let client = StreamError::Kafka {
            op: "create consumer",
            source: rdkafka::error::KafkaError::ClientCreation("bad property".into()),
        };
        assert_eq!(
            (client.kind(), client.retry_hint()),
            (ErrorKind::External, RetryHint::Never)
        );
        let config = StreamError::Config("no topics".into());
        assert_eq!(
            (config.kind(), config.retry_hint()),
            (ErrorKind::Internal, RetryHint::Never)
        );
    }
}
