//! Broker health: whether the worker can reach Kafka, for the page and `/api/status`, which
//! keep answering from the local tables during an outage and must then say that the figures
//! are stale.
//!
//! A small probe thread asks the cluster for one topic's metadata every [`PROBE_INTERVAL`]
//! and records the outcome in [`Status`]. It runs apart from the poll thread on purpose:
//! during an outage the poll thread is blocked in the checkpoint, waiting for the changelog's
//! acks, and cannot report anything (nor serve its clients' error callbacks). The probe decides
//! nothing: consuming and checkpointing go on retrying as librdkafka does.

use crate::config::KafkaConfig;
use crate::error::{Result, StreamError};
use crate::sensor::Status;
use crate::shutdown::Shutdown;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::KafkaError;
use rdkafka::ClientContext;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How often the brokers are asked.
pub const PROBE_INTERVAL: Duration = Duration::from_secs(1);
/// How long one probe waits for an answer.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(2);
/// Failed probes in a row before the data is called stale (one slow answer is not an outage).
pub const FAILURES_BEFORE_STALE: u32 = 2;

/// The probe's client context: its failures are the probe's result, so librdkafka's own
/// reports about them go to debug level instead of repeating the worker's clients' errors.
struct ProbeContext;

impl ClientContext for ProbeContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        tracing::debug!(?level, fac, log_message, "broker probe");
    }

    fn error(&self, error: KafkaError, reason: &str) {
        tracing::debug!(%error, reason, "broker probe");
    }
}

impl ConsumerContext for ProbeContext {}

/// The running probe; [`BrokerWatch::join`] waits for it to end after `shutdown`.
pub struct BrokerWatch {
    thread: std::thread::JoinHandle<()>,
}

impl BrokerWatch {
    /// Starts probing with `topic`'s metadata (any topic the app reads; `None` asks for all
    /// topics) until `shutdown`.
    pub fn start(
        kafka: &KafkaConfig,
        topic: Option<&str>,
        status: Arc<Status>,
        shutdown: Shutdown,
    ) -> Result<Self> {
        // A consumer-type client: its metadata requests never auto-create the topic.
        let client: BaseConsumer<ProbeContext> = kafka
            .admin()
            .create_with_context(ProbeContext)
            .map_err(StreamError::kafka("create broker probe"))?;
        let topic = topic.map(str::to_string);
        let thread = std::thread::Builder::new()
            .name("broker-probe".into())
            .spawn(move || probe_loop(&client, topic.as_deref(), &status, &shutdown))
            .map_err(|e| StreamError::Config(format!("cannot start the broker probe: {e}")))?;
        Ok(Self { thread })
    }

    /// Waits for the probe to stop (after `shutdown`; at most one probe's timeout).
    pub fn join(self) {
        if self.thread.join().is_err() {
            tracing::error!("broker probe thread panicked");
        }
    }
}

fn probe_loop(
    client: &BaseConsumer<ProbeContext>,
    topic: Option<&str>,
    status: &Status,
    shutdown: &Shutdown,
) {
    let mut failures = 0u32;
    let mut first_failure_ms = 0i64;
    while !shutdown.is_triggered() {
        let started = Instant::now();
        let at = crate::now_ms();
        match client.fetch_metadata(topic, PROBE_TIMEOUT) {
            Ok(_) => {
                if let Some(since) = status.stale_since_ms() {
                    tracing::info!(
                        down_secs = (at - since) / 1000,
                        "brokers answer again; the tables catch up"
                    );
                }
                failures = 0;
                status.brokers_reachable(at);
            }
            Err(e) => {
                if failures == 0 {
                    first_failure_ms = at;
                }
                failures += 1;
                if failures == FAILURES_BEFORE_STALE {
                    tracing::warn!(error = %e, "brokers unreachable; the tables are stale until they answer (consuming and checkpoints keep retrying)");
                }
                if failures >= FAILURES_BEFORE_STALE {
                    status.brokers_unreachable(first_failure_ms);
                }
            }
        }
        // Serve the client's own events so they do not pile up.
        let _ = client.poll(Duration::ZERO);
        while started.elapsed() < PROBE_INTERVAL && !shutdown.is_triggered() {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}
