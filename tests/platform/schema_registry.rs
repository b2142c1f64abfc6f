//! Black-box tests of the embedded schema registry over real HTTP.

use std::net::SocketAddr;
use std::time::Duration;

use cta_stream::platform::schema_registry::{RegistryError, SchemaRegistry};
use reqwest::header::CONTENT_TYPE;
use reqwest::Method;
use schema_registry_converter::async_impl::avro::{AvroDecoder, AvroEncoder};
use schema_registry_converter::async_impl::schema_registry::SrSettings;
use schema_registry_converter::schema_registry_common::{
    SchemaType, SubjectNameStrategy, SuppliedSchema,
};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

const SR_JSON: &str = "application/vnd.schemaregistry.v1+json";

struct Running {
    base: String,
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

async fn start(registry: &SchemaRegistry) -> Running {
    let (stop, stopped) = oneshot::channel::<()>();
    let addr: SocketAddr = ([127, 0, 0, 1], 0).into();
    let (bound, task) = registry
        .serve(addr, async move {
            let _ = stopped.await;
        })
        .await
        .expect("serve");
    assert_ne!(bound.port(), 0, "a real port is bound");
    Running {
        base: format!("http://{bound}"),
        stop,
        task,
    }
}

impl Running {
    async fn shutdown(self) {
        let _ = self.stop.send(());
        tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .expect("server stops within 10 s after shutdown")
            .expect("server task ends cleanly");
    }
}

/// Sends a request with the registry content type (when there is a body) and returns the
/// status and the parsed JSON answer.
async fn call(
    client: &reqwest::Client,
    method: Method,
    url: &str,
    body: Option<&Value>,
) -> (u16, Value) {
    let mut request = client.request(method, url);
    if let Some(body) = body {
        request = request.header(CONTENT_TYPE, SR_JSON).body(body.to_string());
    }
    let response = request.send().await.expect("request reaches the server");
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert_eq!(content_type, SR_JSON, "content type of {url}");
    let text = response.text().await.expect("body");
    let value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{url}: {e}: {text}"));
    (status, value)
}

fn schema_body(schema: &str) -> Value {
    json!({ "schema": schema })
}

fn record(name: &str, fields: Value) -> String {
    json!({ "type": "record", "name": name, "namespace": "cta", "fields": fields }).to_string()
}

fn error_code(value: &Value) -> i64 {
    value["error_code"].as_i64().unwrap_or(-1)
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Arrival {
    route: String,
    station_id: i64,
    minutes: i32,
    delayed: bool,
}

const ARRIVAL_SCHEMA: &str = r#"{"type":"record","name":"Arrival","namespace":"cta","fields":[{"name":"route","type":"string"},{"name":"station_id","type":"long"},{"name":"minutes","type":"int"},{"name":"delayed","type":"boolean"}]}"#;

#[tokio::test]
async fn converter_registers_encodes_and_decodes_round_trip() {
    let registry = SchemaRegistry::open(None).expect("open");
    let server = start(&registry).await;
    let client = reqwest::Client::new();

    // Take id 1 with another schema, so the encoder's schema must get id 2.
    let warmup = record("Warmup", json!([{ "name": "n", "type": "int" }]));
    let (status, body) = call(
        &client,
        Method::POST,
        &format!("{}/subjects/warmup-value/versions", server.base),
        Some(&schema_body(&warmup)),
    )
    .await;
    assert_eq!((status, body), (200, json!({ "id": 1 })));

    let settings = SrSettings::new(server.base.clone());
    let encoder = AvroEncoder::new(settings.clone());
    let strategy = SubjectNameStrategy::TopicNameStrategyWithSchema(
        "cta.arrivals".to_owned(),
        false,
        SuppliedSchema::new(None, SchemaType::Avro, ARRIVAL_SCHEMA.to_owned()),
    );
    let arrival = Arrival {
        route: "Red".to_owned(),
        station_id: 40_380,
        minutes: -3,
        delayed: true,
    };
    let bytes = encoder
        .encode_struct(&arrival, &strategy)
        .await
        .expect("encode registers the schema");

    let (status, latest) = call(
        &client,
        Method::GET,
        &format!(
            "{}/subjects/cta.arrivals-value/versions/latest",
            server.base
        ),
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(latest["id"], json!(2));
    assert_eq!(latest["version"], json!(1));
    assert_eq!(latest["subject"], json!("cta.arrivals-value"));

    assert!(bytes.len() > 5);
    assert_eq!(bytes[0], 0, "magic byte");
    assert_eq!(&bytes[1..5], &2u32.to_be_bytes(), "big-endian schema id");

    let decoder = AvroDecoder::new(settings.clone());
    let decoded = decoder.decode(Some(&bytes)).await.expect("decode");
    let back: Arrival = apache_avro::from_value(&decoded.value).expect("value fits the struct");
    assert_eq!(back, arrival);

    // A fresh encoder (no cache) registers again and must get the same id and bytes.
    let again = AvroEncoder::new(settings)
        .encode_struct(&arrival, &strategy)
        .await
        .expect("second encode");
    assert_eq!(again, bytes);
    let (_, versions) = call(
        &client,
        Method::GET,
        &format!("{}/subjects/cta.arrivals-value/versions", server.base),
        None,
    )
    .await;
    assert_eq!(versions, json!([1]));

    server.shutdown().await;
}

#[tokio::test]
async fn rest_api_answers_like_confluent() {
    let registry = SchemaRegistry::open(None).expect("open");
    let server = start(&registry).await;
    let client = reqwest::Client::new();
    let base = &server.base;

    let v1 = record("Train", json!([{ "name": "run", "type": "string" }]));
    let (status, first) = call(
        &client,
        Method::POST,
        &format!("{base}/subjects/alpha/versions"),
        Some(&schema_body(&v1)),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(first, json!({ "id": 1 }));

    // Same schema again: same id, no new version.
    let (status, again) = call(
        &client,
        Method::POST,
        &format!("{base}/subjects/alpha/versions"),
        Some(&json!({ "schema": v1, "schemaType": "AVRO", "references": [] })),
    )
    .await;
    assert_eq!((status, again), (200, json!({ "id": 1 })));

    // Same schema, differently formatted, under another subject: same id.
    let v1_pretty =
        serde_json::to_string_pretty(&serde_json::from_str::<Value>(&v1).expect("schema is JSON"))
            .expect("pretty");
    assert_ne!(v1_pretty, v1);
    let (status, other) = call(
        &client,
        Method::POST,
        &format!("{base}/subjects/beta/versions"),
        Some(&schema_body(&v1_pretty)),
    )
    .await;
    assert_eq!((status, other), (200, json!({ "id": 1 })));

    // A compatible evolution gets a new id and version 2.
    let v2 = record(
        "Train",
        json!([
            { "name": "run", "type": "string" },
            { "name": "line", "type": "string", "default": "red" }
        ]),
    );
    let (status, second) = call(
        &client,
        Method::POST,
        &format!("{base}/subjects/alpha/versions"),
        Some(&schema_body(&v2)),
    )
    .await;
    assert_eq!((status, second), (200, json!({ "id": 2 })));

    let (status, subjects) = call(&client, Method::GET, &format!("{base}/subjects"), None).await;
    assert_eq!((status, subjects), (200, json!(["alpha", "beta"])));

    let (status, versions) = call(
        &client,
        Method::GET,
        &format!("{base}/subjects/alpha/versions"),
        None,
    )
    .await;
    assert_eq!((status, versions), (200, json!([1, 2])));

    let (status, latest) = call(
        &client,
        Method::GET,
        &format!("{base}/subjects/alpha/versions/latest"),
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        latest,
        json!({ "subject": "alpha", "version": 2, "id": 2, "schema": v2 })
    );

    let (status, one) = call(
        &client,
        Method::GET,
        &format!("{base}/subjects/alpha/versions/1"),
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        one,
        json!({ "subject": "alpha", "version": 1, "id": 1, "schema": v1 })
    );

    let (status, by_id) = call(
        &client,
        Method::GET,
        &format!("{base}/schemas/ids/1?fetchMaxId=false"),
        None,
    )
    .await;
    assert_eq!((status, by_id), (200, json!({ "schema": v1 })));
    let (status, by_id) = call(
        &client,
        Method::GET,
        &format!("{base}/schemas/ids/2?deleted=true"),
        None,
    )
    .await;
    assert_eq!((status, by_id), (200, json!({ "schema": v2 })));

    // Lookup: registered under the subject, registered elsewhere only, unknown subject.
    let (status, found) = call(
        &client,
        Method::POST,
        &format!("{base}/subjects/alpha?deleted=false"),
        Some(&schema_body(&v1_pretty)),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        found,
        json!({ "subject": "alpha", "version": 1, "id": 1, "schema": v1 })
    );
    let (status, missing) = call(
        &client,
        Method::POST,
        &format!("{base}/subjects/beta"),
        Some(&schema_body(&v2)),
    )
    .await;
    assert_eq!((status, error_code(&missing)), (404, 40403));
    let (status, missing) = call(
        &client,
        Method::POST,
        &format!("{base}/subjects/nobody"),
        Some(&schema_body(&v1)),
    )
    .await;
    assert_eq!((status, error_code(&missing)), (404, 40401));

    // Subjects with dots and an escaped slash; plain application/json and no content type.
    let response = client
        .post(format!("{base}/subjects/team%2Fcta.trains-value/versions"))
        .json(&schema_body(&v1))
        .send()
        .await
        .expect("send");
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(
        response.json::<Value>().await.expect("json"),
        json!({ "id": 1 })
    );
    let response = client
        .post(format!("{base}/subjects/cta.positions-value/versions"))
        .body(schema_body(&v2).to_string())
        .send()
        .await
        .expect("send");
    assert_eq!(response.status().as_u16(), 200);
    let (_, subjects) = call(&client, Method::GET, &format!("{base}/subjects"), None).await;
    assert_eq!(
        subjects,
        json!([
            "alpha",
            "beta",
            "cta.positions-value",
            "team/cta.trains-value"
        ])
    );
    let (status, versions) = call(
        &client,
        Method::GET,
        &format!("{base}/subjects/team%2Fcta.trains-value/versions"),
        None,
    )
    .await;
    assert_eq!((status, versions), (200, json!([1])));

    // Delete a subject: its versions are answered, it is gone, the schema id still resolves.
    let (status, deleted) = call(
        &client,
        Method::DELETE,
        &format!("{base}/subjects/beta"),
        None,
    )
    .await;
    assert_eq!((status, deleted), (200, json!([1])));
    let (status, gone) = call(
        &client,
        Method::GET,
        &format!("{base}/subjects/beta/versions"),
        None,
    )
    .await;
    assert_eq!((status, error_code(&gone)), (404, 40401));
    let (status, _) = call(&client, Method::GET, &format!("{base}/schemas/ids/1"), None).await;
    assert_eq!(status, 200);

    server.shutdown().await;
}

#[tokio::test]
async fn errors_and_compatibility_follow_confluent() {
    let registry = SchemaRegistry::open(None).expect("open");
    let server = start(&registry).await;
    let client = reqwest::Client::new();
    let base = &server.base;
    let post = |subject: &str, schema: &str| {
        let client = client.clone();
        let url = format!("{base}/subjects/{subject}/versions");
        let body = schema_body(schema);
        async move { call(&client, Method::POST, &url, Some(&body)).await }
    };

    // Invalid schemas.
    let (status, body) = post("bad", "{ this is not avro").await;
    assert_eq!((status, error_code(&body)), (422, 42201));
    assert!(body["message"]
        .as_str()
        .unwrap_or_default()
        .starts_with("Invalid schema"));
    let (status, body) = post(
        "bad",
        r#"{"type":"record","name":"R","fields":[{"name":"x","type":"nosuchtype"}]}"#,
    )
    .await;
    assert_eq!((status, error_code(&body)), (422, 42201));
    let (status, body) = call(
        &client,
        Method::POST,
        &format!("{base}/subjects/bad/versions"),
        Some(&json!({ "schema": "syntax = \"proto3\";", "schemaType": "PROTOBUF" })),
    )
    .await;
    assert_eq!((status, error_code(&body)), (422, 42201));
    let (status, _) = call(&client, Method::GET, &format!("{base}/subjects"), None).await;
    assert_eq!(status, 200);
    let (_, subjects) = call(&client, Method::GET, &format!("{base}/subjects"), None).await;
    assert_eq!(
        subjects,
        json!([]),
        "failed registrations leave nothing behind"
    );

    // Unknown subject, version, id; bad version.
    let (status, body) = call(
        &client,
        Method::GET,
        &format!("{base}/subjects/nope/versions"),
        None,
    )
    .await;
    assert_eq!((status, error_code(&body)), (404, 40401));
    assert_eq!(body["message"], json!("Subject 'nope' not found."));
    let (status, body) = call(
        &client,
        Method::GET,
        &format!("{base}/subjects/nope/versions/1"),
        None,
    )
    .await;
    assert_eq!((status, error_code(&body)), (404, 40401));
    let (status, body) = call(
        &client,
        Method::GET,
        &format!("{base}/schemas/ids/999"),
        None,
    )
    .await;
    assert_eq!(
        (status, body),
        (
            404,
            json!({ "error_code": 40403, "message": "Schema not found" })
        )
    );

    let v1 = record("Stop", json!([{ "name": "name", "type": "string" }]));
    let (status, _) = post("stops", &v1).await;
    assert_eq!(status, 200);
    let (status, body) = call(
        &client,
        Method::GET,
        &format!("{base}/subjects/stops/versions/7"),
        None,
    )
    .await;
    assert_eq!((status, error_code(&body)), (404, 40402));
    for bad in ["abc", "0", "1.5", "99999999999"] {
        let (status, body) = call(
            &client,
            Method::GET,
            &format!("{base}/subjects/stops/versions/{bad}"),
            None,
        )
        .await;
        assert_eq!((status, error_code(&body)), (422, 42202), "version {bad}");
    }

    // Global config.
    let (status, body) = call(&client, Method::GET, &format!("{base}/config"), None).await;
    assert_eq!(
        (status, body),
        (200, json!({ "compatibilityLevel": "BACKWARD" }))
    );
    let (status, body) = call(
        &client,
        Method::PUT,
        &format!("{base}/config"),
        Some(&json!({ "compatibility": "sideways" })),
    )
    .await;
    assert_eq!((status, error_code(&body)), (422, 42203));

    // BACKWARD: a new required field without default is rejected...
    let required = record(
        "Stop",
        json!([
            { "name": "name", "type": "string" },
            { "name": "accessible", "type": "boolean" }
        ]),
    );
    let (status, body) = post("stops", &required).await;
    assert_eq!((status, error_code(&body)), (409, 409));
    assert!(body["message"]
        .as_str()
        .unwrap_or_default()
        .starts_with("Schema being registered is incompatible with an earlier schema"));
    let (_, versions) = call(
        &client,
        Method::GET,
        &format!("{base}/subjects/stops/versions"),
        None,
    )
    .await;
    assert_eq!(versions, json!([1]));

    // ...and accepted once the subject is set to NONE.
    let (status, body) = call(&client, Method::GET, &format!("{base}/config/stops"), None).await;
    assert_eq!((status, error_code(&body)), (404, 40408));
    let (status, body) = call(
        &client,
        Method::GET,
        &format!("{base}/config/stops?defaultToGlobal=true"),
        None,
    )
    .await;
    assert_eq!(
        (status, body),
        (200, json!({ "compatibilityLevel": "BACKWARD" }))
    );
    let (status, body) = call(
        &client,
        Method::PUT,
        &format!("{base}/config/stops"),
        Some(&json!({ "compatibility": "NONE" })),
    )
    .await;
    assert_eq!((status, body), (200, json!({ "compatibility": "NONE" })));
    let (status, body) = call(&client, Method::GET, &format!("{base}/config/stops"), None).await;
    assert_eq!(
        (status, body),
        (200, json!({ "compatibilityLevel": "NONE" }))
    );
    let (status, body) = post("stops", &required).await;
    assert_eq!((status, body), (200, json!({ "id": 2 })));

    // A field added with a default is fine under BACKWARD.
    let (status, _) = post("routes", &v1).await;
    assert_eq!(status, 200);
    let with_default = record(
        "Stop",
        json!([
            { "name": "name", "type": "string" },
            { "name": "accessible", "type": "boolean", "default": false }
        ]),
    );
    let (status, body) = post("routes", &with_default).await;
    assert_eq!((status, body), (200, json!({ "id": 3 })));

    // Direction: dropping a field is BACKWARD-compatible, but not FORWARD when old readers
    // need it.
    let two = record(
        "Bus",
        json!([{ "name": "id", "type": "long" }, { "name": "route", "type": "string" }]),
    );
    let one = record("Bus", json!([{ "name": "id", "type": "long" }]));
    assert_eq!(post("buses-back", &two).await.0, 200);
    assert_eq!(post("buses-back", &one).await.0, 200);
    assert_eq!(post("buses-fwd", &two).await.0, 200);
    let (status, _) = call(
        &client,
        Method::PUT,
        &format!("{base}/config/buses-fwd"),
        Some(&json!({ "compatibility": "forward" })),
    )
    .await;
    assert_eq!(status, 200);
    let (status, body) = post("buses-fwd", &one).await;
    assert_eq!((status, error_code(&body)), (409, 409));

    // Transitive levels look at every version, plain ones only at the latest.
    let as_type = |t: &str| record("Reading", json!([{ "name": "value", "type": t }]));
    let set_level = |subject: &'static str, level: &'static str| {
        let client = client.clone();
        let url = format!("{base}/config/{subject}");
        async move {
            call(
                &client,
                Method::PUT,
                &url,
                Some(&json!({ "compatibility": level })),
            )
            .await
            .0
        }
    };
    assert_eq!(set_level("readings", "NONE").await, 200);
    assert_eq!(post("readings", &as_type("string")).await.0, 200);
    assert_eq!(post("readings", &as_type("int")).await.0, 200);
    assert_eq!(set_level("readings", "BACKWARD_TRANSITIVE").await, 200);
    let (status, body) = post("readings", &as_type("long")).await;
    assert_eq!(
        (status, error_code(&body)),
        (409, 409),
        "string cannot be read as long"
    );
    assert_eq!(set_level("readings", "BACKWARD").await, 200);
    assert_eq!(
        post("readings", &as_type("long")).await.0,
        200,
        "int promotes to long"
    );

    // Unknown path, wrong method.
    let (status, body) = call(&client, Method::GET, &format!("{base}/no/such/path"), None).await;
    assert_eq!(
        (status, body),
        (
            404,
            json!({ "error_code": 404, "message": "HTTP 404 Not Found" })
        )
    );
    let (status, body) = call(&client, Method::GET, &format!("{base}/schemas/ids/x"), None).await;
    assert_eq!((status, error_code(&body)), (404, 404));
    let (status, body) = call(&client, Method::PATCH, &format!("{base}/subjects"), None).await;
    assert_eq!((status, error_code(&body)), (405, 405));

    // Body size: just under the limit is parsed (and found invalid), over it is 413.
    let filler = "x".repeat(1024 * 1024 - 64);
    let (status, body) = post("big", &filler).await;
    assert_eq!((status, error_code(&body)), (422, 42201));
    let huge = "x".repeat(2 * 1024 * 1024);
    let (status, body) = post("big", &huge).await;
    assert_eq!((status, error_code(&body)), (413, 413));

    // Malformed and ill-shaped JSON, unsupported content type.
    let response = client
        .post(format!("{base}/subjects/stops/versions"))
        .header(CONTENT_TYPE, SR_JSON)
        .body("{\"schema\": ")
        .send()
        .await
        .expect("send");
    let status = response.status().as_u16();
    assert!(
        status < 500,
        "malformed JSON is a client error, got {status}"
    );
    assert_eq!(status, 400);
    let body: Value = response.json().await.expect("json error body");
    assert_eq!(error_code(&body), 400);
    let (status, body) = call(
        &client,
        Method::POST,
        &format!("{base}/subjects/stops/versions"),
        Some(&json!({ "schema": 5 })),
    )
    .await;
    assert_eq!((status, error_code(&body)), (422, 422));
    let response = client
        .post(format!("{base}/subjects/stops/versions"))
        .header(CONTENT_TYPE, "text/plain")
        .body(schema_body(&v1).to_string())
        .send()
        .await
        .expect("send");
    assert_eq!(response.status().as_u16(), 415);

    // The server is still healthy after all that.
    let (status, versions) = call(
        &client,
        Method::GET,
        &format!("{base}/subjects/stops/versions"),
        None,
    )
    .await;
    assert_eq!((status, versions), (200, json!([1, 2])));

    server.shutdown().await;
}

#[tokio::test]
async fn state_survives_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data_dir = dir.path().join("registry");
    let client = reqwest::Client::new();
    let a = record("Vehicle", json!([{ "name": "id", "type": "long" }]));
    let b = record(
        "Vehicle",
        json!([
            { "name": "id", "type": "long" },
            { "name": "heading", "type": "int", "default": 0 }
        ]),
    );
    let c = record("Station", json!([{ "name": "name", "type": "string" }]));

    {
        let registry = SchemaRegistry::open(Some(&data_dir)).expect("open creates the dir");
        let server = start(&registry).await;
        let base = server.base.clone();
        let (_, first) = call(
            &client,
            Method::POST,
            &format!("{base}/subjects/vehicles-value/versions"),
            Some(&schema_body(&a)),
        )
        .await;
        let (_, second) = call(
            &client,
            Method::POST,
            &format!("{base}/subjects/vehicles-value/versions"),
            Some(&schema_body(&b)),
        )
        .await;
        assert_eq!((first, second), (json!({ "id": 1 }), json!({ "id": 2 })));
        let (status, _) = call(
            &client,
            Method::PUT,
            &format!("{base}/config/vehicles-value"),
            Some(&json!({ "compatibility": "FULL" })),
        )
        .await;
        assert_eq!(status, 200);
        server.shutdown().await;
    }
    let file = data_dir.join("schemas.json");
    assert!(file.is_file(), "data file written");
    assert!(
        !data_dir.join("schemas.json.tmp").exists(),
        "no temp file left behind"
    );

    let registry = SchemaRegistry::open(Some(&data_dir)).expect("reopen");
    let server = start(&registry).await;
    let base = server.base.clone();
    let (status, versions) = call(
        &client,
        Method::GET,
        &format!("{base}/subjects/vehicles-value/versions"),
        None,
    )
    .await;
    assert_eq!((status, versions), (200, json!([1, 2])));
    let (_, latest) = call(
        &client,
        Method::GET,
        &format!("{base}/subjects/vehicles-value/versions/latest"),
        None,
    )
    .await;
    assert_eq!(
        latest,
        json!({ "subject": "vehicles-value", "version": 2, "id": 2, "schema": b })
    );
    let (_, by_id) = call(&client, Method::GET, &format!("{base}/schemas/ids/1"), None).await;
    assert_eq!(by_id, json!({ "schema": a }));
    let (_, level) = call(
        &client,
        Method::GET,
        &format!("{base}/config/vehicles-value"),
        None,
    )
    .await;
    assert_eq!(level, json!({ "compatibilityLevel": "FULL" }));

    // Known schemas keep their ids under new subjects; a new schema gets the next id.
    let (_, reused) = call(
        &client,
        Method::POST,
        &format!("{base}/subjects/copy-value/versions"),
        Some(&schema_body(&a)),
    )
    .await;
    assert_eq!(reused, json!({ "id": 1 }));
    let (_, fresh) = call(
        &client,
        Method::POST,
        &format!("{base}/subjects/stations-value/versions"),
        Some(&schema_body(&c)),
    )
    .await;
    assert_eq!(fresh, json!({ "id": 3 }));
    server.shutdown().await;
    drop(registry);

    // And that survives another reopen too.
    let registry = SchemaRegistry::open(Some(&data_dir)).expect("third open");
    let server = start(&registry).await;
    let (_, subjects) = call(
        &client,
        Method::GET,
        &format!("{}/subjects", server.base),
        None,
    )
    .await;
    assert_eq!(
        subjects,
        json!(["copy-value", "stations-value", "vehicles-value"])
    );
    server.shutdown().await;
}

#[test]
fn a_corrupt_data_file_is_an_error_not_a_panic() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("schemas.json");

    std::fs::write(&file, b"{ this is not json").expect("write");
    match SchemaRegistry::open(Some(dir.path())) {
        Err(RegistryError::Corrupt { path, .. }) => assert_eq!(path, file),
        other => panic!("expected Corrupt, got {other:?}"),
    }

    // Well-formed JSON that does not hold together is corrupt as well.
    let dangling = json!({
        "format": 1,
        "compatibility": "BACKWARD",
        "next_id": 2,
        "schemas": [{ "id": 1, "schema": "\"string\"" }],
        "subjects": { "s": [{ "version": 1, "id": 7 }] }
    });
    std::fs::write(&file, dangling.to_string()).expect("write");
    assert!(matches!(
        SchemaRegistry::open(Some(dir.path())),
        Err(RegistryError::Corrupt { .. })
    ));
    let unparseable = json!({
        "format": 1,
        "compatibility": "BACKWARD",
        "next_id": 2,
        "schemas": [{ "id": 1, "schema": "{\"type\":\"nosuch\"}" }],
        "subjects": {}
    });
    std::fs::write(&file, unparseable.to_string()).expect("write");
    assert!(matches!(
        SchemaRegistry::open(Some(dir.path())),
        Err(RegistryError::Corrupt { .. })
    ));
}
