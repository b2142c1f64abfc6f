//! The poll loop, one round at a time: a batch drained from the fetch queue while the agents
//! process the previous one (`agents`), then, with the agents idle, the timers and, every
//! `commit_interval` or `commit_every` records, a checkpoint, then the consumer's own queue
//! (rebalances, errors), and the new batch handed to the agents. Starting and stopping the
//! loop is `runtime`'s; assignment and revocation `rebalance`'s.

use super::agents::{AgentThread, Inline, Processing, Round};
use super::rebalance::ConductorContext;
use super::App;
use crate::error::{Result, StreamError};
use crate::fetch::{Batch, FetchQueue};
use crate::sensor::Status;
use crate::shutdown::Shutdown;
use crate::timer::Timers;
use rdkafka::consumer::{BaseConsumer, Consumer};
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// How long the poll thread waits for records before it runs the rest of its round anyway:
/// the timers, a due checkpoint, the consumer's queue. A wait that ends with nothing counts as
/// caught up (`AppConfig::checkpoint_when_idle`).
const POLL_WAIT: Duration = Duration::from_millis(100);

/// How long a worker the group removed may wait to be given partitions again before it stops.
const FENCED_LIMIT: Duration = Duration::from_secs(120);

/// What the poll thread keeps between rounds besides the agents' round: the timers and when
/// the last checkpoint was.
struct Conductor<'a> {
    timers: &'a mut Timers,
    commit_every: u64,
    commit_interval: Duration,
    checkpoint_when_idle: bool,
    status: &'a Status,
    repartitioned: bool,
    last_commit: Duration,
}

impl App {
    pub(super) fn poll_loop(
        &mut self,
        consumer: &BaseConsumer<ConductorContext>,
        fetch: &mut FetchQueue,
        routes: &HashMap<String, Vec<usize>>,
        shutdown: &Shutdown,
    ) -> Result<()> {
        let ctx = consumer.context();
        let round = Round::new(
            &mut self.agents,
            routes,
            self.config.dead_letter,
            !self.timers.is_empty(),
        );
        let mut conductor = Conductor {
            timers: &mut self.timers,
            commit_every: self.config.commit_every,
            commit_interval: self.config.commit_interval,
            checkpoint_when_idle: self.config.checkpoint_when_idle,
            status: &self.status,
            repartitioned: !self.repartitions.is_empty(),
            last_commit: coarse_now(),
        };
        let status = &*self.status;
        if self.config.agent_thread {
            std::thread::scope(|scope| {
                let mut agents = AgentThread::spawn(scope, ctx, status)?;
                conductor.run(consumer, fetch, shutdown, round, &mut agents)
            })
        } else {
            let mut agents = Inline::new(ctx, status);
            conductor.run(consumer, fetch, shutdown, round, &mut agents)
        }
    }
}

