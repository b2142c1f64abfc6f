//! Dead letters: a record an agent cannot decode (an error of kind
//! [`crate::ErrorKind::Data`]) is counted, logged and, when enabled, copied to the source
//! topic's dead-letter topic ([`names::dlq_topic`]) with headers saying why and where from.
//! Deciding which errors are the data's is the agent's and the error's business, not this.

use super::state::WorkerState;
use crate::error::{Result, StreamError};
use crate::kafka::send_blocking;
use crate::names;
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use std::sync::atomic::Ordering;

impl WorkerState {
    /// Counts and logs a record an agent could not decode and, when `enabled`, sends it with
    /// its headers and four more (error, source topic, partition, offset) to
    /// `<topic>.dlq` through the sink, so it is committed with the checkpoint.
    pub(super) fn dead_letter<M: Message>(
        &mut self,
        m: &M,
        error: &StreamError,
        enabled: bool,
    ) -> Result<()> {
        self.status.decode_errors.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(topic = m.topic(), partition = m.partition(), offset = m.offset(), %error, "record skipped");
        if !enabled {
            return Ok(());
        }
        let mut headers = OwnedHeaders::new();
        if let Some(orig) = m.headers() {
            for h in orig.iter() {
                headers = headers.insert(Header {
                    key: h.key,
                    value: h.value,
                });
            }
        }
        let reason = error.to_string();
        let partition = m.partition().to_string();
        let offset = m.offset().to_string();
        for (k, v) in [
            (names::HEADER_DLQ_ERROR, reason.as_str()),
            (names::HEADER_DLQ_TOPIC, m.topic()),
            (names::HEADER_DLQ_PARTITION, partition.as_str()),
            (names::HEADER_DLQ_OFFSET, offset.as_str()),
        ] {
            headers = headers.insert(Header {
                key: k,
                value: Some(v.as_bytes()),
            });
        }
        send_blocking(
            self.sink.producer()?,
            &names::dlq_topic(m.topic()),
            None,
            m.key(),
            m.payload(),
            Some(headers),
            None,
        )?;
        self.status.add_produced(&names::dlq_topic(m.topic()), 1);
        self.status.dead_lettered.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}
