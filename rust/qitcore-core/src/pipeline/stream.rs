//! A stream: a conditioner fed from a transport on its own thread (or by whoever calls
//! [`Stream::feed`]), its output in a bounded queue that readers drain. A full queue blocks the
//! feeder (backpressure down to the transport); a failure stops everything after the bytes
//! already queued.

use std::collections::VecDeque;
use std::io::Read;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::conditioner::{Conditioner, Stats, StreamError};
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
}

/// The shared half of a stream.
pub struct Stream {
    conditioner: Mutex<Conditioner>,
    state: Mutex<State>,
    changed: Condvar,
    worker: Mutex<Option<JoinHandle<()>>>,
}

impl Stream {
    /// A stream around `conditioner` holding at most `capacity` output bytes.
    pub fn new(conditioner: Conditioner, capacity: usize) -> Arc<Self> {
        Arc::new(Stream {
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
            }),
            changed: Condvar::new(),
            worker: Mutex::new(None),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Reads `source` on a thread of its own until it ends, fails, or the stream closes.
    pub fn spawn_reader(self: &Arc<Self>, mut source: Box<dyn Read + Send>, chunk: usize) {
        let stream = Arc::clone(self);
        let handle = std::thread::spawn(move || {
            let mut buf = vec![0u8; chunk.max(1)];
            loop {
                if stream.lock().closed {
                    return;
                }
                match source.read(&mut buf) {
                    Ok(0) => return stream.end(),
                    Ok(n) => {
                        if stream.feed(&buf[..n]).is_err() {
                            return;
                        }
                    }
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
        let mut out = Vec::new();
        let (result, stats, status, replies) = {
            let mut c = self.conditioner.lock().unwrap_or_else(|p| p.into_inner());
            let r = c.process(bytes, &mut out);
            (r, c.stats(), c.device_status(), c.take_replies())
        };
        let mut st = self.lock();
        st.stats = stats;
        st.status = status;
        st.replies.extend(replies);
        let mut rest = &out[..];
        while !rest.is_empty() {
            if st.closed {
                return Err(ReadError::Closed);
            }
            let room = if st.reply_waiters > 0 { rest.len() } else { st.capacity.saturating_sub(st.queue.len()) };
            if room == 0 {
                st = self.changed.wait(st).unwrap_or_else(|p| p.into_inner());
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
        Ok(())
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
        let deadline = timeout.map(|t| Instant::now() + t);
        let mut out = Vec::with_capacity(n.min(1 << 24));
        let mut st = self.lock();
        loop {
            if st.closed {
                return Err(ReadError::Closed);
            }
            let take = (n - out.len()).min(st.queue.len());
            if take > 0 {
                out.extend(st.queue.drain(..take));
                self.changed.notify_all();
            }
            if out.len() == n || (!out.is_empty() && (st.ended || st.error.is_some())) {
                st.delivered += out.len() as u64;
                return Ok(out);
            }
            if let Some(e) = &st.error {
                return Err(ReadError::Failed(e.clone()));
            }
            if st.ended {
                return Ok(out);
            }
            st = match deadline {
                None => self.changed.wait(st).unwrap_or_else(|p| p.into_inner()),
                Some(d) => {
                    let left = d.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        // Put back what was taken: a timed-out read consumes nothing.
                        for &b in out.iter().rev() {
                            st.queue.push_front(b);
                        }
                        return Err(ReadError::Timeout);
                    }
                    self.changed.wait_timeout(st, left).unwrap_or_else(|p| p.into_inner()).0
                }
            };
        }
    }

    /// Waits for the reply with `tag` to command `code`.
    pub fn reply(&self, code: u8, tag: u8, timeout: Duration) -> Option<Reply> {
        let deadline = Instant::now() + timeout;
        let mut st = self.lock();
        st.reply_waiters += 1;
        self.changed.notify_all();
        let found = loop {
            if let Some(i) = st.replies.iter().position(|r| r.code == code && r.tag == tag) {
                break st.replies.remove(i);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || st.closed {
                break None;
            }
            st = self.changed.wait_timeout(st, left).unwrap_or_else(|p| p.into_inner()).0;
        };
        st.reply_waiters -= 1;
        found
    }

    /// The path's counts, with bytes queued and delivered.
    pub fn stats(&self) -> (Stats, usize, u64) {
        let st = self.lock();
        (st.stats, st.queue.len(), st.delivered)
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
        let (stats, queued, delivered) = s.stats();
        assert!(queued <= 100_000, "{queued}");
        assert_eq!(delivered, 1_000_000);
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
        let (stats, _, delivered) = s.stats();
        assert_eq!(delivered as usize, total);
        assert!(stats.samples_healthy < 200_000);
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
        assert_eq!(total as u64, s.stats().0.bytes_out);
    }
}
