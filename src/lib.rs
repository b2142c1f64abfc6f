//! cta-stream: a Faust-style stream-processing app for the CTA "L" status pipeline.
//!
//! Layers (dependencies point one way: `bin → {platform, web → transit → stream}`):
//! - [`stream`]: the reusable core (app, agents, tables, changelog/recovery, codecs): the
//!   `cta-stream-core` crate (`crates/stream`), re-exported under this name. Being another
//!   crate, it cannot import anything from this one.
//! - [`transit`]: the CTA domain (stations, lines, trains, turnstiles, weather, simulation,
//!   the worker's agents and the read models the page and API use).
//! - [`web`]: warp + askama server for the status page and the JSON API.
//! - [`platform`]: the embedded demo infrastructure (in-process Kafka-protocol broker and
//!   Schema Registry), imported only by binaries and tests.
//! - [`integrations`]: the real Confluent stack's other parts (Postgres, Kafka Connect, REST
//!   Proxy, ksqlDB), reached through [`runner`].

pub mod cli;
pub mod integrations;
pub mod platform;
pub mod runner;
pub mod transit;
pub mod web;

pub use cta_stream_core as stream;