impl<'a> Conductor<'a> {
    /// Rounds until `shutdown`. The agents hold the round while they process a batch; the
    /// poll thread takes it back before anything that reads or writes the tables or the
    /// positions (timers, checkpoints, rebalance callbacks), so those see every record of the
    /// batches handed over and none of the one drained meanwhile.
    fn run<'r>(
        &mut self,
        consumer: &BaseConsumer<ConductorContext>,
        fetch: &mut FetchQueue,
        shutdown: &Shutdown,
        round: Round<'r>,
        agents: &mut dyn Processing<'r>,
    ) -> Result<()> {
        let ctx = consumer.context();
        // The round, while no batch is with the agents.
        let mut idle = Some(round);
        let mut next = fetch.new_batch();
        let mut spare: Option<Batch> = None;
        while !shutdown.is_triggered() {
            // The previous batch's messages are released here too (the drain clears `next`).
            fetch.drain(POLL_WAIT, &mut next);
            // Nothing arrived for a whole wait (or an event on the consumer's queue cut it
            // short, which at worst brings a due checkpoint forward).
            let caught_up = next.is_empty();
            let mut round = match idle.take() {
                Some(r) => r,
                None => {
                    let (r, done) = agents.finish()?;
                    spare = Some(done);
                    r
                }
            };
            self.finish_round(consumer, &mut round, caught_up)?;
            self.poll_consumer_queue(consumer, &mut round)?;
            // A rebalance callback that failed (it returns nothing through `poll`).
            if ctx.failed.load(Ordering::Relaxed) {
                if let Some(e) = ctx.with_state(|s| Ok(s.fatal.take()))? {
                    return Err(e);
                }
            }
            ctx.drop_reassigned(&mut next);
            if let Some(since) = ctx.with_state(|s| Ok(s.fenced_since))? {
                // Removed from the group: these records' partitions may be another worker's,
                // which reads them itself. Dropped until the group assigns partitions again.
                next.clear();
                idle = Some(round);
                if since.elapsed() > FENCED_LIMIT {
                    return Err(StreamError::Fenced(FENCED_LIMIT.as_secs()));
                }
                continue;
            }
            if next.is_empty() {
                idle = Some(round);
                continue;
            }
            let batch =
                std::mem::replace(&mut next, spare.take().unwrap_or_else(|| fetch.new_batch()));
            agents.start(round, batch)?;
        }
        if idle.is_none() {
            // The batch handed over last is processed; the final checkpoint takes it.
            agents.finish()?;
        }
        Ok(())
    }

    /// The consumer's own queue: rebalances (the callback runs here), commit results, errors,
    /// and the records of any partition not forwarded to the fetch queue.
    fn poll_consumer_queue(
        &mut self,
        consumer: &BaseConsumer<ConductorContext>,
        round: &mut Round<'_>,
    ) -> Result<()> {
        let ctx = consumer.context();
        loop {
            match consumer.poll(Duration::ZERO) {
                None => return Ok(()),
                Some(Err(e)) => {
                    if let Some(refused) = StreamError::group_refused(&e) {
                        return Err(refused);
                    }
                    tracing::warn!(error = %e, "consumer error (librdkafka retries)")
                }
                Some(Ok(m)) => {
                    if ctx.with_state(|s| Ok(s.fenced_since.is_some()))? {
                        continue;
                    }
                    round.process_one(ctx, self.status, &m)?;
                }
            }
        }
    }

    /// After a batch: the repartitioned records out, the timers, and a checkpoint when one is
    /// due: after `commit_every` records, `commit_interval`, or once `caught_up` when
    /// `checkpoint_when_idle`.
    fn finish_round(
        &mut self,
        consumer: &BaseConsumer<ConductorContext>,
        round: &mut Round<'_>,
        caught_up: bool,
    ) -> Result<()> {
        let ctx = consumer.context();
        if self.repartitioned {
            ctx.with_state(|s| s.send_repartitioned())?;
        }
        if round.timed {
            for (slot, t) in round.latest.iter_mut().enumerate() {
                if let Some(t) = t.take() {
                    self.timers.observe(round.topics.topic(slot), t);
                }
            }
            // Timer writes wait in the write caches like an agent's: count them so the
            // checkpoint below (or the next) takes them.
            round.since_commit += self.fire_timers(ctx)?;
        }
        if round.since_commit > 0
            && (round.since_commit >= self.commit_every
                || (caught_up && self.checkpoint_when_idle)
                || coarse_now().saturating_sub(self.last_commit) >= self.commit_interval)
        {
            // Not taken by the group: the caches stay and the next checkpoint retries.
            ctx.with_state(|s| s.checkpoint(consumer))?;
            round.since_commit = 0;
            self.last_commit = coarse_now();
        }
        Ok(())
    }

    /// Runs the timers due on the partitions this worker has positions for.
    fn fire_timers(&mut self, ctx: &ConductorContext) -> Result<u64> {
        let timers = &self.timers;
        let owned: Vec<crate::timer::Owned> = ctx.with_state(|s| {
            Ok(s.positions
                .iter()
                .filter(|(topic, _)| timers.on_topic(topic))
                .flat_map(|(topic, m)| m.iter().map(move |(p, o)| (topic.clone(), *p, *o)))
                .collect())
        })?;
        self.timers.fire(crate::now_ms(), &owned)
    }
}

/// Monotonic time since an arbitrary start, with the kernel's tick resolution (a few ms) on
/// Linux: enough for the commit interval, and cheaper per record than `Instant::now`.
fn coarse_now() -> Duration {
    #[cfg(target_os = "linux")]
    {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `ts` is a valid, writable timespec for the call to fill in.
        if unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC_COARSE, &mut ts) } == 0 {
            return Duration::new(
                ts.tv_sec.max(0) as u64,
                ts.tv_nsec.clamp(0, 999_999_999) as u32,
            );
        }
    }
    static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    START.get_or_init(Instant::now).elapsed()
}
