//! A stream: a conditioner fed from a transport on its own thread (or by whoever calls
//! [`Stream::feed`]), its output in a bounded queue that readers drain. A full queue blocks the
//! feeder (backpressure down to the transport); a failure stops everything after the bytes
//! already queued.
//!
//! Every wait is cut into slices of [`SLICE`]: between slices the caller's `interrupt` is asked
//! whether to give up (the binding checks for Ctrl-C there), and the frame watchdog checks that a
//! valid frame arrived within the stream's frame timeout; a link that carries nothing, or only
//! garbage, fails the stream with [`StreamError::NoValidFrames`] instead of waiting for ever.

use std::collections::VecDeque;
use std::io::Read;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::conditioner::{Conditioner, Stats, StreamError};
use super::framer::SampleFramer;
use crate::frame::messages::{Reply, Status};

/// Why a read returned nothing more.
#[derive(Clone, Debug, PartialEq)]
pub enum ReadError {
    /// The stream failed; earlier output has all been read.
    Failed(StreamError),
    /// The stream was closed.
    Closed,
    /// Not enough output within the time allowed; nothing was consumed.
    Timeout,
    /// The caller's `interrupt` asked to stop (Ctrl-C); nothing was consumed.
    Interrupted,
    /// The output buffer of this many bytes could not be allocated; nothing was consumed.
    OutOfMemory(usize),
}

/// The longest a wait lasts before the caller's `interrupt` and the watchdog are checked.
pub const SLICE: Duration = Duration::from_millis(50);

/// The frame timeout of a new stream: no valid frame for this long fails it.
pub const DEFAULT_FRAME_TIMEOUT: Duration = Duration::from_secs(10);

/// The output bytes a stream holds by default (its capacity) before it stops reading the device.
pub const DEFAULT_CAPACITY: usize = 1 << 20;

/// The longest the reader thread pauses after a chunk that was all garbage (no valid frame), so
/// that a link spewing garbage (`/dev/zero`, a wrong device) does not keep a core busy.
const MAX_BACKOFF: Duration = Duration::from_millis(50);

/// What one call of [`Stream::feed_with`] found in its bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Fed {
    /// Valid frames decoded.
    pub frames: u64,
    /// Bytes skipped as not belonging to any valid frame.
    pub garbage: u64,
}

/// Block shape `(n, m)` and health cutoffs `(rct, apt, window)`; `None` in raw mode.
pub type Shape = (Option<(usize, usize)>, Option<(u64, u64, u64)>);

struct State {
    queue: VecDeque<u8>,
    capacity: usize,
    error: Option<StreamError>,
    ended: bool,
    closed: bool,
    stats: Stats,
    status: Option<Status>,
    replies: VecDeque<Reply>,
    /// Callers waiting for a reply: while there are any, the queue may overfill, so that the
    /// transport keeps being read and the reply can arrive although no one reads the output.
    reply_waiters: usize,
    delivered: u64,
    /// A reader is taking bytes: readers take turns, so that each read is a contiguous run of
    /// the output.
    reading: bool,
    /// No valid frame for this long fails the stream (`None`: never).
    frame_timeout: Option<Duration>,
    /// When the last valid frame arrived, or the watchdog's clock started (at the first read or
    /// feed, so that the time to set a device up does not count).
    last_frame: Option<Instant>,
}

/// Waiting in slices: the deadline, the caller's `interrupt`, and when it was last asked.
struct Waiter<'a> {
    deadline: Option<Instant>,
    interrupt: &'a mut dyn FnMut() -> bool,
    asked: Instant,
}

/// The shared half of a stream.
pub struct Stream {
    conditioner: Mutex<Conditioner>,
    /// Frames the plain sample bytes of [`Stream::feed_samples_with`].
    framer: Mutex<SampleFramer>,
    state: Mutex<State>,
    changed: Condvar,
    worker: Mutex<Option<JoinHandle<()>>>,
}

