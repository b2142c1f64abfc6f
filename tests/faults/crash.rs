//! Exactly-once state without broker transactions: the worker binary is killed with SIGKILL
//! at random moments while turnstile entries stream in, restarted each time; at the end the
//! per-station counts equal the counts of what was produced. Then a worker with an empty data
//! dir rebuilds the same counts from the changelog alone (records of checkpoints that never
//! completed are not applied).

#[path = "../common/mod.rs"]
mod common;

use common::kills::*;
use common::*;
use cta_stream::stream::testing::unique_name;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn counts_are_exact_after_repeated_kill_9() {
    let plan = KillPlan {
        records: 200_000,
        chunk: 4_000,
        kills: 12,
        worker_flags: &[],
    };
    let env = env().await;
    let app_id = unique_name("crash");
    create_all_topics(&env, &app_id).await;
    let producer = TurnstileProducer::new(&env).await;
    kill_run_is_exact(&env, &app_id, plan, producer, 99).await;
}
