//! Batched consumption for the poll loop.
//!
//! `BaseConsumer::poll` hands out one message per call: a queue lock, clock reads, an event
//! wrapper and an `Arc` per record, which on this pipeline's small records costs about as much
//! as processing them. The worker instead forwards every assigned partition's fetch queue to
//! one [`FetchQueue`] and drains it with `rd_kafka_consume_batch_queue`, so a whole batch comes
//! out in one call. The consumer's own queue keeps everything else (rebalances, commit
//! results, errors) and is still served by `BaseConsumer::poll`, which runs the rebalance
//! callback; when an event arrives there the batch wait is cut short ([`FetchQueue::waker`]).
//!
//! librdkafka clears a partition's forwarding when its fetcher stops (unassign), so the
//! rebalance callback calls [`FetchHandle::attach`] for every partition before assigning it.
//! Messages of revoked partitions that are still queued are outdated by then and dropped by
//! librdkafka itself.

use crate::error::{Result, StreamError};
use rdkafka::bindings as rd;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::message::{Header, Headers, Message, Timestamp};
use rdkafka::TopicPartitionList;
use std::ffi::{c_char, CStr, CString};
use std::ptr::NonNull;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Records the worker takes from the fetch queue at a time (fewer when `commit_every` is
/// smaller, and only what is queued: a drain never waits for a batch to fill). With the agents
/// on a thread of their own each batch is one hand-over between the poll thread and the agents,
/// so larger batches mean fewer of them: with 4,096 the worker reached 2.3-2.9M records/s on 2
/// cores, with 16,384 3.0-3.6M, with 8,192 and with 32,768 or 65,536 no more than with 16,384
/// (one session, alternating; the raw batch consumer ran as fast with either; BENCHMARKS.md).
pub const FETCH_BATCH: usize = 16_384;

struct QueuePtr(NonNull<rd::rd_kafka_queue_t>);

// SAFETY: librdkafka queues are thread-safe; the pointer is only used while the owning
// `FetchQueue` keeps the queue alive (handles check under the mutex that it still does).
unsafe impl Send for QueuePtr {}

/// The queue as handles see it: `None` once the owner destroyed it.
struct Shared {
    queue: Mutex<Option<QueuePtr>>,
}

/// The queue all assigned partitions are forwarded to. Must be dropped before its consumer.
pub struct FetchQueue {
    queue: NonNull<rd::rd_kafka_queue_t>,
    shared: Arc<Shared>,
    batch: usize,
}

/// Attaches partitions and wakes the batch wait; does nothing after the queue is gone.
#[derive(Clone)]
pub struct FetchHandle {
    shared: Arc<Shared>,
}

impl FetchQueue {
    /// A new queue on `consumer`'s client that takes up to `batch` messages per drain.
    pub fn new<C: ConsumerContext>(consumer: &BaseConsumer<C>, batch: usize) -> Result<Self> {
        // SAFETY: the client pointer is valid for the consumer's lifetime, which outlives
        // this queue (documented requirement, kept by the poll loop's drop order).
        let raw = unsafe { rd::rd_kafka_queue_new(consumer.client().native_ptr()) };
        let queue = NonNull::new(raw)
            .ok_or_else(|| StreamError::Config("librdkafka could not create a queue".into()))?;
        Ok(Self {
            queue,
            shared: Arc::new(Shared {
                queue: Mutex::new(Some(QueuePtr(queue))),
            }),
            batch: batch.max(1),
        })
    }

    pub fn handle(&self) -> FetchHandle {
        FetchHandle {
            shared: self.shared.clone(),
        }
    }

    /// An empty batch with room for one drain.
    pub fn new_batch(&self) -> Batch {
        Batch {
            messages: Vec::with_capacity(self.batch),
        }
    }

    /// Releases what `into` held, then drains into it up to the batch size of queued messages
    /// without waiting; when none is queued, waits up to `timeout` for the first one (or a
    /// wake-up) and takes what arrived.
    pub fn drain(&mut self, timeout: Duration, into: &mut Batch) {
        into.clear();
        let all = self.batch;
        let mut n = self.fill(into, all, 0);
        if n == 0 {
            n = self.fill(
                into,
                1,
                i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX),
            );
            if n > 0 {
                self.fill(into, all - n, 0);
            }
        }
    }

    /// Consumes up to `max` messages onto the end of `into`, waiting up to `timeout_ms` for
    /// them; returns how many.
    fn fill(&mut self, into: &mut Batch, max: usize, timeout_ms: i32) -> usize {
        if max == 0 {
            return 0;
        }
        let v = &mut into.messages;
        v.reserve(max);
        let at = v.len();
        // SAFETY: the queue is alive (owned by self); the vector has room for `max` more
        // pointers after its `at` initialised ones.
        let n = unsafe {
            rd::rd_kafka_consume_batch_queue(
                self.queue.as_ptr(),
                timeout_ms,
                v.as_mut_ptr().add(at),
                max,
            )
        };
        // -1 is an error (none consumed).
        let n = usize::try_from(n).unwrap_or(0).min(max);
        // SAFETY: librdkafka wrote `n` message pointers from `at`.
        unsafe { v.set_len(at + n) };
        n
    }
}

