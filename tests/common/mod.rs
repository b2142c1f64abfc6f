//! Shared test harness: a broker and registry (the embedded platform by default, or any
//! Kafka-protocol broker from `CTA_TEST_BROKERS` + `CTA_TEST_SCHEMA_REGISTRY_URL`), and an
//! independent reader that counts records straight off a topic with apache-avro.
//!
//! One file per concern, all re-exported here (tests `use common::*;`): `env` (the broker
//! and registry), `topics`, `avro` (the independent reader), `producer`, `workers` (in this
//! process or as binaries), `api` (what a worker's HTTP API shows, and the waits for it),
//! `stores` (what was checkpointed and committed). `kills`, `local_broker` and `stepped` hold runs
//! and setups some tests share.
#![allow(dead_code)]

mod api;
mod avro;
mod env;
pub mod kills;
pub mod local_broker;
mod producer;
pub mod stepped;
mod stores;
mod topics;
mod workers;

// Each test binary uses part of the harness only.
#[allow(unused_imports)]
pub use self::{api::*, avro::*, env::*, producer::*, stores::*, topics::*, workers::*};
