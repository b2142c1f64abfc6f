//! Connection settings and every librdkafka key the core sets, written out in one place.

use rdkafka::ClientConfig;
use std::time::Duration;

/// How to reach Kafka: bootstrap servers plus any user-supplied librdkafka properties
/// (`-X key=value`), which override the defaults below (SASL, SSL, ...).
#[derive(Debug, Clone)]
pub struct KafkaConfig {
    pub brokers: String,
    pub extra: Vec<(String, String)>,
}

impl KafkaConfig {
    pub fn new(brokers: impl Into<String>) -> Self {
        Self {
            brokers: brokers.into(),
            extra: Vec::new(),
        }
    }

    fn base(&self) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.brokers);
        c
    }

    fn finish(&self, mut c: ClientConfig) -> ClientConfig {
        for (k, v) in &self.extra {
            c.set(k, v);
        }
        c
    }

    /// Producer for data, changelog and dead-letter records.
    pub fn producer(&self) -> ClientConfig {
        let mut c = self.base();
        // Idempotent: broker-side dedup of retries, ordering kept per partition.
        c.set("enable.idempotence", "true")
            .set("acks", "all")
            // Batch for throughput; a changelog flush waits for at most this long.
            .set("linger.ms", "5")
            .set("batch.num.messages", "10000")
            .set("compression.type", "lz4")
            .set("message.timeout.ms", "300000");
        self.finish(c)
    }

    /// Producer whose records and offsets commit in transactions (exactly-once mode).
    pub fn transactional_producer(&self, transactional_id: &str) -> ClientConfig {
        let mut c = self.producer();
        c.set("transactional.id", transactional_id)
            // A killed worker's open transaction blocks read_committed readers until the
            // broker aborts it; a restart with the same id aborts it at once.
            .set("transaction.timeout.ms", "60000")
            // librdkafka requires deliveries to give up within the transaction's timeout.
            .set("message.timeout.ms", "60000");
        // User properties still win.
        self.finish(c)
    }

    /// Group consumer of the worker. Offsets are stored with the table data and committed to
    /// Kafka by the checkpoint only, never automatically.
    pub fn group_consumer(&self, group_id: &str) -> ClientConfig {
        let mut c = self.base();
        c.set("group.id", group_id)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            .set("enable.partition.eof", "false")
            .set("isolation.level", "read_committed")
            .set("fetch.wait.max.ms", "100")
            // A long restore runs inside the assignment; allow it before the group evicts us.
            .set("max.poll.interval.ms", "600000")
            .set("session.timeout.ms", "10000")
            .set("queued.min.messages", "200000")
            // The default 1 s pause before refetching a partition whose local queue was full
            // left the poll loop idle most of the time once it drained the queue quickly.
            .set("fetch.queue.backoff.ms", "10");
        self.finish(c)
    }

    /// Assign-only consumer used to read a changelog partition during recovery.
    pub fn restore_consumer(&self, group_id: &str) -> ClientConfig {
        let mut c = self.base();
        c.set("group.id", group_id)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            .set("enable.partition.eof", "false")
            // Changelog records of aborted transactions (exactly-once mode) are not state.
            .set("isolation.level", "read_committed")
            .set("fetch.wait.max.ms", "50")
            .set("queued.min.messages", "500000")
            .set("fetch.queue.backoff.ms", "10");
        self.finish(c)
    }

    pub fn admin(&self) -> ClientConfig {
        self.finish(self.base())
    }
}

/// Timeout for metadata, watermark and committed-offset requests.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
