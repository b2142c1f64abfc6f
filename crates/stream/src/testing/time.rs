//! The test driver's clocks: wall time (which runs wall-clock timers and interval
//! checkpoints) and each topic's stream time (which runs stream-time timers).

use super::TestDriver;
use crate::error::Result;
use crate::timer::Owned;
use std::time::Duration;

impl TestDriver {
    /// The driver's clock (wall time, and the timestamp of records fed without one).
    pub fn now_ms(&self) -> i64 {
        self.clock_ms
    }

    /// Moves the clock on; checkpoints when `commit_interval` has passed since the last one
    /// and records were processed since, as the worker's poll loop does.
    /// Wall-clock timers that fall due run first.
    pub fn advance_time(&mut self, by: Duration) -> Result<()> {
        self.clock_ms += by.as_millis() as i64;
        self.fire_timers()?;
        let interval = self.config.commit_interval.as_millis() as i64;
        if self.since_checkpoint > 0 && self.clock_ms - self.last_checkpoint_ms >= interval {
            self.checkpoint()?;
        }
        Ok(())
    }

    /// Moves the stream time of `topic` to `to_ms` (if later), as a record with that
    /// timestamp would, and runs the stream-time timers that fall due.
    pub fn advance_stream_time(&mut self, topic: &str, to_ms: i64) -> Result<()> {
        self.timers.observe(topic, to_ms);
        self.fire_timers()
    }

    /// The stream time of `topic` as the timers see it (largest event time processed).
    pub fn stream_time(&self, topic: &str) -> Option<i64> {
        self.timers.stream_time(topic)
    }

    /// Runs the timers due on the partitions the driver has positions for.
    pub(super) fn fire_timers(&mut self) -> Result<()> {
        if self.timers.is_empty() {
            return Ok(());
        }
        let owned: Vec<Owned> = self
            .positions
            .iter()
            .filter(|((topic, _), _)| self.timers.on_topic(topic))
            .map(|((topic, p), o)| (topic.clone(), *p, *o))
            .collect();
        self.since_checkpoint += self.timers.fire(self.clock_ms, &owned)?;
        Ok(())
    }
}
