//! Where Kafka and the Schema Registry are, and whether the client settings work: the
//! endpoints a binary was given (or the embedded platform's discovery file), the librdkafka
//! properties from `-X` pairs and a Java properties file, and the start-up checks that make a
//! configuration mistake fail at once, naming its flag. The flags themselves belong to the
//! binaries (`src/bin/cli`); this module takes their values.

use crate::platform;
use crate::stream::{KafkaConfig, RegistryConfig};
use std::path::PathBuf;

/// How to reach Kafka and the Schema Registry. Without brokers and registry URL, the embedded
/// platform running on this machine is found through its discovery file.
#[derive(Debug, Clone, Default)]
pub struct Endpoints {
    /// Kafka bootstrap servers (`--brokers`).
    pub brokers: Option<String>,
    /// Schema Registry URL (`--schema-registry-url`).
    pub schema_registry_url: Option<String>,
    /// Schema Registry basic auth as user:password (`--schema-registry-auth`).
    pub schema_registry_auth: Option<String>,
    /// PEM file of a CA to trust for the registry's TLS (`--schema-registry-ca`).
    pub schema_registry_ca: Option<PathBuf>,
    pub properties: ClientProperties,
}

/// librdkafka properties: a Java properties file (`--kafka-properties-file`), then `-X` pairs.
#[derive(Debug, Clone, Default)]
pub struct ClientProperties {
    /// `-X KEY=VALUE` pairs, in order; they win over the file.
    pub pairs: Vec<(String, String)>,
    /// key=value lines, # comments, e.g. the client.properties Confluent Cloud gives out.
    pub file: Option<PathBuf>,
}

/// Configuration errors, each naming the flag to fix: the binaries exit with code 2 on these.
#[derive(Debug, thiserror::Error)]
pub enum EndpointError {
    #[error("--brokers is set but --schema-registry-url is not; give both (or neither, to use the embedded platform)")]
    MissingRegistry,
    #[error("--schema-registry-url is set but --brokers is not; give both (or neither, to use the embedded platform)")]
    MissingBrokers,
    #[error("no --brokers given and no embedded platform is running (looked for {0}); start one with `cargo run --release --bin cta -- platform`, or run everything with `cargo run --release`")]
    NoPlatform(String),
    #[error("--kafka-properties-file {path}: {reason}")]
    PropertiesFile { path: String, reason: String },
    /// `origin` is `-X` or `--kafka-properties-file FILE line N`; the value is never shown.
    #[error("{origin} {key}: {reason}")]
    KafkaProperty {
        origin: String,
        key: String,
        reason: String,
    },
    #[error("Kafka client properties (-X / --kafka-properties-file) do not work together: {0}")]
    KafkaClient(String),
    #[error("--schema-registry-ca {path}: {reason}")]
    RegistryCa { path: String, reason: String },
    #[error("--schema-registry-url {url}: cannot reach the schema registry: {reason}")]
    RegistryUnreachable { url: String, reason: String },
    #[error("--schema-registry-url {url}: the schema registry refused access (HTTP {status}); check --schema-registry-auth")]
    RegistryAuth { url: String, status: u16 },
    #[error(
        "--schema-registry-url {url}: not a schema registry? GET /subjects answered HTTP {status}"
    )]
    RegistryStatus { url: String, status: u16 },
}

impl ClientProperties {
    /// The properties in effect, file first then -X, each checked by librdkafka itself.
    pub fn resolve(&self) -> Result<Vec<(String, String)>, EndpointError> {
        let mut out = Vec::new();
        if let Some(path) = &self.file {
            let name = path.display().to_string();
            let file = std::fs::File::open(path).map_err(|e| EndpointError::PropertiesFile {
                path: name.clone(),
                reason: e.to_string(),
            })?;
            for line in java_properties::PropertiesIter::new(std::io::BufReader::new(file)) {
                let line = line.map_err(|e| EndpointError::PropertiesFile {
                    path: name.clone(),
                    reason: crate::integrations::flatten(&e.to_string()),
                })?;
                let n = line.line_number();
                if let java_properties::LineContent::KVPair(k, v) = line.consume_content() {
                    let origin = format!("--kafka-properties-file {name} line {n}");
                    if k == "sasl.jaas.config" {
                        // The Java client's form of the SASL credentials.
                        for (k, v) in jaas_credentials(&v).ok_or_else(|| {
                            EndpointError::KafkaProperty {
                                origin: origin.clone(),
                                key: k.clone(),
                                reason: "expected a login module with username='…' password='…'; or give sasl.username and sasl.password".into(),
                            }
                        })? {
                            out.push((k.to_string(), v));
                        }
                        continue;
                    }
                    check_property(&origin, &k, &v)?;
                    out.push((k, v));
                }
            }
        }
        for (k, v) in &self.pairs {
            check_property("-X", k, v)?;
            out.push((k.clone(), v.clone()));
        }
        Ok(out)
    }
}