impl Drop for FetchQueue {
    fn drop(&mut self) {
        let mut guard = self.shared.queue.lock().unwrap_or_else(|p| p.into_inner());
        *guard = None;
        // SAFETY: no handle can use the pointer any more (cleared under the lock above).
        unsafe { rd::rd_kafka_queue_destroy(self.queue.as_ptr()) };
    }
}

impl FetchHandle {
    /// Forwards each partition of `tpl` to the queue. Call before assigning them.
    pub fn attach<C: ConsumerContext>(&self, consumer: &BaseConsumer<C>, tpl: &TopicPartitionList) {
        let guard = self.shared.queue.lock().unwrap_or_else(|p| p.into_inner());
        let Some(queue) = guard.as_ref() else {
            return; // closing: messages stay on the consumer's own queue
        };
        let rk = consumer.client().native_ptr();
        for e in tpl.elements() {
            let Ok(topic) = CString::new(e.topic()) else {
                continue;
            };
            // SAFETY: rk is the live client; the returned handle is released right after the
            // forward (it only holds a reference to the partition's queue).
            unsafe {
                let pq = rd::rd_kafka_queue_get_partition(rk, topic.as_ptr(), e.partition());
                if pq.is_null() {
                    tracing::warn!(
                        topic = e.topic(),
                        partition = e.partition(),
                        "no partition queue; its records arrive through the consumer queue"
                    );
                    continue;
                }
                rd::rd_kafka_queue_forward(pq, queue.0.as_ptr());
                rd::rd_kafka_queue_destroy(pq);
            }
        }
    }

    /// Ends a batch wait early (the consumer's own queue has an event to serve).
    pub fn wake(&self) {
        let guard = self.shared.queue.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(queue) = guard.as_ref() {
            // SAFETY: the queue is alive while the guard shows it.
            unsafe { rd::rd_kafka_queue_yield(queue.0.as_ptr()) };
        }
    }
}

/// Drained messages, owned by the batch: released by [`Batch::clear`] (or the next drain into
/// it) or when it is dropped, on whichever thread holds it then.
pub struct Batch {
    messages: Vec<*mut rd::rd_kafka_message_t>,
}

// SAFETY: librdkafka messages may be read and destroyed on any thread; each pointer belongs to
// this batch alone until it is destroyed, once.
unsafe impl Send for Batch {}

impl Batch {
    pub fn len(&self) -> usize {
        self.messages.len()
    }

    pub fn is_empty(&self) -> bool {
        self.messages.is_empty()
    }

    /// The `i`-th message of the batch.
    pub fn get(&self, i: usize) -> FetchedMessage<'_> {
        // SAFETY: every pointer in the batch came from consume_batch_queue and is released
        // only by `clear`/`retain`/drop, which take the batch mutably (after every borrow).
        FetchedMessage {
            m: unsafe { &*self.messages[i] },
        }
    }

    /// Releases every message.
    pub fn clear(&mut self) {
        for m in self.messages.drain(..) {
            // SAFETY: each message is destroyed exactly once, here, and removed from the batch.
            unsafe { rd::rd_kafka_message_destroy(m) };
        }
    }

    /// Keeps the messages `keep` says yes to, in order, and releases the others.
    pub fn retain(&mut self, mut keep: impl FnMut(&FetchedMessage<'_>) -> bool) {
        self.messages.retain(|&m| {
            // SAFETY: the message is live (not yet destroyed); the borrow ends in this closure.
            let kept = keep(&FetchedMessage { m: unsafe { &*m } });
            if !kept {
                // SAFETY: destroyed once, and removed from the batch by `retain`.
                unsafe { rd::rd_kafka_message_destroy(m) };
            }
            kept
        });
    }
}

impl Drop for Batch {
    fn drop(&mut self) {
        self.clear();
    }
}

/// A message of a [`Batch`] (rdkafka's `Message` view of it).
pub struct FetchedMessage<'a> {
    m: &'a rd::rd_kafka_message_t,
}

impl<'a> FetchedMessage<'a> {
    /// The error librdkafka attached instead of a record (partition EOF, offset out of range…).
    pub fn error(&self) -> Option<rdkafka::error::RDKafkaErrorCode> {
        match self.m.err {
            rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR => None,
            e => Some(e.into()),
        }
    }

