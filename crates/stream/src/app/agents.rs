//! Running the agents on a batch: each record routed by topic to its agents (`routing`), a
//! record an agent cannot decode dead-lettered, and what the batch advanced handed to the
//! worker state at its end. By default on a thread of their own ([`AgentThread`]), so the
//! poll thread drains and releases librdkafka's messages meanwhile (on one thread the agents
//! took about 60 % of a record's time, librdkafka's hand-out and release about 30 %); inline on the
//! poll thread with `AppConfig::agent_thread` off. Either way one batch at a time, handed over
//! with the agents themselves: the poll thread cannot reach them, or the tables through
//! them, until the batch is done.

use super::rebalance::ConductorContext;
use super::routing::{BatchProgress, TopicSlots};
use crate::agent::Agent;
use crate::error::{ErrorKind, Result, StreamError};
use crate::fetch::Batch;
use crate::record::Record;
use crate::sensor::Status;
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::message::Message;
use std::collections::HashMap;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::thread::Scope;

/// The agents with what processing carries from one batch to the next.
pub(super) struct Round<'a> {
    agents: &'a mut [Box<dyn Agent>],
    routes: &'a HashMap<String, Vec<usize>>,
    dead_letter: bool,
    /// Records (and timer writes) since the last checkpoint.
    pub(super) since_commit: u64,
    seen_first: bool,
    pub(super) topics: TopicSlots,
    progress: BatchProgress,
    /// Whether the app has timers: only then are event times noted.
    pub(super) timed: bool,
    /// Latest event time per topic slot since the poll thread last looked, for the timers'
    /// stream time.
    pub(super) latest: Vec<Option<i64>>,
}

impl<'a> Round<'a> {
    pub(super) fn new(
        agents: &'a mut [Box<dyn Agent>],
        routes: &'a HashMap<String, Vec<usize>>,
        dead_letter: bool,
        timed: bool,
    ) -> Self {
        Self {
            agents,
            routes,
            dead_letter,
            since_commit: 0,
            seen_first: false,
            topics: TopicSlots::default(),
            progress: BatchProgress::default(),
            timed,
            latest: Vec::new(),
        }
    }

    /// Each record of `batch` to its topic's agents; positions reach the worker state before
    /// the batch is handed back (the poll thread checkpoints them, or a rebalance callback).
    pub(super) fn process_batch(
        &mut self,
        ctx: &ConductorContext,
        status: &Status,
        batch: &Batch,
    ) -> Result<()> {
        if !batch.is_empty() {
            self.first_seen(status);
        }
        for i in 0..batch.len() {
            let m = batch.get(i);
            if let Some(code) = m.error() {
                // Partition errors come this way (e.g. a topic's authorization).
                let error = rdkafka::error::KafkaError::MessageConsumption(code);
                if let Some(refused) = StreamError::group_refused(&error) {
                    return Err(refused);
                }
                if code != RDKafkaErrorCode::PartitionEOF {
                    tracing::warn!(topic = m.topic(), partition = m.partition(), error = %code, "fetch error (librdkafka retries)");
                }
                continue;
            }
            let slot = self.topics.by_handle(&m, self.routes);
            self.process(ctx, &m, slot)?;
        }
        self.end_batch()?;
        self.progress.flush(ctx, &self.topics, status)
    }

    /// Lets each agent apply what it gathered from the batch, before its positions are handed
    /// on.
    fn end_batch(&mut self) -> Result<()> {
        self.agents.iter_mut().try_for_each(|a| a.end_batch())
    }

    /// One record that came through the consumer's own queue.
    pub(super) fn process_one<M: Message>(
        &mut self,
        ctx: &ConductorContext,
        status: &Status,
        m: &M,
    ) -> Result<()> {
        self.first_seen(status);
        let slot = self.topics.by_name(m.topic(), self.routes);
        self.process(ctx, m, slot)?;
        self.end_batch()?;
        self.progress.flush(ctx, &self.topics, status)
    }

    fn first_seen(&mut self, status: &Status) {
        if !self.seen_first {
            status.first_record_seen();
            self.seen_first = true;
        }
    }

