//! The record an agent sees: a borrowed view of one Kafka message, free of rdkafka types so
//! agents can be driven without Kafka in tests.

/// One source record.
#[derive(Debug, Clone, Copy)]
pub struct Record<'a> {
    pub topic: &'a str,
    pub partition: i32,
    pub offset: i64,
    /// Milliseconds since the epoch (event time when the producer set it).
    pub timestamp: Option<i64>,
    pub key: Option<&'a [u8]>,
    pub payload: Option<&'a [u8]>,
}

impl<'a> Record<'a> {
    pub fn from_message<M: rdkafka::Message>(m: &'a M) -> Self {
        Self::from_message_of(m.topic(), m)
    }

    /// [`Record::from_message`] with the topic's name already known (librdkafka's look-up, a
    /// `strlen` and a UTF-8 check per record otherwise).
    pub fn from_message_of<M: rdkafka::Message>(topic: &'a str, m: &'a M) -> Self {
        Record {
            topic,
            partition: m.partition(),
            offset: m.offset(),
            timestamp: m.timestamp().to_millis(),
            key: m.key(),
            payload: m.payload(),
        }
    }

    /// Where the record sits and when it happened, kept past the record itself.
    pub fn at(&self) -> At {
        At {
            partition: self.partition,
            offset: self.offset,
            timestamp: self.timestamp,
        }
    }
}

/// What a table write needs of its record (partition, offset, event time), without the
/// record's borrowed bytes: an agent that gathers a batch's writes keeps these and applies the
/// writes together at the batch's end ([`crate::Agent::end_batch`], [`crate::Table::update_batch`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct At {
    pub partition: i32,
    pub offset: i64,
    /// Milliseconds since the epoch, as [`Record::timestamp`].
    pub timestamp: Option<i64>,
}

impl At {
    /// A record of `topic` at this position, without key or payload: what the table methods
    /// that take a record read of it.
    pub fn record(self, topic: &str) -> Record<'_> {
        Record {
            topic,
            partition: self.partition,
            offset: self.offset,
            timestamp: self.timestamp,
            key: None,
            payload: None,
        }
    }
}

/// Next source offset to process, per topic and partition, as the poll loop advanced it; the
/// checkpoint commits them and the sensor reports them. (Nested so the per-record update looks
/// the topic up by `&str`, without allocating.)
pub type Positions = crate::FastMap<String, crate::FastMap<i32, i64>>;
