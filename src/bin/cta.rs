//! `cta`: the whole demo in one process (default), the embedded platform on its own, or the
//! generated `load_stations.sql`. Exits 2 on configuration errors, 1 on other failures.

#[allow(dead_code, unused_imports)] // the flags of all three binaries; each uses its own
mod cli;

use anyhow::Context;
use clap::{Parser, Subcommand};
use cli::{KafkaPropertyArgs, SimArgs, WorkerArgs};
use cta_stream::endpoints::check_kafka_client;
use cta_stream::runner::{host_platform, run_demo, DemoOptions};
use cta_stream::stream::Shutdown;
use cta_stream::transit::stations::Dataset;
use std::net::SocketAddr;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    version,
    about = "CTA 'L' status pipeline: simulation → Kafka → stream worker → status page on :8889"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run everything in one process on the embedded broker and schema registry (the default).
    Demo(Box<DemoArgs>),
    /// Host only the embedded broker and schema registry, for `simulation` and `worker` run apart.
    Platform {
        /// Address of the schema registry.
        #[arg(long, env = "CTA_REGISTRY_ADDR", default_value = "127.0.0.1:8081")]
        registry_addr: SocketAddr,
        /// Partitions of the CTA topics to create on the broker.
        #[arg(long, default_value_t = 4)]
        partitions: i32,
        /// Keep registered schemas in this directory.
        #[arg(long)]
        registry_dir: Option<std::path::PathBuf>,
        /// App id of the workers (names their changelog topics, created here).
        #[arg(long, env = "CTA_APP_ID", default_value = "cta-stream")]
        app_id: String,
    },
    /// Print load_stations.sql generated from the station CSV.
    StationsSql {
        /// Station CSV (default: the built-in data/stations.csv).
        #[arg(long)]
        stations_csv: Option<std::path::PathBuf>,
    },
}

#[derive(Parser)]
struct DemoCli {
    #[command(flatten)]
    args: DemoArgs,
}

#[derive(clap::Args)]
struct DemoArgs {
    #[command(flatten)]
    worker: WorkerArgs,
    #[command(flatten)]
    sim: SimArgs,
    /// Address of the embedded schema registry (port 0: any free port).
    #[arg(long, env = "CTA_REGISTRY_ADDR", default_value = "127.0.0.1:0")]
    registry_addr: SocketAddr,
    #[command(flatten)]
    properties: KafkaPropertyArgs,
}

#[tokio::main]
async fn main() -> ExitCode {
    cta_stream::stream::memory::limit_malloc_arenas();
    let cli = Cli::parse();
    cta_stream::logging::init();
    cli::report(run(cli).await)
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        None => {
            let cli = DemoCli::parse_from(["cta"]);
            demo(cli.args).await
        }
        Some(Command::Demo(args)) => demo(*args).await,
        Some(Command::Platform {
            registry_addr,
            partitions,
            registry_dir,
            app_id,
        }) => {
            let shutdown = Shutdown::new();
            shutdown.trigger_on_signals();
            host_platform(
                registry_addr,
                partitions,
                registry_dir.as_deref(),
                &app_id,
                shutdown,
            )
            .await
            .context("embedded platform failed")
        }
        Some(Command::StationsSql { stations_csv }) => {
            let ds = match stations_csv {
                Some(p) => Dataset::load(&p)?,
                None => Dataset::builtin(),
            };
            print!("{}", ds.to_sql());
            Ok(())
        }
    }
}

async fn demo(args: DemoArgs) -> anyhow::Result<()> {
    let shutdown = Shutdown::new();
    shutdown.trigger_on_signals();
    let mut worker = args.worker.options();
    if args.worker.data_dir == std::path::Path::new("cta-data") {
        // The embedded broker lives in memory, so the demo's stores must start empty too.
        worker.data_dir = std::env::temp_dir().join(format!("cta-demo-{}", std::process::id()));
    }
    let data_dir = worker.data_dir.clone();
    let kafka_properties = args.properties.client_properties().resolve()?;
    let mut probe = cta_stream::stream::KafkaConfig::new("127.0.0.1:9");
    probe.extra = kafka_properties.clone();
    check_kafka_client(&probe)?;
    let opts = DemoOptions {
        worker,
        sim: args.sim.config()?,
        dataset: args.sim.dataset()?,
        registry_addr: args.registry_addr,
        kafka_properties,
    };
    let result = run_demo(opts, shutdown).await.context("demo failed");
    if data_dir.starts_with(std::env::temp_dir()) {
        let _ = std::fs::remove_dir_all(&data_dir);
    }
    result
}
