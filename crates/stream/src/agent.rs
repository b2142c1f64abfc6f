//! Agents: the processing functions of an app, one source topic each (Faust's `@app.agent`).
//!
//! Faust agents are async iterators; here an agent is a synchronous handler the conductor
//! calls for each record of its topic, in offset order per partition. Table updates are
//! in-memory until the checkpoint, so there is nothing to await per record, and skipping a task
//! switch per record is what lets the worker run at the speed of the consumer. Agents that need
//! I/O per record belong outside the table path.

use crate::error::Result;
use crate::record::Record;

pub trait Agent: Send {
    /// Name for logs (the type's name unless overridden).
    fn name(&self) -> &str {
        std::any::type_name::<Self>()
    }
    /// The one topic this agent consumes.
    fn topic(&self) -> &str;
    /// Handles one record. A [`crate::ErrorKind::Data`] error dead-letters the record
    /// and processing goes on; any other error stops the worker before offsets are committed.
    fn process(&mut self, record: &Record<'_>) -> Result<()>;
    /// Called once the agent's records of a batch have each been through
    /// [`Agent::process`], before the batch's positions reach the checkpoint (Beam's
    /// `FinishBundle`): an agent that gathers its table writes per record applies them here
    /// together ([`crate::Table::update_batch`], [`crate::WindowedTable::update_batch`]), under
    /// one lock per table instead of one per write. Writes made in `process` need nothing
    /// here. An error stops the worker before offsets are committed, as a non-data error of
    /// `process` does.
    fn end_batch(&mut self) -> Result<()> {
        Ok(())
    }
}
