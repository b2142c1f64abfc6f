//! Avro in the Confluent wire format.
//!
//! Encoding goes through `schema_registry_converter`'s [`AvroEncoder`](SrcEncoder), which
//! registers the supplied schema under `<topic>-key` / `<topic>-value` (TopicNameStrategy) and
//! caches the id. Decoding parses the five-byte header itself so every malformed input gets its
//! own [`DecodeError`], looks the writer schema up in a local id cache and only on a miss asks the
//! registry (through `schema_registry_converter`'s decoder, blocking on the runtime handle).

use crate::codec::avro_plan::Plan;
use crate::error::{DecodeError, StreamError};
use crate::FastMap;
use apache_avro::Schema;
use schema_registry_converter::async_impl::avro::{
    AvroDecoder as SrcDecoder, AvroEncoder as SrcEncoder,
};
use schema_registry_converter::async_impl::schema_registry::SrSettings;
use schema_registry_converter::avro_common::get_supplied_schema;
use schema_registry_converter::schema_registry_common::SubjectNameStrategy;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::collections::HashMap;
use std::sync::atomic::{AtomicPtr, Ordering};
use std::sync::{Arc, OnceLock, RwLock};
use std::time::Duration;

type DatumReader = apache_avro::reader::datum::GenericDatumReader<'static>;

/// How records of one writer schema are read: straight into the target type when the schema
/// compiles to a [`Plan`], through apache_avro's `Value` otherwise and to report errors.
struct Reading {
    id: u32,
    plan: Option<Plan>,
    generic: DatumReader,
}

/// The reader a decoder used last (each clone of a decoder its own): a topic's records
/// nearly always share one writer schema, so most look-ups end here, with one atomic load
/// instead of a lock and a hash look-up.
#[derive(Default)]
struct LastReader(AtomicPtr<Reading>);

impl LastReader {
    fn get(&self, id: u32) -> Option<&'static Reading> {
        let last = self.0.load(Ordering::Acquire);
        // SAFETY: the pointer is null or was made by `set` from a `&'static Reading` (leaked,
        // never freed, never written after it was leaked).
        unsafe { last.as_ref() }.filter(|r| r.id == id)
    }

    fn set(&self, reading: &'static Reading) {
        let ptr = std::ptr::from_ref(reading).cast_mut();
        self.0.store(ptr, Ordering::Release);
    }
}

impl Clone for LastReader {
    fn clone(&self) -> Self {
        Self(AtomicPtr::new(self.0.load(Ordering::Acquire)))
    }
}

/// Where the Schema Registry is and how to authenticate.
#[derive(Debug, Clone)]
pub struct RegistryConfig {
    pub url: String,
    /// `user:password` (Confluent Cloud: API key and secret).
    pub basic_auth: Option<String>,
    /// PEM file of a CA to trust for the registry's TLS, besides the system roots.
    pub ca_file: Option<std::path::PathBuf>,
}

impl RegistryConfig {
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            basic_auth: None,
            ca_file: None,
        }
    }

    /// An HTTP client builder that trusts `ca_file` (when set), for every registry request.
    pub fn http_client_builder(&self) -> Result<reqwest::ClientBuilder, StreamError> {
        let mut builder = reqwest::Client::builder();
        if let Some(path) = &self.ca_file {
            let pem = std::fs::read(path).map_err(|e| StreamError::Registry {
                url: self.url.clone(),
                reason: format!("CA file {}: {e}", path.display()),
            })?;
            let cert = reqwest::Certificate::from_pem(&pem).map_err(|e| StreamError::Registry {
                url: self.url.clone(),
                reason: format!("CA file {}: not a PEM certificate: {e}", path.display()),
            })?;
            builder = builder.add_root_certificate(cert);
        }
        Ok(builder)
    }

    pub fn settings(&self) -> Result<SrSettings, StreamError> {
        let mut b = SrSettings::new_builder(self.url.trim_end_matches('/').to_string());
        b.set_timeout(Duration::from_secs(10));
        if let Some(auth) = &self.basic_auth {
            let (user, pass) = match auth.split_once(':') {
                Some((u, p)) => (u, Some(p)),
                None => (auth.as_str(), None),
            };
            b.set_basic_authorization(user, pass);
        }
        b.build_with(self.http_client_builder()?)
            .map_err(|e| StreamError::Registry {
                url: self.url.clone(),
                reason: e.to_string(),
            })
    }
}

