//! The embedded Kafka-protocol broker: librdkafka's mock cluster, hosted in this process and
//! reachable by any Kafka client on loopback. Created through `rdkafka::bindings` (not
//! `rdkafka::mocking::MockCluster`) because the group rebalance delay can only be set on the
//! raw cluster handle, and without it the first consumer group join waits 3 s.
//!
//! Limits (librdkafka's): no CreateTopics (topics are created here, or auto-created with 4
//! partitions on first use), no compaction, `read_committed` not honoured, data kept in memory.

use rdkafka::bindings as rd;
use rdkafka::bindings::rd_kafka_resp_err_t as RdErr;
use rdkafka::client::Client;
use rdkafka::config::ClientConfig;
use rdkafka::producer::DefaultProducerContext;
use rdkafka::types::RDKafkaType;
use std::ffi::{CStr, CString};

#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error("cannot start the embedded broker: {0}")]
    Start(String),
    #[error("embedded broker: {op}: {code}")]
    Op { op: String, code: String },
}

pub struct EmbeddedBroker {
    cluster: *mut rd::rd_kafka_mock_cluster_t,
    bootstrap: String,
    // Declared after `cluster` so it is dropped after the cluster is destroyed (see Drop).
    _client: Client<DefaultProducerContext>,
}

// SAFETY: librdkafka's mock cluster API hands every operation to the cluster's own thread
// through an op queue, so the handle may be used from any thread.
unsafe impl Send for EmbeddedBroker {}
unsafe impl Sync for EmbeddedBroker {}

fn check(op: &str, err: rd::rd_kafka_resp_err_t) -> Result<(), BrokerError> {
    if err == rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR {
        Ok(())
    } else {
        Err(BrokerError::Op {
            op: op.to_string(),
            code: format!("{err:?}"),
        })
    }
}

impl EmbeddedBroker {
    /// Starts a cluster of `brokers` brokers on random loopback ports.
    pub fn start(brokers: i32) -> Result<Self, BrokerError> {
        let config = ClientConfig::new();
        let native = config
            .create_native_config()
            .map_err(|e| BrokerError::Start(e.to_string()))?;
        let client = Client::new(
            &config,
            native,
            RDKafkaType::RD_KAFKA_PRODUCER,
            DefaultProducerContext,
        )
        .map_err(|e| BrokerError::Start(e.to_string()))?;
        // SAFETY: the client outlives the cluster (Drop destroys the cluster first).
        let cluster = unsafe { rd::rd_kafka_mock_cluster_new(client.native_ptr(), brokers) };
        if cluster.is_null() {
            return Err(BrokerError::Start(
                "rd_kafka_mock_cluster_new failed".into(),
            ));
        }
        // SAFETY: valid cluster; the returned string lives as long as the cluster.
        let bootstrap = unsafe { CStr::from_ptr(rd::rd_kafka_mock_cluster_bootstraps(cluster)) }
            .to_string_lossy()
            .into_owned();
        // SAFETY: valid cluster handle (all three calls).
        unsafe {
            rd::rd_kafka_mock_group_initial_rebalance_delay_ms(cluster, 0);
            // KIP-848 groups (`group.protocol=consumer`): the session timeout is the broker's.
            // A dev broker moves a killed member's partitions on after 6 s.
            rd::rd_kafka_mock_set_group_consumer_session_timeout_ms(cluster, 6000);
            rd::rd_kafka_mock_set_group_consumer_heartbeat_interval_ms(cluster, 1000);
        }
        Ok(Self {
            cluster,
            bootstrap,
            _client: client,
        })
    }

    pub fn bootstrap_servers(&self) -> &str {
        &self.bootstrap
    }

    pub fn create_topic(&self, name: &str, partitions: i32) -> Result<(), BrokerError> {
        let c = CString::new(name).map_err(|_| BrokerError::Op {
            op: format!("create topic {name:?}"),
            code: "name contains NUL".into(),
        })?;
        // SAFETY: valid cluster handle and NUL-terminated name.
        check(&format!("create topic {name}"), unsafe {
            rd::rd_kafka_mock_topic_create(self.cluster, c.as_ptr(), partitions, 1)
        })
    }

