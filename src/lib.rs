//! cta-stream: a Faust-style stream-processing app for the CTA "L" status pipeline.
//!
//! Layers (dependencies point one way: `bin → runner → {platform, web → transit → stream}`):
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
//! - [`runner`]: the composition root (worker + web, simulation, the all-in-one demo), called
//!   by the binaries and the end-to-end tests; [`endpoints`]: where Kafka and the registry are
//!   and the start-up checks; [`logging`]: tracing set-up.
//!
//! The binaries' flags (clap) live beside them in `src/bin/cli/`, out of this library's reach.

pub mod endpoints;
pub mod integrations;
pub mod logging;
pub mod platform;
pub mod runner;
pub mod transit;
pub mod web;

pub use cta_stream_core as stream;