/// Exponential backoff for an unreachable registry: 100 ms doubling to 10 s, logged.
#[derive(Default)]
struct Backoff {
    attempts: u32,
}

impl Backoff {
    fn next_delay(&mut self, url: &str, error: &str) -> Duration {
        let delay = Duration::from_millis(100u64.saturating_mul(1 << self.attempts.min(7)))
            .min(Duration::from_secs(10));
        self.attempts += 1;
        tracing::warn!(registry = url, attempt = self.attempts, retry_in_ms = delay.as_millis() as u64, %error,
            "schema registry unreachable; waiting (no record is skipped)");
        delay
    }

    fn wait(&mut self, url: &str, error: &str) {
        std::thread::sleep(self.next_delay(url, error));
    }
}

/// The decoder's registry client, built on a thread of its own. Building one loads the system's
/// TLS roots (35–70 ms of CPU here, even for a plain `http://` registry), which a starting worker
/// thus does while it joins its group and opens its stores rather than before; the first schema
/// look-up waits for it. A CA file that cannot be read is still refused when the decoder is made.
struct RegistryClient {
    config: RegistryConfig,
    built: OnceLock<Result<Arc<SrcDecoder>, String>>,
}

impl RegistryClient {
    fn start(config: &RegistryConfig) -> Result<Arc<Self>, StreamError> {
        drop(config.http_client_builder()?); // the CA file's errors now
        let client = Arc::new(Self {
            config: config.clone(),
            built: OnceLock::new(),
        });
        let building = client.clone();
        // Without the thread the first look-up builds it.
        let _ = std::thread::Builder::new()
            .name("registry-client".into())
            .spawn(move || drop(building.get()));
        Ok(client)
    }

    fn build(&self) -> Result<Arc<SrcDecoder>, String> {
        let settings = self.config.settings().map_err(|e| e.to_string())?;
        Ok(Arc::new(SrcDecoder::new(settings)))
    }

    /// The client, once built (waiting for the thread's build); a failed build is tried again.
    fn get(&self) -> Result<Arc<SrcDecoder>, String> {
        match self.built.get_or_init(|| self.build()) {
            Ok(client) => Ok(client.clone()),
            Err(_) => self.build(),
        }
    }
}

/// Splits a Confluent-framed payload into schema id and Avro body.
pub fn split_frame(payload: Option<&[u8]>) -> Result<(u32, &[u8]), DecodeError> {
    let bytes = payload.ok_or(DecodeError::Empty)?;
    if bytes.len() < 5 {
        return Err(DecodeError::TooShort(bytes.len()));
    }
    if bytes[0] != 0 {
        return Err(DecodeError::BadMagic(bytes[0]));
    }
    let id = u32::from_be_bytes([bytes[1], bytes[2], bytes[3], bytes[4]]);
    Ok((id, &bytes[5..]))
}

/// Decodes Confluent-framed Avro into serde types. Clone is cheap; clones share the cache.
#[derive(Clone)]
pub struct AvroDecoder {
    cache: Arc<RwLock<HashMap<u32, Arc<Schema>>>>,
    /// Ready readers per schema id. A reader borrows its schema and resolves the schema's
    /// names once; schema and reader are leaked to live for the process (one per schema id
    /// the registry knows, so bounded) instead of re-resolving names on every record, and a
    /// record's look-up copies a reference (no reference count to move).
    readers: Arc<RwLock<FastMap<u32, &'static Reading>>>,
    last: LastReader,
    registry: Arc<RegistryClient>,
    runtime: tokio::runtime::Handle,
    url: String,
}