    /// Takes broker `id` (1-based) down: connections are closed and refused.
    pub fn broker_down(&self, id: i32) -> Result<(), BrokerError> {
        // SAFETY: valid cluster handle.
        check("broker down", unsafe {
            rd::rd_kafka_mock_broker_set_down(self.cluster, id)
        })
    }

    pub fn broker_up(&self, id: i32) -> Result<(), BrokerError> {
        // SAFETY: valid cluster handle.
        check("broker up", unsafe {
            rd::rd_kafka_mock_broker_set_up(self.cluster, id)
        })
    }
}

/// Kafka's API keys of Fetch, OffsetCommit and Heartbeat requests.
const FETCH: i16 = 1;
const OFFSET_COMMIT: i16 = 8;
const HEARTBEAT: i16 = 12;

impl EmbeddedBroker {
    /// Fault injection (tests): the next `count` Fetch requests, from any client, fail with a
    /// retriable error (KAFKA_STORAGE_ERROR), so consumers receive no record meanwhile.
    pub fn fail_fetches(&self, count: usize) {
        let errors = vec![rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_KAFKA_STORAGE_ERROR; count];
        // SAFETY: valid cluster handle; the errors are copied before the call returns.
        unsafe {
            rd::rd_kafka_mock_push_request_errors_array(
                self.cluster,
                FETCH,
                errors.len(),
                errors.as_ptr(),
            )
        };
    }

    /// Fault injection (tests): the next OffsetCommit request broker `id` receives is answered
    /// after `delay` with ILLEGAL_GENERATION, as the group answers a member it removed (one
    /// frozen past its session timeout, say) that did not notice yet.
    pub fn refuse_next_commit(&self, id: i32, delay: std::time::Duration) {
        let rtt_ms = i32::try_from(delay.as_millis()).unwrap_or(i32::MAX);
        self.push_error(
            id,
            OFFSET_COMMIT,
            RdErr::RD_KAFKA_RESP_ERR_ILLEGAL_GENERATION,
            rtt_ms,
        );
    }

    /// Fault injection (tests): the next Heartbeat request broker `id` receives is answered
    /// with REBALANCE_IN_PROGRESS, so the member joins the group again (after
    /// [`EmbeddedBroker::refuse_next_commit`]: how a removed member learns it).
    pub fn rebalance_at_next_heartbeat(&self, id: i32) {
        self.push_error(
            id,
            HEARTBEAT,
            RdErr::RD_KAFKA_RESP_ERR_REBALANCE_IN_PROGRESS,
            0,
        );
    }

    fn push_error(&self, id: i32, api: i16, err: RdErr, rtt_ms: i32) {
        // SAFETY: valid cluster handle; one (error, rtt) pair of C ints as the count says.
        unsafe {
            rd::rd_kafka_mock_broker_push_request_error_rtts(
                self.cluster,
                id,
                api,
                1,
                err as i32,
                rtt_ms,
            )
        };
    }

    /// How many of the errors [`EmbeddedBroker::refuse_next_commit`] queued on broker `id` are
    /// still to be answered.
    pub fn commit_refusals_pending(&self, id: i32) -> usize {
        let mut count = 0usize;
        // SAFETY: valid cluster handle; `count` outlives the call. An unknown broker leaves it 0.
        unsafe {
            rd::rd_kafka_mock_broker_error_stack_cnt(self.cluster, id, OFFSET_COMMIT, &mut count)
        };
        count
    }

    /// Ends [`EmbeddedBroker::fail_fetches`]: Fetch requests are served again.
    pub fn clear_fetch_failures(&self) {
        // SAFETY: valid cluster handle.
        unsafe { rd::rd_kafka_mock_clear_request_errors(self.cluster, FETCH) };
    }
}

impl Drop for EmbeddedBroker {
    fn drop(&mut self) {
        // SAFETY: created by rd_kafka_mock_cluster_new and destroyed once, before the client.
        unsafe { rd::rd_kafka_mock_cluster_destroy(self.cluster) };
    }
}
