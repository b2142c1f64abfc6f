//! `worker`: the stream worker (agents, RocksDB tables with changelogs) and the status page;
//! `worker query turnstile` asks a running worker for the turnstile table, `worker query
//! "<ksqlDB statement>"` its ksqlDB-compatible endpoint. Exits 2 on
//! configuration errors, 1 on other failures.

#[allow(dead_code, unused_imports)] // the flags of all three binaries; each uses its own
mod cli;

use anyhow::Context;
use clap::{Parser, Subcommand};
use cli::{EndpointArgs, WorkerArgs, WorkerIntegrationArgs};
use cta_stream::runner::run_worker_with;
use cta_stream::stream::Shutdown;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    version,
    about = "CTA stream worker: agents + RocksDB changelog tables + status page on :8889"
)]
struct Cli {
    #[command(flatten)]
    endpoints: EndpointArgs,
    #[command(flatten)]
    worker: WorkerArgs,
    #[command(flatten)]
    integrations: WorkerIntegrationArgs,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Query a running worker's tables: a ksqlDB statement, e.g.
    /// `worker query "SELECT * FROM TURNSTILE_SUMMARY WHERE STATION_ID = 40380"` (also
    /// `SHOW TABLES`, `DESCRIBE TURNSTILE_HOURLY`), or `worker query turnstile [--station N]`.
    #[command(args_conflicts_with_subcommands = true)]
    Query {
        #[command(subcommand)]
        table: Option<QueryTable>,
        /// A ksqlDB statement, sent to the worker's ksqlDB-compatible endpoint; the answer
        /// prints as a table like the ksqlDB CLI's.
        statement: Option<String>,
        /// Base URL of the worker's web server.
        #[arg(
            long,
            env = "CTA_WORKER_URL",
            default_value = "http://127.0.0.1:8889",
            global = true
        )]
        url: String,
        /// Print JSON instead of a table.
        #[arg(long, global = true)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum QueryTable {
    /// Turnstile entries per station (ksqlDB's TURNSTILE_SUMMARY).
    Turnstile {
        /// Only this station id (e.g. 40380).
        #[arg(long)]
        station: Option<i32>,
    },
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
        Some(Command::Query {
            table,
            statement,
            url,
            json,
        }) => {
            let out = match (table, statement) {
                (Some(QueryTable::Turnstile { station }), _) => {
                    cta_stream::web::client::query_turnstile(&url, station, json).await?
                }
                (None, Some(sql)) => cta_stream::web::ksql::client::run(&url, &sql, json).await?,
                (None, None) => anyhow::bail!(
                    "worker query: give a statement (\"SELECT * FROM TURNSTILE_SUMMARY;\") or a table (turnstile)"
                ),
            };
            print!("{out}");
            Ok(())
        }
        None => {
            let (kafka, registry) = cli.endpoints.endpoints().connect().await?;
            if cli.worker.reset_state {
                cta_stream::runner::reset_state(&cli.worker.data_dir, &cli.worker.app_id)?;
            }
            let shutdown = Shutdown::new();
            shutdown.trigger_on_signals_within(cta_stream::stream::GRACEFUL_DEADLINE);
            run_worker_with(
                cli.worker.options(),
                kafka,
                registry,
                cli.integrations.options(),
                shutdown,
            )
            .await
            .context("worker failed")
        }
    }
}