impl Stream {
    /// A stream around `conditioner` holding at most `capacity` output bytes.
    pub fn new(conditioner: Conditioner, capacity: usize) -> Arc<Self> {
        Arc::new(Stream {
            framer: Mutex::new(SampleFramer::new(conditioner.format())),
            conditioner: Mutex::new(conditioner),
            state: Mutex::new(State {
                queue: VecDeque::new(),
                capacity: capacity.max(1),
                error: None,
                ended: false,
                closed: false,
                stats: Stats::default(),
                status: None,
                replies: VecDeque::new(),
                reply_waiters: 0,
                delivered: 0,
                reading: false,
                frame_timeout: Some(DEFAULT_FRAME_TIMEOUT),
                last_frame: None,
            }),
            changed: Condvar::new(),
            worker: Mutex::new(None),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Sets how long the stream may go without a valid frame before it fails with
    /// [`StreamError::NoValidFrames`] (`None`: wait for ever).
    pub fn set_frame_timeout(&self, timeout: Option<Duration>) {
        self.lock().frame_timeout = timeout;
    }

    /// The frame watchdog: starts its clock, or fails the stream when no valid frame arrived
    /// within the frame timeout. A stream that ended, failed or closed is left alone.
    fn watch(&self, st: &mut State) {
        if st.error.is_some() || st.ended || st.closed {
            return;
        }
        let Some(limit) = st.frame_timeout else { return };
        let now = Instant::now();
        let since = *st.last_frame.get_or_insert(now);
        if now.duration_since(since) >= limit {
            st.error = Some(StreamError::NoValidFrames { seconds: limit.as_secs_f64() });
            self.changed.notify_all();
        }
    }

    /// Waits one slice at most (never past the deadline) for a change, then, at most once a
    /// slice, asks the caller's `interrupt` with the lock released (it may take other locks, such
    /// as Python's), and runs the watchdog.
    fn pause<'s>(
        &'s self,
        st: MutexGuard<'s, State>,
        waiter: &mut Waiter<'_>,
    ) -> (MutexGuard<'s, State>, Option<ReadError>) {
        let mut wait = SLICE;
        if let Some(d) = waiter.deadline {
            let left = d.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return (st, Some(ReadError::Timeout));
            }
            wait = wait.min(left);
        }
        let (st, _) = self.changed.wait_timeout(st, wait).unwrap_or_else(|p| p.into_inner());
        let mut st = st;
        if waiter.asked.elapsed() >= SLICE {
            drop(st);
            waiter.asked = Instant::now();
            let stop = (waiter.interrupt)();
            st = self.lock();
            if stop {
                return (st, Some(ReadError::Interrupted));
            }
        }
        self.watch(&mut st);
        (st, None)
    }
    /// Reads `source` on a thread of its own until it ends, fails, or the stream closes.
    pub fn spawn_reader(self: &Arc<Self>, mut source: Box<dyn Read + Send>, chunk: usize) {
        let stream = Arc::clone(self);
        let handle = std::thread::spawn(move || {
            let mut buf = vec![0u8; chunk.max(1)];
            let mut backoff = Duration::ZERO;
            loop {
                {
                    let mut st = stream.lock();
                    stream.watch(&mut st);
                    if st.closed || st.error.is_some() {
                        return;
                    }
                }
                match source.read(&mut buf) {
                    Ok(0) => return stream.end(),
                    Ok(n) => match stream.feed_with(&buf[..n], &mut || false) {
                        Err(_) => return,
                        // Mostly garbage and no frame: pause, longer each time, so that a link
                        // spewing garbage does not keep a core busy until the watchdog fires.
                        Ok(fed) if fed.frames == 0 && 2 * fed.garbage >= n as u64 => {
                            backoff = (backoff * 2).clamp(Duration::from_millis(1), MAX_BACKOFF);
                            std::thread::sleep(backoff);
                        }
                        Ok(fed) => {
                            if fed.frames > 0 {
                                backoff = Duration::ZERO;
                            }
                        }
                    },
                    // Interrupted, or a quiet device's poll timeout: check for closing, read again.
                    Err(e) if matches!(e.kind(), std::io::ErrorKind::Interrupted | std::io::ErrorKind::TimedOut) => {}
                    Err(e) => return stream.fail(StreamError::Disconnected(e.to_string())),
                }
            }
        });
        *self.worker.lock().unwrap_or_else(|p| p.into_inner()) = Some(handle);
    }

    /// Processes transport bytes and queues the output, waiting while the queue is full.
    ///
    /// # Errors
    /// The stream's failure, or [`ReadError::Closed`] once closed.
    pub fn feed(&self, bytes: &[u8]) -> Result<(), ReadError> {
        self.feed_with(bytes, &mut || false).map(drop)
    }

    /// As [`Stream::feed`], asking `interrupt` while it waits for room; returns what the bytes
    /// held. When interrupted, the output of these bytes is queued all the same (the queue may
    /// overfill by one call's output), so that nothing processed is lost.
    ///
    /// # Errors
    /// As [`Stream::feed`], and [`ReadError::Interrupted`].
    pub fn feed_with(&self, bytes: &[u8], interrupt: &mut dyn FnMut() -> bool) -> Result<Fed, ReadError> {
        {
            let mut st = self.lock();
            if let Some(e) = &st.error {
                return Err(ReadError::Failed(e.clone()));
            }
            st.last_frame.get_or_insert_with(Instant::now);
        }
        let mut out = Vec::new();
        let (result, before, stats, status, replies) = {
            let mut c = self.conditioner.lock().unwrap_or_else(|p| p.into_inner());
            let before = c.stats();
            let r = c.process(bytes, &mut out);
            (r, before, c.stats(), c.device_status(), c.take_replies())
        };
        let fed = Fed { frames: stats.frames - before.frames, garbage: stats.garbage_bytes - before.garbage_bytes };
        let mut st = self.lock();
        if fed.frames > 0 {
            st.last_frame = Some(Instant::now());
        }
        st.stats = stats;
        st.status = status;
        st.replies.extend(replies);
        let mut rest = &out[..];
        let mut waiter = Waiter { deadline: None, interrupt, asked: Instant::now() };
        while !rest.is_empty() {
            if st.closed {
                return Err(ReadError::Closed);
            }
            let room = if st.reply_waiters > 0 { rest.len() } else { st.capacity.saturating_sub(st.queue.len()) };
            if room == 0 {
                let (guard, stop) = self.pause(st, &mut waiter);
                st = guard;
                // Waiting for a reader to make room is not the device's silence: nothing is read
                // from the device meanwhile, so the watchdog's clock starts again from here.
                st.last_frame = Some(Instant::now());
                if stop.is_some() {
                    st.queue.extend(rest);
                    self.changed.notify_all();
                    return Err(ReadError::Interrupted);
                }
                continue;
            }
            let (now, later) = rest.split_at(room.min(rest.len()));
            st.queue.extend(now);
            rest = later;
            self.changed.notify_all();
        }
        if let Err(e) = result {
            st.error.get_or_insert(e.clone());
            self.changed.notify_all();
            return Err(ReadError::Failed(e));
        }
        self.changed.notify_all();
        Ok(fed)
    }

    /// As [`Stream::feed_with`], for plain sample bytes (a byte-stream device read by the caller):
    /// they are framed here, numbered in the order they come; a partial sample waits for the next
    /// call.
    ///
    /// # Errors
    /// As [`Stream::feed_with`].
    pub fn feed_samples_with(&self, bytes: &[u8], interrupt: &mut dyn FnMut() -> bool) -> Result<Fed, ReadError> {
        // Fed under the framer's lock, so that frames enter the stream in their order when
        // several callers feed it. `interrupt` runs with this lock held: callers that take the
        // GIL in it (the binding) must call this without the GIL, so that a thread waiting here
        // never holds what the lock's holder needs.
        let mut framer = self.framer.lock().unwrap_or_else(|p| p.into_inner());
        let frames = framer.push(bytes);
        self.feed_with(frames, interrupt)
    }

    /// The transport ended (end of file): readers get what is queued, then nothing.
    pub fn end(&self) {
        self.lock().ended = true;
        self.changed.notify_all();
    }

    /// Fails the stream (the transport broke): readers get what is queued, then the error.
    pub fn fail(&self, error: StreamError) {
        self.conditioner.lock().unwrap_or_else(|p| p.into_inner()).fail(error.clone());
        self.lock().error.get_or_insert(error);
        self.changed.notify_all();
    }

    /// Closes the stream and waits for its reader thread. Safe to call more than once.
    pub fn close(&self) {
        {
            let mut st = self.lock();
            st.closed = true;
            st.queue.clear();
        }
        self.changed.notify_all();
        let handle = self.worker.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(h) = handle {
            // A reader thread blocked inside its source's read (a FIFO, a quiet device) cannot be
            // interrupted; it exits at its next chunk. Wait briefly, then let it go.
            let deadline = Instant::now() + Duration::from_secs(2);
            while !h.is_finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
            if h.is_finished() {
                let _ = h.join();
            }
        }
    }

    /// Up to `n` bytes: exactly `n` unless the stream ended or failed first (then what is left;
    /// once nothing is left, the failure). Waits at most `timeout` (for ever when `None`). Bytes
    /// are taken from the queue as they come, so `n` may exceed the queue's capacity.
    ///
    /// # Errors
    /// [`ReadError`]: failed with nothing left, closed, or timed out (nothing consumed).
    pub fn read(&self, n: usize, timeout: Option<Duration>) -> Result<Vec<u8>, ReadError> {
        self.read_with(n, timeout, &mut || false)
    }

    /// As [`Stream::read`], asking `interrupt` at least once a [`SLICE`] while it waits. Readers
    /// take turns: each read returns a contiguous run of the output.
    ///
    /// # Errors
    /// As [`Stream::read`], and [`ReadError::Interrupted`] (nothing consumed).
    pub fn read_with(
        &self,
        n: usize,
        timeout: Option<Duration>,
        interrupt: &mut dyn FnMut() -> bool,
    ) -> Result<Vec<u8>, ReadError> {
        let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
        let mut waiter = Waiter { deadline, interrupt, asked: Instant::now() };
        let mut st = self.lock();
        self.watch(&mut st);
        while st.reading {
            if st.closed {
                return Err(ReadError::Closed);
            }
            let (guard, stop) = self.pause(st, &mut waiter);
            st = guard;
            if let Some(e) = stop {
                return Err(e);
            }
        }
        st.reading = true;
        // Room for the whole read up front (up to 16 MiB), as the output arrives in queue-sized
        // pieces: growing by doubling instead copied and faulted in every byte again.
        let mut out = Vec::new();
        if out.try_reserve_exact(n.min(1 << 24)).is_err() {
            st.reading = false;
            return Err(ReadError::OutOfMemory(n));
        }
        let result = loop {
            if st.closed {
                break Err(ReadError::Closed);
            }
            let take = (n - out.len()).min(st.queue.len());
            if take > 0 {
                if out.try_reserve(take).is_err() {
                    break Err(ReadError::OutOfMemory(n));
                }
                out.extend(st.queue.drain(..take));
                self.changed.notify_all();
            }
            if out.len() == n || (!out.is_empty() && (st.ended || st.error.is_some())) {
                break Ok(());
            }
            if let Some(e) = &st.error {
                break Err(ReadError::Failed(e.clone()));
            }
            if st.ended {
                break Ok(());
            }
            let (guard, stop) = self.pause(st, &mut waiter);
            st = guard;
            if let Some(e) = stop {
                break Err(e);
            }
        };
        st.reading = false;
        self.changed.notify_all();
        match result {
            Ok(()) => {
                st.delivered += out.len() as u64;
                Ok(out)
            }
            Err(e) => {
                // A read that does not succeed consumes nothing: what it took goes back in front,
                // in one piece (byte by byte, a large read interrupted took seconds to put back).
                // Where memory is short for that, it is dropped: never served twice.
                if !st.closed {
                    let rest = std::mem::take(&mut st.queue);
                    let mut queue = std::collections::VecDeque::from(out);
                    st.queue = if queue.try_reserve(rest.len()).is_ok() {
                        queue.extend(rest);
                        queue
                    } else {
                        rest
                    };
                }
                Err(e)
            }
        }
    }

    /// Waits for the reply with `tag` to command `code`.
    pub fn reply(&self, code: u8, tag: u8, timeout: Duration) -> Option<Reply> {
        self.reply_with(code, tag, timeout, &mut || false)
    }

    /// As [`Stream::reply`], asking `interrupt` at least once a [`SLICE`] while it waits (`None`
    /// when it asked to stop, or when the stream ended, failed or closed first).
    pub fn reply_with(
        &self,
        code: u8,
        tag: u8,
        timeout: Duration,
        interrupt: &mut dyn FnMut() -> bool,
    ) -> Option<Reply> {
        let deadline = Instant::now().checked_add(timeout);
        let mut waiter = Waiter { deadline, interrupt, asked: Instant::now() };
        let mut st = self.lock();
        st.reply_waiters += 1;
        self.changed.notify_all();
        let found = loop {
            if let Some(i) = st.replies.iter().position(|r| r.code == code && r.tag == tag) {
                break st.replies.remove(i);
            }
            // No reply comes from a transport that ended or failed.
            if st.closed || st.ended || st.error.is_some() {
                break None;
            }
            let (guard, stop) = self.pause(st, &mut waiter);
            st = guard;
            if stop.is_some() {
                break None;
            }
        };
        st.reply_waiters -= 1;
        found
    }

    /// The path's counts, with bytes queued and delivered.
    pub fn stats(&self) -> Stats {
        let st = self.lock();
        Stats { bytes_queued: st.queue.len() as u64, bytes_delivered: st.delivered, ..st.stats }
    }

    /// The last status block from the device.
    pub fn device_status(&self) -> Option<Status> {
        self.lock().status
    }

    /// The failure, if the stream failed.
    pub fn error(&self) -> Option<StreamError> {
        self.lock().error.clone()
    }

    /// Conditioner properties: block shape `(n, m)` and health cutoffs `(rct, apt, window)`.
    pub fn shape(&self) -> Shape {
        let c = self.conditioner.lock().unwrap_or_else(|p| p.into_inner());
        (c.block_shape(), c.cutoffs())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::{BitOrder, Packing, SampleFormat};
    use crate::pipeline::conditioner::{Extraction, GapPolicy};
    use crate::sim::{LinkFaults, NoiseParams, NoiseSource, SimDevice};

    fn sim_stream(faults: LinkFaults, stuck_after: Option<u64>, capacity: usize) -> Arc<Stream> {
        let params = NoiseParams::default();
        let mut source = NoiseSource::new(params, 7).unwrap();
        source.stuck_after = stuck_after;
        let device = SimDevice::new(source, 1024, faults, 8).unwrap();
        let x = Extraction {
            min_entropy: params.min_entropy(),
            alpha: (-20f64).exp2(),
            startup_samples: 1024,
            block_bits: 4096,
            epsilon: (-64f64).exp2(),
        };
        let format = SampleFormat::new(8, Packing::Aligned, BitOrder::MsbFirst, 0).unwrap();
        let c = Conditioner::new(format, Some(x), GapPolicy::Count, None).unwrap();
        let s = Stream::new(c, capacity);
        s.spawn_reader(Box::new(device), 1 << 16);
        s
    }

    #[test]
    fn reads_are_exact_and_backpressure_bounds_the_queue() {
        let s = sim_stream(LinkFaults::default(), None, 100_000);
        let a = s.read(1_000_000, None).unwrap();
        assert_eq!(a.len(), 1_000_000);
        std::thread::sleep(Duration::from_millis(50));
        let stats = s.stats();
        assert!(stats.bytes_queued <= 100_000, "{}", stats.bytes_queued);
        assert_eq!(stats.bytes_delivered, 1_000_000);
        assert!(stats.bytes_out >= 1_000_000);
        s.close();
        s.close();
        assert_eq!(s.read(1, None), Err(ReadError::Closed));
    }

    #[test]
    fn a_reply_arrives_while_the_queue_is_full() {
        use crate::frame::messages::Reply;
        use crate::frame::{encode, frame_type};
        let format = SampleFormat::new(8, Packing::Aligned, BitOrder::MsbFirst, 0).unwrap();
        let s = Stream::new(Conditioner::new(format, None, GapPolicy::Count, None).unwrap(), 1000);
        let mut frames = Vec::new();
        for q in 0..10u32 {
            let payload = crate::frame::messages::Data::payload(500, 0, &[7u8; 500]);
            encode(frame_type::DATA, q, &payload, &mut frames).unwrap();
        }
        let reply = Reply { code: 5, tag: 1, result: 0, data: vec![] };
        encode(frame_type::REPLY, 10, &reply.to_bytes(), &mut frames).unwrap();
        let feeder = Arc::clone(&s);
        let (first, second) = frames.split_at(frames.len() / 2);
        let (first, second) = (first.to_vec(), second.to_vec());
        // The feeder blocks on the full queue after the first half; the reply is in the second.
        let t = std::thread::spawn(move || {
            feeder.feed(&first).unwrap();
            feeder.feed(&second).unwrap();
        });
        assert_eq!(s.reply(5, 1, Duration::from_secs(5)), Some(reply));
        assert_eq!(s.read(5000, None).unwrap().len(), 5000);
        t.join().unwrap();
    }

    #[test]
    fn a_stuck_source_fails_after_delivering_what_was_healthy() {
        let s = sim_stream(LinkFaults::default(), Some(200_000), 1 << 20);
        let mut total = 0usize;
        let err = loop {
            match s.read(4096, Some(Duration::from_secs(10))) {
                Ok(b) => total += b.len(),
                Err(e) => break e,
            }
        };
        let ReadError::Failed(StreamError::Health(f)) = err else { panic!("{err:?}") };
        let (rct, _, _) = s.shape().1.unwrap();
        // From sample 200,000 on the output repeats sample 199,999: the run starts there.
        assert_eq!(f.index, 200_000 + rct - 2);
        let stats = s.stats();
        assert_eq!(stats.bytes_delivered as usize, total);
        assert!(stats.samples_healthy < 200_000);
    }

    fn raw_stream(capacity: usize) -> Arc<Stream> {
        let format = SampleFormat::new(8, Packing::Aligned, BitOrder::MsbFirst, 0).unwrap();
        Stream::new(Conditioner::new(format, None, GapPolicy::Count, None).unwrap(), capacity)
    }

    #[test]
    fn a_link_of_garbage_fails_with_no_valid_frames_without_spinning() {
        /// Endless zero bytes, counting how many were asked for.
        struct Zeros(Arc<std::sync::atomic::AtomicU64>);
        impl Read for Zeros {
            fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
                buf.fill(0);
                self.0.fetch_add(buf.len() as u64, std::sync::atomic::Ordering::Relaxed);
                Ok(buf.len())
            }
        }
        let s = raw_stream(1 << 16);
        s.set_frame_timeout(Some(Duration::from_millis(400)));
        let read = Arc::new(std::sync::atomic::AtomicU64::new(0));
        s.spawn_reader(Box::new(Zeros(Arc::clone(&read))), 1 << 16);
        let started = Instant::now();
        let err = s.read(10, None).unwrap_err();
        let waited = started.elapsed();
        assert_eq!(err, ReadError::Failed(StreamError::NoValidFrames { seconds: 0.4 }));
        assert!(waited >= Duration::from_millis(350) && waited < Duration::from_secs(3), "{waited:?}");
        // Backing off on garbage: far fewer bytes than a busy loop would decode in that time
        // (gigabytes per second).
        let bytes = read.load(std::sync::atomic::Ordering::Relaxed);
        assert!(bytes < 64 << 20, "{bytes} bytes of garbage decoded");
        s.close();
    }

    #[test]
    fn a_reader_that_pauses_with_the_queue_full_does_not_trip_the_frame_watchdog() {
        /// Frames of 100 samples, for ever, as fast as the stream takes them.
        struct Frames(u32);
        impl Read for Frames {
            fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
                let payload = crate::frame::messages::Data::payload(100, 0, &[self.0 as u8; 100]);
                let mut frame = Vec::new();
                crate::frame::encode(crate::frame::frame_type::DATA, self.0, &payload, &mut frame).unwrap();
                self.0 += 1;
                buf[..frame.len()].copy_from_slice(&frame);
                Ok(frame.len())
            }
        }
        let s = raw_stream(1000);
        s.set_frame_timeout(Some(Duration::from_millis(200)));
        s.spawn_reader(Box::new(Frames(0)), 4096);
        assert_eq!(s.read(10, Some(Duration::from_secs(10))).unwrap().len(), 10);
        // The queue fills and the reader thread waits for room, for five frame timeouts.
        std::thread::sleep(Duration::from_millis(1000));
        for _ in 0..20 {
            assert_eq!(s.read(1000, Some(Duration::from_secs(10))).unwrap().len(), 1000);
        }
        assert_eq!(s.error(), None);
        s.close();
    }

