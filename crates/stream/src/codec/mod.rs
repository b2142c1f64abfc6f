//! Codecs: bytes on the wire to typed values and back.
//!
//! - [`json`]: plain JSON (Faust table changelogs, Kafka Connect's JsonConverter without schemas).
//! - [`confluent`]: Avro in the Confluent wire format (magic byte 0, big-endian schema id, Avro
//!   body), with schemas registered in and fetched from a Schema Registry through
//!   `schema_registry_converter`, and cached by id so the hot path never leaves memory.

mod avro_plan;
pub mod confluent;
pub mod json;

pub use confluent::{AvroDecoder, AvroEncoder, RegistryConfig};
