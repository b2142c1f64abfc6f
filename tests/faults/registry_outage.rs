//! The schema registry goes away before the worker has fetched any schema and comes back
//! later (same port, same data dir): the worker waits with backoff, skips nothing, dead-letters
//! nothing, and ends with exact counts. Also: the simulation waits for the registry too, while a
//! worker that has cached its schemas goes on counting.

#[path = "../common/mod.rs"]
mod common;

use common::*;
use cta_stream::platform::schema_registry::SchemaRegistry;
use cta_stream::platform::EmbeddedBroker;
use cta_stream::stream::testing::unique_name;
use cta_stream::stream::{KafkaConfig, RegistryConfig};
use rand::SeedableRng;
use std::collections::BTreeMap;
use std::time::Duration;

async fn serve_registry(
    reg: &SchemaRegistry,
    addr: std::net::SocketAddr,
) -> (
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<()>,
) {
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let (_, task) = reg
        .serve(addr, async move {
            let _ = rx.await;
        })
        .await
        .unwrap();
    (tx, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn worker_waits_for_the_registry_and_loses_nothing() {
    let broker = EmbeddedBroker::start(1).unwrap();
    let reg_dir = tempfile::tempdir().unwrap();
    let reg_addr = free_addr();
    let registry = SchemaRegistry::open(Some(reg_dir.path())).unwrap();
    let (stop, task) = serve_registry(&registry, reg_addr).await;
    let env = TestEnv {
        platform: None,
        kafka: KafkaConfig::new(broker.bootstrap_servers()),
        registry: RegistryConfig::new(format!("http://{reg_addr}")),
    };
    let app_id = unique_name("outage");
    for n in cta_topics(&app_id, 4) {
        broker.create_topic(&n, 4).unwrap();
    }
    let producer = TurnstileProducer::new(&env).await;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
    let mut expected = BTreeMap::new();
    producer.send(20_000, &mut rng, &mut expected);

    // Registry down before the worker asks for any schema.
    let _ = stop.send(());
    task.await.unwrap();
    drop(registry);

    let dir = tempfile::tempdir().unwrap();
    let worker = spawn_worker(&env, dir.path(), &app_id).await;
    let base = worker.base.clone();
    tokio::time::sleep(Duration::from_secs(4)).await;
    // Nothing counted, nothing dead-lettered while the registry is away.
    let (_, st) = get_json(&format!("{base}/api/status")).await;
    assert_eq!(st["total_entries"].as_i64(), Some(0), "{st}");
    assert_eq!(st["worker"]["dead_lettered"].as_u64(), Some(0));

    // Back on the same port with its stored schemas: the worker catches up exactly.
    let registry = SchemaRegistry::open(Some(reg_dir.path())).unwrap();
    let (stop, task) = serve_registry(&registry, reg_addr).await;
    wait_for_counts(&base, &expected, Duration::from_secs(90)).await;
    let (_, st) = get_json(&format!("{base}/api/status")).await;
    assert_eq!(st["worker"]["dead_lettered"].as_u64(), Some(0));
    worker.stop().await;
    let _ = stop.send(());
    task.await.unwrap();
}

/// The registry goes away after the worker has decoded entries (so it has their writer
/// schemas cached) and before the simulation has registered any schema. The worker goes on
/// counting entries written with the cached schemas; the simulation waits and retries,
/// producing nothing; once the registry is back the simulation delivers every record once and
/// the worker's counts equal the topic's.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn simulation_waits_for_the_registry_while_a_worker_with_cached_schemas_counts_on() {
    use cta_stream::transit::simulation::{self, SimConfig};
    let broker = EmbeddedBroker::start(1).unwrap();
    let reg_dir = tempfile::tempdir().unwrap();
    let reg_addr = free_addr();
    let registry = SchemaRegistry::open(Some(reg_dir.path())).unwrap();
    let (stop, task) = serve_registry(&registry, reg_addr).await;
    let mut kafka = KafkaConfig::new(broker.bootstrap_servers());
    kafka.topics_created_on_first_use();
    let env = TestEnv {
        platform: None,
        kafka,
        registry: RegistryConfig::new(format!("http://{reg_addr}")),
    };
    let app_id = unique_name("sim-outage");
    for n in cta_topics(&app_id, 4) {
        broker.create_topic(&n, 4).unwrap();
    }
    let producer = TurnstileProducer::new(&env).await;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(4);
    let mut expected = BTreeMap::new();
    producer.send(5_000, &mut rng, &mut expected);
    let dir = tempfile::tempdir().unwrap();
    let worker = spawn_worker(&env, dir.path(), &app_id).await;
    let base = worker.base.clone();
    wait_for_counts(&base, &expected, Duration::from_secs(60)).await;

    // Registry down.
    let _ = stop.send(());
    task.await.unwrap();
    drop(registry);
    assert!(reqwest::get(format!("http://{reg_addr}/subjects"))
        .await
        .is_err());

    let config = SimConfig {
        time_step: Duration::from_secs(300),
        sleep: Duration::ZERO,
        steps: Some(3),
        seed: 12,
        trains_per_line: 4,
        partitions: 4,
        start_ms: 1_795_957_200_000,
        publish_stations: true,
    };
    let sim = {
        let (kafka, registry) = (env.kafka.clone(), env.registry.clone());
        tokio::spawn(async move {
            simulation::run(
                cta_stream::transit::stations::Dataset::builtin(),
                config,
                &kafka,
                &registry,
                cta_stream::stream::Shutdown::new(),
            )
            .await
        })
    };
    // Entries encoded with the cached schemas keep being counted while the registry is away.
    producer.send(5_000, &mut rng, &mut expected);
    wait_for_counts(&base, &expected, Duration::from_secs(30)).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        !sim.is_finished(),
        "the simulation cannot finish without the registry"
    );
    // (Read raw: decoding would need the registry.)
    assert_eq!(
        read_all(&env.kafka.brokers, "org.chicago.cta.turnstile.v1").len(),
        10_000,
        "the simulation wrote no entry while the registry was down"
    );
    let (_, st) = get_json(&format!("{base}/api/status")).await;
    assert_eq!(st["worker"]["dead_lettered"].as_u64(), Some(0), "{st}");

    // Back: the simulation finishes, each record once.
    let registry = SchemaRegistry::open(Some(reg_dir.path())).unwrap();
    let (stop, task) = serve_registry(&registry, reg_addr).await;
    let report = tokio::time::timeout(Duration::from_secs(120), sim)
        .await
        .expect("the simulation finishes once the registry is back")
        .unwrap()
        .expect("simulation");
    assert_eq!(report.steps, 3);
    for (station, n) in &report.turnstile_per_station {
        *expected.entry(*station).or_insert(0) += *n as i64;
    }
    let on_topic = count_turnstile(&env).await;
    assert_eq!(on_topic, expected, "topic = before + simulation's report");
    wait_for_counts(&base, &on_topic, Duration::from_secs(60)).await;
    let (_, st) = get_json(&format!("{base}/api/status")).await;
    assert_eq!(st["worker"]["dead_lettered"].as_u64(), Some(0));
    eprintln!(
        "simulation delivered {} entries once after the outage",
        report.turnstile_per_station.values().sum::<u64>()
    );
    worker.stop().await;
    let _ = stop.send(());
    task.await.unwrap();
}
