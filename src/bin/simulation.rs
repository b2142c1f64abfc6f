//! `simulation`: moves trains and produces arrivals, turnstile entries, weather and station
//! rows to Kafka (Avro, Confluent wire format); optionally with Kafka Connect, Postgres or the
//! REST Proxy for parts of it. Exits 2 on configuration errors, 1 on other failures.

#[allow(dead_code, unused_imports)] // the flags of all three binaries; each uses its own
mod cli;

use anyhow::Context;
use clap::Parser;
use cli::{EndpointArgs, SimArgs, SimIntegrationArgs};
use cta_stream::runner::run_simulation;
use cta_stream::stream::Shutdown;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    version,
    about = "Simulate CTA trains, turnstiles and weather into Kafka"
)]
struct Cli {
    #[command(flatten)]
    endpoints: EndpointArgs,
    #[command(flatten)]
    sim: SimArgs,
    #[command(flatten)]
    integrations: SimIntegrationArgs,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    cta_stream::logging::init();
    cli::report(run(cli).await)
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let (kafka, registry) = cli.endpoints.endpoints().connect().await?;
    let config = cli.sim.config()?;
    let dataset = cli.sim.dataset()?;
    let shutdown = Shutdown::new();
    shutdown.trigger_on_signals();
    let report = run_simulation(
        dataset,
        config,
        &kafka,
        &registry,
        cli.integrations.options(),
        shutdown,
    )
    .await
    .context("simulation failed")?;
    let total: u64 = report.produced.values().sum();
    println!("{} steps, {total} records produced", report.steps);
    Ok(())
}