    /// Hands one record to its topic slot's agents, then notes its position; a record an
    /// agent cannot decode goes to the dead-letter topic (when enabled) and processing goes
    /// on.
    fn process<M: Message>(&mut self, ctx: &ConductorContext, m: &M, slot: usize) -> Result<()> {
        let slot_state = &self.topics.slots[slot];
        let agents = &slot_state.agents;
        if !agents.is_empty() {
            let record = Record::from_message_of(&slot_state.topic, m);
            for &i in agents {
                if let Err(e) = self.agents[i].process(&record) {
                    if e.kind() != ErrorKind::Data {
                        return Err(e);
                    }
                    ctx.with_state(|state| state.dead_letter(m, &e, self.dead_letter))?;
                }
            }
        }
        if self.timed {
            note_time(&mut self.latest, slot, m.timestamp().to_millis());
        }
        self.progress.record(slot, m.partition(), m.offset());
        self.since_commit += 1;
        Ok(())
    }
}

/// Keeps the latest event time of a topic slot.
fn note_time(latest: &mut Vec<Option<i64>>, slot: usize, t: Option<i64>) {
    let Some(t) = t else { return };
    if latest.len() <= slot {
        latest.resize(slot + 1, None);
    }
    let cur = &mut latest[slot];
    *cur = Some(cur.map_or(t, |c| c.max(t)));
}

/// Where the poll loop's batches are processed: one at a time, `start` handing over the
/// round with the batch and `finish` waiting for both back.
pub(super) trait Processing<'r> {
    fn start(&mut self, round: Round<'r>, batch: Batch) -> Result<()>;
    /// The round and the batch handed over last, once processed (the batch to reuse).
    fn finish(&mut self) -> Result<(Round<'r>, Batch)>;
}

/// Processed on the poll thread, at `start`.
pub(super) struct Inline<'c, 'r> {
    ctx: &'c ConductorContext,
    status: &'c Status,
    done: Option<(Round<'r>, Batch, Result<()>)>,
}

impl<'c> Inline<'c, '_> {
    pub(super) fn new(ctx: &'c ConductorContext, status: &'c Status) -> Self {
        Self {
            ctx,
            status,
            done: None,
        }
    }
}

impl<'r> Processing<'r> for Inline<'_, 'r> {
    fn start(&mut self, mut round: Round<'r>, batch: Batch) -> Result<()> {
        let result = round.process_batch(self.ctx, self.status, &batch);
        self.done = Some((round, batch, result));
        Ok(())
    }

    fn finish(&mut self) -> Result<(Round<'r>, Batch)> {
        let (round, batch, result) = self
            .done
            .take()
            .ok_or_else(|| StreamError::Config("no batch was handed to the agents".into()))?;
        result.map(|()| (round, batch))
    }
}

type Done<'r> = (Round<'r>, Batch, Result<()>);

/// Processed on a thread of the poll loop's scope ("agents"); it ends when this is dropped.
pub(super) struct AgentThread<'r> {
    jobs: SyncSender<(Round<'r>, Batch)>,
    done: Receiver<Done<'r>>,
}

impl<'r> AgentThread<'r> {
    pub(super) fn spawn<'scope>(
        scope: &'scope Scope<'scope, '_>,
        ctx: &'scope ConductorContext,
        status: &'scope Status,
    ) -> Result<Self>
    where
        'r: 'scope,
    {
        let (jobs, inbox) = sync_channel::<(Round<'r>, Batch)>(1);
        let (outbox, done) = sync_channel::<Done<'r>>(1);
        std::thread::Builder::new()
            .name("agents".into())
            .spawn_scoped(scope, move || {
                for (mut round, batch) in inbox {
                    let result = round.process_batch(ctx, status, &batch);
                    if outbox.send((round, batch, result)).is_err() {
                        return;
                    }
                }
            })
            .map_err(|e| StreamError::Config(format!("cannot start the agents' thread: {e}")))?;
        Ok(Self { jobs, done })
    }
}

impl<'r> Processing<'r> for AgentThread<'r> {
    fn start(&mut self, round: Round<'r>, batch: Batch) -> Result<()> {
        self.jobs
            .send((round, batch))
            .map_err(|_| StreamError::Config("the agents' thread stopped".into()))
    }

    fn finish(&mut self) -> Result<(Round<'r>, Batch)> {
        let (round, batch, result) = self
            .done
            .recv()
            .map_err(|_| StreamError::Config("the agents' thread stopped".into()))?;
        result.map(|()| (round, batch))
    }
}
