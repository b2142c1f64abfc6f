//! `simulation`: moves trains and produces arrivals, turnstile entries, weather and station
//! rows to Kafka (Avro, Confluent wire format).

use anyhow::Context;
use clap::Parser;
use cta_stream::cli::{init_tracing, ConnectArgs, SimArgs};
use cta_stream::stream::Shutdown;
use cta_stream::transit::simulation;

#[derive(Parser)]
#[command(
    version,
    about = "Simulate CTA trains, turnstiles and weather into Kafka"
)]
struct Cli {
    #[command(flatten)]
    connect: ConnectArgs,
    #[command(flatten)]
    sim: SimArgs,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    init_tracing();
    let (kafka, registry) = cli.connect.resolve()?;
    let config = cli.sim.config()?;
    let dataset = cli.sim.dataset()?;
    let shutdown = Shutdown::new();
    shutdown.trigger_on_signals();
    let report = simulation::run(dataset, config, &kafka, &registry, shutdown)
        .await
        .context("simulation failed")?;
    let total: u64 = report.produced.values().sum();
    println!("{} steps, {total} records produced", report.steps);
    Ok(())
}