impl AvroDecoder {
    /// Must be called within a tokio runtime; the handle is kept for registry look-ups.
    pub fn new(config: &RegistryConfig) -> Result<Self, StreamError> {
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|e| StreamError::Config(format!("AvroDecoder needs a tokio runtime: {e}")))?;
        Ok(Self {
            cache: Arc::default(),
            readers: Arc::default(),
            last: LastReader::default(),
            registry: RegistryClient::start(config)?,
            runtime,
            url: config.url.clone(),
        })
    }

    /// Writer schema for `id`, from the cache or (once) from the registry. Blocks on a miss, so
    /// call it from a blocking thread, never from inside an async task.
    pub fn schema(&self, id: u32) -> Result<Arc<Schema>, DecodeError> {
        if let Some(s) = self
            .cache
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&id)
        {
            return Ok(s.clone());
        }
        // A registry that cannot be reached is waited for (records stay unprocessed, none is
        // skipped); only an answer that the id does not exist makes the record bad.
        let mut backoff = Backoff::default();
        let fetched = loop {
            let registry = match self.registry.get() {
                Ok(registry) => registry,
                Err(e) => {
                    backoff.wait(&self.url, &format!("no HTTP client: {e}"));
                    continue;
                }
            };
            match self.runtime.block_on(registry.get_schema(id)) {
                Ok(s) => break s,
                Err(e) if e.retriable => backoff.wait(&self.url, &e.to_string()),
                Err(e) => {
                    return Err(DecodeError::UnknownSchema {
                        id,
                        reason: format!("{} ({})", e.error, self.url),
                    })
                }
            }
        };
        let schema = Arc::new(fetched.parsed.clone());
        self.cache
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, schema.clone());
        Ok(schema)
    }

    fn reader(&self, id: u32) -> Result<&'static Reading, DecodeError> {
        if let Some(r) = self.last.get(id) {
            return Ok(r);
        }
        let reader = self.built_reader(id)?;
        self.last.set(reader);
        Ok(reader)
    }

    /// The reader of schema `id` from the decoders' shared cache, built on first use.
    fn built_reader(&self, id: u32) -> Result<&'static Reading, DecodeError> {
        if let Some(&r) = self
            .readers
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&id)
        {
            return Ok(r);
        }
        // May wait for the registry: before taking the lock.
        let schema = self.schema(id)?;
        let mut readers = self.readers.write().unwrap_or_else(|p| p.into_inner());
        if let Some(&r) = readers.get(&id) {
            return Ok(r); // another thread built it meanwhile
        }
        let schema: &'static Schema = Box::leak(Box::new((*schema).clone()));
        let generic = DatumReader::builder(schema)
            .build()
            .map_err(|e| DecodeError::Avro {
                id,
                reason: e.to_string(),
            })?;
        let reader: &'static Reading = Box::leak(Box::new(Reading {
            id,
            plan: Plan::compile(schema),
            generic,
        }));
        readers.insert(id, reader);
        Ok(reader)
    }

    /// Decodes a framed payload into `T` (fields matched by name, so a newer writer schema with
    /// extra fields still decodes).
    ///
    /// Records go through the schema's [`Plan`] when it has one; a record the plan rejects is
    /// decoded again through apache_avro's `Value`, whose answer (and error text) is the one
    /// returned.
    pub fn decode<T: DeserializeOwned>(&self, payload: Option<&[u8]>) -> Result<T, DecodeError> {
        let (id, mut body) = split_frame(payload)?;
        let reader = self.reader(id)?;
        if let Some(plan) = &reader.plan {
            if let Ok(v) = plan.decode(body) {
                return Ok(v);
            }
        }
        let value = reader
            .generic
            .read_value(&mut body)
            .map_err(|e| DecodeError::Avro {
                id,
                reason: e.to_string(),
            })?;
        if !body.is_empty() {
            return Err(DecodeError::Avro {
                id,
                reason: format!("{} trailing bytes after the record", body.len()),
            });
        }
        apache_avro::from_value::<T>(&value).map_err(|e| DecodeError::Avro {
            id,
            reason: e.to_string(),
        })
    }
}

/// A parsed schema that encodes under one subject.
#[derive(Clone)]
pub struct SubjectSchema {
    strategy: SubjectNameStrategy,
}

impl SubjectSchema {
    /// `avsc` is the schema text (from the project's `avro/` folder); the subject is
    /// `<topic>-key` or `<topic>-value`.
    pub fn new(topic: &str, is_key: bool, avsc: &str) -> Result<Self, StreamError> {
        let schema = Schema::parse_str(avsc)
            .map_err(|e| StreamError::Encode(format!("schema for {topic}: {e}")))?;
        Ok(Self {
            strategy: SubjectNameStrategy::TopicNameStrategyWithSchema(
                topic.to_string(),
                is_key,
                get_supplied_schema(&schema),
            ),
        })
    }
}

