//! Routing inside the poll loop: which agents a record's topic goes to (found by librdkafka's
//! topic handle, not by name, on the hot path), and what a batch advanced (next offsets and
//! counts), handed over once per batch. Processing the record is `agents`', not this.

use super::rebalance::ConductorContext;
use crate::error::Result;
use crate::fetch::FetchedMessage;
use crate::sensor::Status;
use rdkafka::message::Message;
use std::collections::HashMap;

/// The topics the poll loop has seen, each with its agents, found by librdkafka's topic
/// handle (a pointer compare) instead of by name on every record.
#[derive(Default)]
pub(super) struct TopicSlots {
    pub(super) slots: Vec<TopicSlot>,
    last: usize,
}

pub(super) struct TopicSlot {
    handle: usize,
    pub(super) topic: String,
    pub(super) agents: Vec<usize>,
}

impl TopicSlots {
    pub(super) fn by_handle(
        &mut self,
        m: &FetchedMessage<'_>,
        routes: &HashMap<String, Vec<usize>>,
    ) -> usize {
        let handle = m.topic_handle();
        if self
            .slots
            .get(self.last)
            .is_some_and(|s| s.handle == handle)
        {
            return self.last;
        }
        self.last = match self.slots.iter().position(|s| s.handle == handle) {
            Some(i) => i,
            None => {
                let i = self.by_name(m.topic(), routes);
                self.slots[i].handle = handle;
                i
            }
        };
        self.last
    }

    /// The topic of a slot.
    pub(super) fn topic(&self, slot: usize) -> &str {
        &self.slots[slot].topic
    }

    pub(super) fn by_name(&mut self, topic: &str, routes: &HashMap<String, Vec<usize>>) -> usize {
        if let Some(i) = self.slots.iter().position(|s| s.topic == topic) {
            return i;
        }
        self.slots.push(TopicSlot {
            handle: 0,
            topic: topic.to_string(),
            agents: routes.get(topic).cloned().unwrap_or_default(),
        });
        self.slots.len() - 1
    }
}

/// What a batch processed: the next offset per (topic slot, partition) and records per topic,
/// handed to the worker state and the status once per batch instead of once per record.
#[derive(Default)]
pub(super) struct BatchProgress {
    next: Vec<(usize, i32, i64)>,
    counts: Vec<u64>,
}

impl BatchProgress {
    pub(super) fn record(&mut self, slot: usize, partition: i32, offset: i64) {
        match self
            .next
            .iter_mut()
            .rev()
            .find(|(s, p, _)| *s == slot && *p == partition)
        {
            Some(e) => e.2 = offset + 1,
            None => self.next.push((slot, partition, offset + 1)),
        }
        if self.counts.len() <= slot {
            self.counts.resize(slot + 1, 0);
        }
        self.counts[slot] += 1;
    }

    pub(super) fn flush(
        &mut self,
        ctx: &ConductorContext,
        topics: &TopicSlots,
        status: &Status,
    ) -> Result<()> {
        if self.next.is_empty() {
            return Ok(());
        }
        ctx.with_state(|state| {
            for &(slot, partition, next) in &self.next {
                let topic = &topics.slots[slot].topic;
                match state.positions.get_mut(topic) {
                    Some(m) => {
                        m.insert(partition, next);
                    }
                    None => {
                        state
                            .positions
                            .entry(topic.clone())
                            .or_default()
                            .insert(partition, next);
                    }
                }
            }
            Ok(())
        })?;
        for (slot, n) in self.counts.iter_mut().enumerate() {
            if *n > 0 {
                status.add_consumed(&topics.slots[slot].topic, *n);
                *n = 0;
            }
        }
        self.next.clear();
        Ok(())
    }
}
