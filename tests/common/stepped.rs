//! The simulation stepped by a test, so the test can ask it where things stand between steps
//! (where each train is, what it produced): the stations are published first, then each step's
//! records are produced and acknowledged before the next.

use super::TestEnv;
use cta_stream::transit::simulation::{SimConfig, SimProducer, SimReport, Simulation, StepOutput};
use cta_stream::transit::stations::Dataset;
use std::time::Duration;

pub struct SteppedSim {
    pub sim: Simulation,
    producer: SimProducer,
    pub report: SimReport,
}

impl SteppedSim {
    /// The built-in dataset's simulation with `seed`, its clock starting at `start_ms`.
    pub async fn new(env: &TestEnv, seed: u64, start_ms: i64) -> Self {
        let config = SimConfig {
            seed,
            sleep: Duration::ZERO,
            start_ms,
            ..SimConfig::default()
        };
        let sim = Simulation::new(Dataset::builtin(), &config);
        let producer = SimProducer::new(&env.kafka, &env.registry).unwrap();
        producer.publish_stations(sim.dataset()).await.unwrap();
        Self {
            sim,
            producer,
            report: SimReport::default(),
        }
    }

    /// Runs `n` steps, each step's records passed through `edit` (which may hold some back)
    /// before they are produced, and waits until every record is acknowledged.
    pub async fn steps_with(&mut self, n: usize, mut edit: impl FnMut(&mut StepOutput)) {
        for _ in 0..n {
            let mut out = self.sim.step();
            edit(&mut out);
            self.producer
                .produce_step(&out, &mut self.report)
                .await
                .unwrap();
        }
        self.producer.flush().unwrap();
    }
}