    #[test]
    fn waits_answer_the_interrupt_and_consume_nothing() {
        let s = raw_stream(1 << 16);
        s.set_frame_timeout(None);
        let mut frames = Vec::new();
        let bytes: Vec<u8> = (0..100).collect();
        let payload = crate::frame::messages::Data::payload(100, 0, &bytes);
        crate::frame::encode(crate::frame::frame_type::DATA, 0, &payload, &mut frames).unwrap();
        s.feed(&frames).unwrap();
        let started = Instant::now();
        let mut asked = 0;
        let err = s
            .read_with(1000, None, &mut || {
                asked += 1;
                asked == 3
            })
            .unwrap_err();
        assert_eq!(err, ReadError::Interrupted);
        assert!(started.elapsed() < Duration::from_secs(2));
        // The 100 bytes taken before the interrupt are still there, in their order.
        assert_eq!(s.read(100, Some(Duration::ZERO)).unwrap(), bytes);
        assert_eq!(s.reply_with(1, 1, Duration::from_secs(100), &mut || true), None);
        // No reply comes once the transport ended: no wait for the timeout.
        s.end();
        let started = Instant::now();
        assert_eq!(s.reply(1, 1, Duration::MAX), None);
        assert!(started.elapsed() < Duration::from_secs(1));
    }

