//! `bench flush`: latency of the checkpoint's step 3 in isolation: send a batch of records with
//! the core's tracked producer ([`cta_stream::stream::kafka::tracked_producer`], the producer the
//! checkpoint uses), then [`cta_stream::stream::kafka::flush`] until every delivery is acknowledged.
//! The poll loop processes no record while a checkpoint runs, so this latency is paid once per
//! checkpoint.

use crate::env::{unique, BenchEnv, BrokerChoice};
use crate::measure::MachineInfo;
use crate::Result;
use cta_stream::stream::kafka::{flush, send_blocking, tracked_producer, TopicSpec};
use cta_stream::stream::{KafkaConfig, StreamError};
use serde::Serialize;
use std::fmt;
use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
pub struct FlushOptions {
    pub batch_sizes: Vec<usize>,
    pub rounds: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct FlushResult {
    pub batch: usize,
    pub rounds: usize,
    pub min_ms: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub max_ms: f64,
    pub mean_ms: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct FlushReport {
    pub machine: MachineInfo,
    pub broker: String,
    pub results: Vec<FlushResult>,
}

pub async fn run(choice: &BrokerChoice, opts: &FlushOptions) -> Result<FlushReport> {
    let machine = MachineInfo::now();
    let env = BenchEnv::start(choice).await?;
    let topic = unique("cta-bench-flush");
    let result = async {
        env.create_topics(&[TopicSpec {
            name: topic.clone(),
            partitions: 4,
            compacted: false,
        }])
        .await?;
        let (kafka, o) = (env.kafka.clone(), opts.clone());
        let results = tokio::task::spawn_blocking(move || measure(&kafka, &topic, &o))
            .await
            .map_err(|e| StreamError::Config(format!("flush task failed: {e}")))??;
        Ok(FlushReport {
            machine,
            broker: env.describe(),
            results,
        })
    }
    .await;
    env.stop().await;
    result
}

fn measure(kafka: &KafkaConfig, topic: &str, opts: &FlushOptions) -> Result<Vec<FlushResult>> {
    let producer = tracked_producer(kafka)?;
    let value = br#"{"STATION_ID":40380,"COUNT":123456}"#;
    let mut out = Vec::new();
    // Warm-up: connections, metadata, producer id.
    send_blocking(
        &producer,
        topic,
        Some(0),
        Some(b"0"),
        Some(value),
        None,
        None,
    )?;
    flush(&producer, Duration::from_secs(30))?;
    for &batch in &opts.batch_sizes {
        let mut ms = Vec::with_capacity(opts.rounds);
        for _ in 0..opts.rounds {
            for i in 0..batch {
                let key = i.to_string();
                send_blocking(
                    &producer,
                    topic,
                    Some((i % 4) as i32),
                    Some(key.as_bytes()),
                    Some(value),
                    None,
                    None,
                )?;
            }
            let t = Instant::now();
            flush(&producer, Duration::from_secs(30))?;
            ms.push(t.elapsed().as_secs_f64() * 1000.0);
        }
        ms.sort_by(|a, b| a.total_cmp(b));
        let n = ms.len().max(1);
        let at = |q: f64| {
            ms.get(((n as f64 * q) as usize).min(n - 1))
                .copied()
                .unwrap_or(0.0)
        };
        out.push(FlushResult {
            batch,
            rounds: ms.len(),
            min_ms: ms.first().copied().unwrap_or(0.0),
            p50_ms: at(0.5),
            p90_ms: at(0.9),
            max_ms: ms.last().copied().unwrap_or(0.0),
            mean_ms: ms.iter().sum::<f64>() / n as f64,
        });
    }
    Ok(out)
}

impl fmt::Display for FlushReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "== checkpoint flush latency (tracked producer: send batch, then flush)"
        )?;
        writeln!(f, "machine: {}", self.machine)?;
        writeln!(f, "broker:  {}", self.broker)?;
        for r in &self.results {
            writeln!(
                f,
                "batch {:>4}: min {:.2} ms  p50 {:.2} ms  p90 {:.2} ms  max {:.2} ms  mean {:.2} ms  ({} rounds)",
                r.batch, r.min_ms, r.p50_ms, r.p90_ms, r.max_ms, r.mean_ms, r.rounds
            )?;
        }
        Ok(())
    }
}
