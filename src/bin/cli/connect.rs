//! Where to reach Kafka and the Schema Registry: flags with env-var fallbacks, turned into the
//! library's [`Endpoints`] (which resolves and checks them).

use cta_stream::endpoints::{ClientProperties, Endpoints};
use std::path::PathBuf;

/// How to reach Kafka and the Schema Registry.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct EndpointArgs {
    /// Kafka bootstrap servers (host:port,...). Without it (and without
    /// --schema-registry-url), the embedded platform started by `cta` or `cta platform` on this
    /// machine is found through its discovery file.
    #[arg(long, env = "CTA_BROKERS")]
    pub brokers: Option<String>,

    /// Schema Registry URL, e.g. http://localhost:8081.
    #[arg(long, env = "CTA_SCHEMA_REGISTRY_URL")]
    pub schema_registry_url: Option<String>,

    /// Schema Registry basic auth as user:password (Confluent Cloud: API key:secret).
    #[arg(long, env = "CTA_SCHEMA_REGISTRY_AUTH", hide_env_values = true)]
    pub schema_registry_auth: Option<String>,

    /// PEM file of a CA to trust for the Schema Registry's TLS (besides the system roots).
    #[arg(long, env = "CTA_SCHEMA_REGISTRY_CA", value_name = "FILE")]
    pub schema_registry_ca: Option<PathBuf>,

    #[command(flatten)]
    pub properties: KafkaPropertyArgs,
}

/// librdkafka properties: SASL_SSL, SCRAM, mTLS and anything else librdkafka knows.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct KafkaPropertyArgs {
    /// Extra librdkafka property, repeatable: -X security.protocol=SASL_SSL -X sasl.mechanism=PLAIN
    #[arg(short = 'X', long = "kafka-property", value_name = "KEY=VALUE", value_parser = parse_property)]
    pub kafka_properties: Vec<(String, String)>,

    /// librdkafka properties in Java properties format (key=value lines, # comments), e.g. the
    /// client.properties Confluent Cloud gives out. -X wins over the file.
    #[arg(long, env = "CTA_KAFKA_PROPERTIES_FILE", value_name = "FILE")]
    pub kafka_properties_file: Option<PathBuf>,
}

fn parse_property(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_string(), v.to_string())),
        _ => Err(format!("'{s}' is not KEY=VALUE")),
    }
}

impl EndpointArgs {
    pub fn endpoints(&self) -> Endpoints {
        Endpoints {
            brokers: self.brokers.clone(),
            schema_registry_url: self.schema_registry_url.clone(),
            schema_registry_auth: self.schema_registry_auth.clone(),
            schema_registry_ca: self.schema_registry_ca.clone(),
            properties: self.properties.client_properties(),
        }
    }
}

impl KafkaPropertyArgs {
    pub fn client_properties(&self) -> ClientProperties {
        ClientProperties {
            pairs: self.kafka_properties.clone(),
            file: self.kafka_properties_file.clone(),
        }
    }
}