/// Encodes serde values as Confluent-framed Avro, registering schemas on first use.
#[derive(Clone)]
pub struct AvroEncoder {
    inner: Arc<SrcEncoder>,
    url: String,
}

impl AvroEncoder {
    pub fn new(config: &RegistryConfig) -> Result<Self, StreamError> {
        Ok(Self {
            inner: Arc::new(SrcEncoder::new(config.settings()?)),
            url: config.url.clone(),
        })
    }

    /// Encodes `item`; while the registry is unreachable, waits and retries with backoff.
    pub async fn encode<T: Serialize>(
        &self,
        item: &T,
        schema: &SubjectSchema,
    ) -> Result<Vec<u8>, StreamError> {
        let mut backoff = Backoff::default();
        loop {
            match self.inner.encode_struct(item, &schema.strategy).await {
                Ok(b) => return Ok(b),
                Err(e) if e.retriable => {
                    let delay = backoff.next_delay(&self.url, &e.to_string());
                    tokio::time::sleep(delay).await;
                }
                Err(e) => return Err(StreamError::Encode(e.to_string())),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_errors_are_specific() {
        assert!(matches!(split_frame(None), Err(DecodeError::Empty)));
        assert!(matches!(
            split_frame(Some(&[0, 0, 1])),
            Err(DecodeError::TooShort(3))
        ));
        assert!(matches!(
            split_frame(Some(&[1, 0, 0, 0, 1, 2])),
            Err(DecodeError::BadMagic(1))
        ));
        let (id, body) = split_frame(Some(&[0, 0, 0, 1, 2, 9, 9])).unwrap();
        assert_eq!(id, 258);
        assert_eq!(body, &[9, 9]);
    }

    /// Records of two writer schemas, alternating and from two clones of one decoder, each
    /// read with its own schema: the reader a decoder used last is only taken for its id.
    #[tokio::test]
    async fn alternating_writer_schemas_are_each_read_with_their_own() {
        use apache_avro::types::Value;
        #[derive(serde::Deserialize, Debug, PartialEq)]
        struct A {
            a: i32,
        }
        let first = r#"{"type":"record","name":"R","fields":[{"name":"a","type":"int"}]}"#;
        let second = r#"{"type":"record","name":"R","fields":[
            {"name":"b","type":"string"},{"name":"a","type":"int"}]}"#;
        let decoder = AvroDecoder::new(&RegistryConfig::new("http://registry.invalid")).unwrap();
        let mut framed = Vec::new();
        for (id, text, fields) in [
            (7u32, first, vec![("a", Value::Int(1))]),
            (
                9,
                second,
                vec![("b", Value::String("xyz".into())), ("a", Value::Int(2))],
            ),
        ] {
            let schema = Schema::parse_str(text).unwrap();
            let fields = fields
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect();
            let body = crate::codec::avro_plan::tests::encode(&schema, Value::Record(fields));
            let mut payload = vec![0];
            payload.extend(id.to_be_bytes());
            payload.extend(body);
            framed.push(payload);
            decoder.cache.write().unwrap().insert(id, Arc::new(schema));
        }
        let other = decoder.clone();
        for i in 0..6 {
            let d = if i % 3 == 0 { &other } else { &decoder };
            let got: A = d.decode(Some(&framed[i % 2])).unwrap();
            assert_eq!(
                got,
                A {
                    a: 1 + (i % 2) as i32
                },
                "record {i}"
            );
        }
    }

    /// The HTTP client is built on a thread, but a CA file that is not there still fails the
    /// decoder at once, with the file named.
    #[tokio::test]
    async fn a_missing_ca_file_fails_the_decoder_when_it_is_made() {
        let mut config = RegistryConfig::new("https://registry.invalid:8081");
        config.ca_file = Some("/nonexistent/ca.pem".into());
        let err = AvroDecoder::new(&config).err().map(|e| e.to_string());
        let err = err.expect("a decoder with a missing CA file");
        assert!(err.contains("CA file /nonexistent/ca.pem"), "{err}");
        config.ca_file = None;
        assert!(AvroDecoder::new(&config).is_ok());
    }
}