    /// The topic handle, stable for the consumer's lifetime: a cheap key for per-topic caches.
    pub fn topic_handle(&self) -> usize {
        self.m.rkt as usize
    }

    fn bytes(ptr: *mut std::ffi::c_void, len: usize) -> Option<&'a [u8]> {
        if ptr.is_null() {
            None
        } else {
            // SAFETY: librdkafka guarantees `len` readable bytes at `ptr` for the message's
            // lifetime, which 'a does not exceed.
            Some(unsafe { std::slice::from_raw_parts(ptr as *const u8, len) })
        }
    }
}

/// The headers of a fetched message: a reference to it is a pointer to librdkafka's parsed
/// header list (the same shape as rdkafka's `BorrowedHeaders`).
pub struct FetchedHeaders {
    _opaque: [u8; 0],
}

impl FetchedHeaders {
    fn native(&self) -> *const rd::rd_kafka_headers_t {
        self as *const FetchedHeaders as *const rd::rd_kafka_headers_t
    }
}

impl Headers for FetchedHeaders {
    fn count(&self) -> usize {
        // SAFETY: self is a live header list (borrowed from its message).
        unsafe { rd::rd_kafka_header_cnt(self.native()) }
    }

    fn try_get(&self, idx: usize) -> Option<Header<'_, &[u8]>> {
        let mut name: *const c_char = std::ptr::null();
        let mut value: *const std::ffi::c_void = std::ptr::null();
        let mut size = 0usize;
        // SAFETY: out-pointers are valid; returned pointers live as long as the list.
        let err = unsafe {
            rd::rd_kafka_header_get_all(self.native(), idx, &mut name, &mut value, &mut size)
        };
        if err != rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR || name.is_null() {
            return None;
        }
        // SAFETY: librdkafka header names are NUL-terminated.
        let key = unsafe { CStr::from_ptr(name) }.to_str().ok()?;
        let value = if value.is_null() {
            None
        } else {
            // SAFETY: `size` bytes at `value`, alive as long as the header list.
            Some(unsafe { std::slice::from_raw_parts(value as *const u8, size) })
        };
        Some(Header { key, value })
    }
}

impl<'a> Message for FetchedMessage<'a> {
    type Headers = FetchedHeaders;

    fn key(&self) -> Option<&[u8]> {
        Self::bytes(self.m.key, self.m.key_len)
    }

    fn payload(&self) -> Option<&[u8]> {
        Self::bytes(self.m.payload, self.m.len)
    }

    unsafe fn payload_mut(&mut self) -> Option<&mut [u8]> {
        None // batches are read-only views
    }

    fn topic(&self) -> &str {
        if self.m.rkt.is_null() {
            return "";
        }
        // SAFETY: a message's topic handle lives as long as the message; its name is a
        // NUL-terminated string librdkafka keeps for the handle's lifetime.
        unsafe { CStr::from_ptr(rd::rd_kafka_topic_name(self.m.rkt)) }
            .to_str()
            .unwrap_or("")
    }

    fn partition(&self) -> i32 {
        self.m.partition
    }

    fn offset(&self) -> i64 {
        self.m.offset
    }

    fn timestamp(&self) -> Timestamp {
        let mut kind = rd::rd_kafka_timestamp_type_t::RD_KAFKA_TIMESTAMP_NOT_AVAILABLE;
        // SAFETY: the message is live; `kind` is a valid out-pointer.
        let ts = unsafe { rd::rd_kafka_message_timestamp(self.m, &mut kind) };
        match kind {
            rd::rd_kafka_timestamp_type_t::RD_KAFKA_TIMESTAMP_CREATE_TIME => {
                Timestamp::CreateTime(ts)
            }
            rd::rd_kafka_timestamp_type_t::RD_KAFKA_TIMESTAMP_LOG_APPEND_TIME => {
                Timestamp::LogAppendTime(ts)
            }
            _ => Timestamp::NotAvailable,
        }
    }

    fn headers(&self) -> Option<&FetchedHeaders> {
        let mut hdrs: *mut rd::rd_kafka_headers_t = std::ptr::null_mut();
        // SAFETY: the message is live; librdkafka parses its headers on first use and keeps
        // them with the message (the const cast matches rdkafka's own BorrowedMessage).
        let err = unsafe { rd::rd_kafka_message_headers(self.m, &mut hdrs) };
        if err != rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR || hdrs.is_null() {
            return None;
        }
        // SAFETY: FetchedHeaders is a transparent wrapper of the list, alive with the message.
        Some(unsafe { &*(hdrs as *const FetchedHeaders) })
    }
}
