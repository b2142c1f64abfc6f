//! Connection settings and every librdkafka key the core sets, written out in one place.

use rdkafka::ClientConfig;
use std::time::Duration;

/// How to reach Kafka: bootstrap servers plus any user-supplied librdkafka properties
/// (`-X key=value`), which override the defaults below (SASL, SSL, ...).
#[derive(Debug, Clone)]
pub struct KafkaConfig {
    pub brokers: String,
    pub extra: Vec<(String, String)>,
    /// KIP-848 groups chosen for a broker known to speak them (see
    /// [`KafkaConfig::prefer_consumer_group_protocol`]); set on the group consumer only, where
    /// `-X` would reach every client (and make producers warn).
    kip848_preferred: bool,
    /// The broker creates a topic when a metadata request names it and has no CreateTopics
    /// (the embedded one); see [`KafkaConfig::topics_created_on_first_use`].
    auto_create: bool,
    /// `fetch.wait.max.ms` of the group consumer (see [`KafkaConfig::short_fetch_wait`]).
    group_fetch_wait_ms: u32,
}

impl KafkaConfig {
    pub fn new(brokers: impl Into<String>) -> Self {
        Self {
            brokers: brokers.into(),
            extra: Vec::new(),
            kip848_preferred: false,
            auto_create: false,
            group_fetch_wait_ms: 100,
        }
    }

    fn base(&self) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.brokers);
        c
    }

    /// Adds the user's properties that apply to `role` (they win over the defaults): a
    /// producer gets no consumer property and the reverse, since librdkafka warns about those
    /// (or, for the group's timeouts on an assign-only consumer, refuses them).
    fn finish(&self, mut c: ClientConfig, role: Role) -> ClientConfig {
        for (k, v) in &self.extra {
            if role.takes(k) {
                c.set(k, v);
            }
        }
        c
    }

    /// Producer for data, changelog and dead-letter records.
    pub fn producer(&self) -> ClientConfig {
        self.finish(self.producer_defaults(), Role::Producer)
    }

    fn producer_defaults(&self) -> ClientConfig {
        let mut c = self.base();
        // Idempotent: broker-side dedup of retries, ordering kept per partition.
        c.set("enable.idempotence", "true")
            .set("acks", "all")
            // Batch for throughput; a changelog flush waits for at most this long.
            .set("linger.ms", "5")
            .set("batch.num.messages", "10000")
            .set("compression.type", "lz4")
            .set("message.timeout.ms", "300000")
            // Java clients' partitioner (murmur2 of the key), so a key lands where Kafka
            // Streams, Kafka Connect and `Table::partition_of` expect it.
            .set("partitioner", "murmur2_random");
        c
    }

    /// Producer whose records and offsets commit in transactions (exactly-once mode).
    pub fn transactional_producer(&self, transactional_id: &str) -> ClientConfig {
        let mut c = self.producer_defaults();
        c.set("transactional.id", transactional_id)
            // A killed worker's open transaction blocks read_committed readers until the
            // broker aborts it; a restart with the same id aborts it at once.
            .set("transaction.timeout.ms", "60000")
            // librdkafka requires deliveries to give up within the transaction's timeout.
            .set("message.timeout.ms", "60000");
        // User properties still win.
        self.finish(c, Role::Producer)
    }

    /// Group consumer of the worker. Offsets are stored with the table data and committed to
    /// Kafka by the checkpoint only, never automatically.
    pub fn group_consumer(&self, group_id: &str) -> ClientConfig {
        self.group_member(group_id, None)
    }

    /// [`KafkaConfig::group_consumer`] as the static member `instance_id` (`group.instance.id`,
    /// KIP-345) in classic groups: a restart with the same id takes the old member's place and
    /// partitions at once, where a dynamic member waits for the killed one's session to time
    /// out (or for ever on brokers that never expire it). `-X group.instance.id=...` wins;
    /// KIP-848 groups (`group.protocol=consumer`) get none.
    pub fn group_member(&self, group_id: &str, instance_id: Option<&str>) -> ClientConfig {
        let mut c = self.base();
        c.set("group.id", group_id)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            .set("enable.partition.eof", "false")
            .set("isolation.level", "read_committed")
            .set("fetch.wait.max.ms", self.group_fetch_wait_ms.to_string())
            // A long restore runs inside the assignment; allow it before the group evicts us.
            .set("max.poll.interval.ms", "600000")
            // Prefetch: 20k records keep the poll loop fed (a larger queue measured no faster) at
            // a fraction of the memory (peak RSS 94 vs 173 MiB over 1M records). librdkafka checks
            // it against a partition's queue, which for the worker is the one fetch queue all
            // its partitions are forwarded to: 20k for all of them together, not for each.
            .set("queued.min.messages", "20000")
            // The default 1 s pause before refetching a partition whose local queue was full
            // left the poll loop idle most of the time once it drained the queue quickly.
            .set("fetch.queue.backoff.ms", "10");
        // The session timeout is the broker's under KIP-848 (`group.protocol=consumer`), and
        // librdkafka refuses the property there.
        if !self.uses_consumer_group_protocol() {
            c.set("session.timeout.ms", "10000");
            if let Some(id) = instance_id {
                c.set("group.instance.id", id);
            }
        } else if self.kip848_preferred {
            c.set("group.protocol", "consumer");
        }
        self.finish(c, Role::GroupConsumer)
    }

    /// For the embedded broker: it has no CreateTopics but creates a topic when a metadata
    /// request names it. Elsewhere a topic is never asked for by name before it is created, as
    /// a broker with `auto.create.topics.enable` would create it with its default partition
    /// count.
    pub fn topics_created_on_first_use(&mut self) {
        self.auto_create = true;
    }

    /// For the embedded (mock) broker: the group consumer's fetches wait at most 10 ms instead
    /// of 100. That broker holds a fetch that found nothing for its whole max wait, records
    /// arriving meanwhile included, so a record became visible about `fetch.wait.max.ms` after
    /// its produce (`bench latency`: 103 ms at 100, 11 ms at 10; on noida-db, which answers
    /// at once, 6 ms at 100). Brokers that answer when records arrive keep 100 ms: fewer idle
    /// requests, no later records. `-X fetch.wait.max.ms` still wins.
    pub fn short_fetch_wait(&mut self) {
        self.group_fetch_wait_ms = 10;
    }

    pub fn creates_topics_on_first_use(&self) -> bool {
        self.auto_create
    }

    /// For brokers known to speak KIP-848 (the embedded one): use `group.protocol=consumer`
    /// unless the user chose the classic protocol's settings themselves. A restarted worker then
    /// rejoins at once, where a classic group waits out the leaving member's rebalance.
    pub fn prefer_consumer_group_protocol(&mut self) {
        let classic_keys = [
            "group.protocol",
            "session.timeout.ms",
            "heartbeat.interval.ms",
            "partition.assignment.strategy",
            "group.instance.id",
        ];
        if !self
            .extra
            .iter()
            .any(|(k, _)| classic_keys.contains(&k.as_str()))
        {
            self.kip848_preferred = true;
        }
    }

    /// Whether assignments come incrementally: KIP-848 groups, or classic groups whose only
    /// assignor is `cooperative-sticky` (librdkafka refuses to mix eager and cooperative ones).
    pub fn incremental_rebalancing(&self) -> bool {
        self.uses_consumer_group_protocol()
            || self.extra.iter().any(|(k, v)| {
                k == "partition.assignment.strategy"
                    && v.split(',').all(|s| s.trim() == "cooperative-sticky")
            })
    }

    /// `-X group.protocol=consumer`: KIP-848 groups (incremental assignment, no join barrier).
    pub fn uses_consumer_group_protocol(&self) -> bool {
        self.kip848_preferred
            || self
                .extra
                .iter()
                .any(|(k, v)| k == "group.protocol" && v.trim().eq_ignore_ascii_case("consumer"))
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
            // Restores read one partition after another: a fetch parked at the end of the
            // last one delays the next one's first records by up to this long.
            .set("fetch.wait.max.ms", "10")
            // 50k: a 1M-record restore ran faster than with 500k (780k vs 676k records/s) and
            // peaked at 212 instead of 298 MiB.
            .set("queued.min.messages", "50000")
            .set("fetch.queue.backoff.ms", "10");
        self.finish(c, Role::Consumer)
    }

    pub fn admin(&self) -> ClientConfig {
        self.finish(self.base(), Role::Admin)
    }
}