    #[test]
    fn fed_samples_are_framed_in_order_across_calls() {
        let format = SampleFormat::new(12, Packing::Aligned, BitOrder::MsbFirst, 0).unwrap();
        let s = Stream::new(Conditioner::new(format, None, GapPolicy::Error, None).unwrap(), 1 << 20);
        // 12-bit samples, two little-endian bytes each, fed in pieces that split samples.
        let samples: Vec<u8> = (0..10_000u32).flat_map(|i| ((i * 37) as u16 & 0x0fff).to_le_bytes()).collect();
        let fed: u64 = samples.chunks(999).map(|piece| s.feed_samples_with(piece, &mut || false).unwrap().frames).sum();
        s.end();
        assert_eq!(s.read(samples.len() + 1, None).unwrap(), samples);
        let stats = s.stats();
        assert_eq!((stats.frames, stats.gaps, stats.samples_in), (fed, 0, 10_000));
    }

    #[test]
    fn concurrent_readers_each_get_a_contiguous_run() {
        // Raw samples of a seeded simulator: the same bytes on every run.
        let raw_sim = || {
            let s = raw_stream(1 << 16);
            let source = NoiseSource::new(NoiseParams::default(), 7).unwrap();
            s.spawn_reader(Box::new(SimDevice::new(source, 1024, LinkFaults::default(), 8).unwrap()), 1 << 16);
            s
        };
        let s = raw_sim();
        let reference = {
            let one = raw_sim();
            let r = one.read(8 * 20 * 5000, None).unwrap();
            one.close();
            r
        };
        let chunks: Vec<Vec<u8>> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..8)
                .map(|_| scope.spawn(|| (0..20).map(|_| s.read(5000, None).unwrap()).collect::<Vec<_>>()))
                .collect();
            handles.into_iter().flat_map(|h| h.join().unwrap()).collect()
        });
        s.close();
        let mut got: Vec<&[u8]> = chunks.iter().map(|c| c.as_slice()).collect();
        let mut expect: Vec<&[u8]> = reference.chunks(5000).collect();
        got.sort();
        expect.sort();
        assert_eq!(got, expect);
    }

    #[test]
    fn disconnection_fails_the_stream_after_the_queued_bytes() {
        let s = sim_stream(LinkFaults { disconnect_after: Some(3_000_000), ..LinkFaults::default() }, None, 1 << 24);
        let mut total = 0usize;
        let err = loop {
            match s.read(100_000, Some(Duration::from_secs(10))) {
                Ok(b) => total += b.len(),
                Err(e) => break e,
            }
        };
        assert!(matches!(err, ReadError::Failed(StreamError::Disconnected(_))), "{err:?}");
        assert_eq!(total as u64, s.stats().bytes_out);
    }
}