/// `sasl.username` / `sasl.password` from a Java `sasl.jaas.config` value such as
/// `org.apache.kafka.common.security.plain.PlainLoginModule required username='K' password='S';`.
fn jaas_credentials(value: &str) -> Option<[(&'static str, String); 2]> {
    let option = |name: &str| -> Option<String> {
        let start = value.find(&format!("{name}="))? + name.len() + 1;
        let rest = &value[start..];
        let quote = rest.chars().next().filter(|c| *c == '\'' || *c == '"')?;
        let body = &rest[1..];
        Some(body[..body.find(quote)?].to_string())
    };
    Some([
        ("sasl.username", option("username")?),
        ("sasl.password", option("password")?),
    ])
}

/// Sets one property on an empty librdkafka configuration: unknown keys and bad values fail.
fn check_property(origin: &str, key: &str, value: &str) -> Result<(), EndpointError> {
    // Confluent Cloud's client.properties mixes in the Java registry client's keys.
    if key.starts_with("schema.registry.") || key.starts_with("basic.auth.") {
        return Err(EndpointError::KafkaProperty {
            origin: origin.to_string(),
            key: key.to_string(),
            reason: "a Schema Registry setting, not a Kafka client one: use --schema-registry-url, --schema-registry-auth".into(),
        });
    }
    let mut c = rdkafka::ClientConfig::new();
    c.set(key, value);
    match c.create_native_config() {
        Ok(_) => Ok(()),
        Err(e) => Err(EndpointError::KafkaProperty {
            origin: origin.to_string(),
            key: key.to_string(),
            reason: kafka_reason(&e),
        }),
    }
}

/// librdkafka's reason, without the value (it may be a password).
fn kafka_reason(e: &rdkafka::error::KafkaError) -> String {
    match e {
        rdkafka::error::KafkaError::ClientConfig(_, desc, _, _) => {
            crate::integrations::flatten(desc)
        }
        rdkafka::error::KafkaError::ClientCreation(desc) => crate::integrations::flatten(desc),
        other => crate::integrations::flatten(&other.to_string()),
    }
}

/// Creates (and drops) each kind of client with the properties it takes, which runs
/// librdkafka's checks across properties (SASL mechanism, SSL files, a session timeout above
/// max.poll.interval.ms, ...) before anything else starts. Nothing joins a group.
pub fn check_kafka_client(kafka: &KafkaConfig) -> Result<(), EndpointError> {
    if kafka.extra.is_empty() {
        return Ok(());
    }
    let reason = |e: rdkafka::error::KafkaError| EndpointError::KafkaClient(kafka_reason(&e));
    kafka
        .producer()
        .create::<rdkafka::producer::BaseProducer>()
        .map_err(reason)?;
    for consumer in [
        kafka.group_consumer("cta-stream-config-check"),
        kafka.restore_consumer("cta-stream-config-check"),
    ] {
        consumer
            .create::<rdkafka::consumer::BaseConsumer>()
            .map_err(reason)?;
    }
    Ok(())
}

/// Asks the registry for its subjects: fails with the URL named when it cannot be reached, and
/// with the auth flag named when it refuses the credentials.
pub async fn check_registry(registry: &RegistryConfig) -> Result<(), EndpointError> {
    let url = registry.url.clone();
    let unreachable = |reason: String| EndpointError::RegistryUnreachable {
        url: url.clone(),
        reason,
    };
    let client = registry
        .http_client_builder()
        .map_err(|e| unreachable(e.to_string()))?
        .timeout(std::time::Duration::from_secs(10))
        .build()
        .map_err(|e| unreachable(crate::integrations::one_line(&e)))?;
    let mut req = client.get(crate::integrations::join(&registry.url, "subjects"));
    if let Some(auth) = &registry.basic_auth {
        let (user, pass) = auth.split_once(':').unwrap_or((auth.as_str(), ""));
        req = req.basic_auth(user, Some(pass));
    }
    let resp = req
        .send()
        .await
        .map_err(|e| unreachable(crate::integrations::one_line(&e)))?;
    let status = resp.status().as_u16();
    match status {
        200..=299 => Ok(()),
        401 | 403 => Err(EndpointError::RegistryAuth { url, status }),
        _ => Err(EndpointError::RegistryStatus { url, status }),
    }
}

impl Endpoints {
    /// Kafka and registry settings from the flags (or the embedded platform's discovery file),
    /// with the librdkafka properties and the CA file checked.
    pub fn resolve(&self) -> Result<(KafkaConfig, RegistryConfig), EndpointError> {
        let mut embedded = false;
        let (brokers, url) = match (&self.brokers, &self.schema_registry_url) {
            (Some(b), Some(u)) => (b.clone(), u.clone()),
            (Some(_), None) => return Err(EndpointError::MissingRegistry),
            (None, Some(_)) => return Err(EndpointError::MissingBrokers),
            (None, None) => {
                let found = platform::discover().ok_or_else(|| {
                    EndpointError::NoPlatform(platform::discovery_path().display().to_string())
                })?;
                tracing::info!(brokers = %found.brokers, registry = %found.schema_registry_url, "using the embedded platform");
                embedded = true;
                (found.brokers, found.schema_registry_url)
            }
        };
        let mut kafka = KafkaConfig::new(brokers);
        kafka.extra = self.properties.resolve()?;
        if embedded {
            kafka.prefer_consumer_group_protocol();
            kafka.short_fetch_wait();
            kafka.topics_created_on_first_use();
        }
        let mut registry = RegistryConfig::new(url);
        registry.basic_auth = self.schema_registry_auth.clone();
        if let Some(path) = &self.schema_registry_ca {
            let ca_err = |reason: String| EndpointError::RegistryCa {
                path: path.display().to_string(),
                reason,
            };
            let pem = std::fs::read(path).map_err(|e| ca_err(e.to_string()))?;
            reqwest::Certificate::from_pem(&pem).map_err(|e| {
                ca_err(format!(
                    "not a PEM certificate: {}",
                    crate::integrations::one_line(&e)
                ))
            })?;
            registry.ca_file = Some(path.clone());
        }
        Ok((kafka, registry))
    }

    /// [`Endpoints::resolve`], then a librdkafka client built with every property and one
    /// request to the registry: configuration mistakes surface at start, each naming its flag.
    pub async fn connect(&self) -> Result<(KafkaConfig, RegistryConfig), EndpointError> {
        let (kafka, registry) = self.resolve()?;
        check_kafka_client(&kafka)?;
        check_registry(&registry).await?;
        Ok((kafka, registry))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn properties_file_then_x_each_checked() {
        let dir = std::env::temp_dir().join(format!("cta-endpoints-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("client.properties");
        std::fs::write(
            &file,
            "# comment\nsecurity.protocol = SASL_SSL\nsasl.mechanisms: PLAIN\nsasl.password=a\\\n  b\n",
        )
        .unwrap();
        let args = ClientProperties {
            pairs: vec![("sasl.mechanisms".into(), "SCRAM-SHA-512".into())],
            file: Some(file.clone()),
        };
        let props = args.resolve().unwrap();
        assert_eq!(
            props,
            vec![
                ("security.protocol".to_string(), "SASL_SSL".to_string()),
                ("sasl.mechanisms".to_string(), "PLAIN".to_string()),
                ("sasl.password".to_string(), "ab".to_string()),
                ("sasl.mechanisms".to_string(), "SCRAM-SHA-512".to_string()),
            ]
        );
        std::fs::write(
            &file,
            "sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required username='KEY' password=\"S'CRET\";\n",
        )
        .unwrap();
        assert_eq!(
            args.resolve().unwrap()[..2],
            [
                ("sasl.username".to_string(), "KEY".to_string()),
                ("sasl.password".to_string(), "S'CRET".to_string())
            ]
        );
        std::fs::write(&file, "sasl.jaas.config=Module required;\n").unwrap();
        let err = args.resolve().unwrap_err().to_string();
        assert!(err.contains("line 1 sasl.jaas.config: expected"), "{err}");
        std::fs::write(&file, "ok.not=1\n").unwrap();
        let err = args.resolve().unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "--kafka-properties-file {} line 1 ok.not: No such configuration property: \"ok.not\"",
                file.display()
            )
        );
        std::fs::write(&file, "schema.registry.url=https://x\n").unwrap();
        let err = args.resolve().unwrap_err().to_string();
        assert!(err.contains("use --schema-registry-url"), "{err}");
        let missing = ClientProperties {
            pairs: vec![],
            file: Some(dir.join("nope")),
        };
        assert!(missing
            .resolve()
            .unwrap_err()
            .to_string()
            .starts_with("--kafka-properties-file "));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