/// Which kind of client a configuration is for, which decides the user properties it takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Producer,
    /// The worker's consumer, a member of the group.
    GroupConsumer,
    /// An assign-only consumer (restores, committed-offset reads): never joins the group.
    Consumer,
    Admin,
}

/// librdkafka's properties of group members only (scope C in its CONFIGURATION.md).
const GROUP_MEMBER_KEYS: &[&str] = &[
    "group.instance.id",
    "partition.assignment.strategy",
    "session.timeout.ms",
    "heartbeat.interval.ms",
    "group.protocol.type",
    "group.protocol",
    "group.remote.assignor",
    "coordinator.query.interval.ms",
    "max.poll.interval.ms",
];

/// librdkafka's other consumer properties (scope C).
const CONSUMER_KEYS: &[&str] = &[
    "enable.auto.commit",
    "auto.commit.interval.ms",
    "enable.auto.offset.store",
    "queued.min.messages",
    "queued.max.messages.kbytes",
    "fetch.wait.max.ms",
    "fetch.queue.backoff.ms",
    "fetch.message.max.bytes",
    "max.partition.fetch.bytes",
    "fetch.max.bytes",
    "fetch.min.bytes",
    "fetch.error.backoff.ms",
    "isolation.level",
    "enable.partition.eof",
    "check.crcs",
    "allow.auto.create.topics",
    "auto.offset.reset",
    "consume.callback.max.messages",
];

/// librdkafka's producer properties (scope P), including its topic-level ones.
const PRODUCER_KEYS: &[&str] = &[
    "transactional.id",
    "transaction.timeout.ms",
    "enable.idempotence",
    "enable.gapless.guarantee",
    "queue.buffering.max.messages",
    "queue.buffering.max.kbytes",
    "queue.buffering.max.ms",
    "linger.ms",
    "message.send.max.retries",
    "retries",
    "queue.buffering.backpressure.threshold",
    "compression.codec",
    "compression.type",
    "compression.level",
    "batch.num.messages",
    "batch.size",
    "delivery.report.only.error",
    "sticky.partitioning.linger.ms",
    "request.required.acks",
    "acks",
    "request.timeout.ms",
    "message.timeout.ms",
    "delivery.timeout.ms",
    "partitioner",
    "queuing.strategy",
];

impl Role {
    fn takes(self, key: &str) -> bool {
        let member = GROUP_MEMBER_KEYS.contains(&key);
        let consumer = member || CONSUMER_KEYS.contains(&key);
        let producer = PRODUCER_KEYS.contains(&key);
        match self {
            Role::Producer => !consumer,
            Role::GroupConsumer => !producer,
            Role::Consumer => !producer && !member,
            Role::Admin => !consumer && !producer,
        }
    }
}

/// Timeout for metadata, watermark and committed-offset requests.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

#[cfg(test)]
mod tests;
