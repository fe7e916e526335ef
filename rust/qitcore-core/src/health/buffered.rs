//! A monitor that holds the samples it has been fed until their APT window resolves, for callers
//! that hand over samples and want back only those that passed (the monitor itself only counts).

use super::monitor::{Config, Failure, Monitor, Release};
use super::scan::check_width;
use crate::error::{Error, Result};

/// A [`Monitor`] with a buffer of the samples fed but not yet resolved.
///
/// Use [`Self::feed`] to have the samples kept here, or [`Self::process`] when the caller keeps
/// them. Each refuses to run while the other's unresolved samples are outstanding: their counts
/// would not apply. The outer result of each is that refusal; the inner one is the tests' verdict.
#[derive(Clone, Debug)]
pub struct BufferedMonitor {
    pub(super) monitor: Monitor,
    /// Samples fed but not yet resolved, oldest first.
    pub(super) pending: Vec<u8>,
}

impl BufferedMonitor {
    /// A monitor in the start-up state with nothing held.
    ///
    /// # Errors
    /// As [`Monitor::new`].
    pub fn new(config: Config) -> Result<Self> {
        Ok(BufferedMonitor { monitor: Monitor::new(config)?, pending: Vec::new() })
    }

    /// The monitor (state, cutoffs, counters, configuration).
    pub fn monitor(&self) -> &Monitor {
        &self.monitor
    }

    /// Samples fed but not yet resolved.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Tests `samples` and returns those released by this call, oldest first: start-up samples are
    /// dropped, samples of an incomplete window are kept until it completes. On a [`Failure`]
    /// (now or earlier) every held sample is dropped.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] naming `data` while [`Self::process`] left samples unresolved
    /// (the caller holds them, not this buffer), or for a sample wider than the configured bits
    /// (nothing is tested then).
    pub fn feed(&mut self, samples: &[u8]) -> Result<std::result::Result<Vec<u8>, Failure>> {
        check_width(samples, self.monitor.config().bits_per_sample)?;
        if self.monitor.failure().is_none() && self.monitor.unresolved() != self.pending.len() as u64 {
            return Err(Error::argument(
                "data",
                "feed() cannot follow process() while process() left samples unresolved; use one or the other",
            ));
        }
        let release = match self.monitor.process(samples) {
            Ok(release) => release,
            Err(f) => {
                self.pending.clear();
                return Ok(Err(f));
            }
        };
        // The resolved samples are the held ones followed by the head of `samples`: copy the
        // released ones out once, and keep only the unresolved tail.
        let (discard, emit) = (release.discard as usize, release.emit as usize);
        let resolved = discard + emit;
        let held = self.pending.len();
        let mut out = Vec::with_capacity(emit);
        let from_held = held.saturating_sub(discard).min(emit);
        out.extend_from_slice(&self.pending[discard.min(held)..discard.min(held) + from_held]);
        let start = discard.saturating_sub(held);
        out.extend_from_slice(&samples[start..start + emit - from_held]);
        if resolved >= held {
            self.pending.clear();
            self.pending.extend_from_slice(&samples[resolved - held..]);
        } else {
            self.pending.drain(..resolved);
            self.pending.extend_from_slice(samples);
        }
        Ok(Ok(out))
    }

    /// Tests `samples` without holding them: the caller keeps its own unresolved samples and
    /// applies the [`Release`] to them, or withholds them all on a [`Failure`].
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] naming `data` while [`Self::feed`] holds samples, whose counts
    /// the caller could not apply, or for a sample wider than the configured bits.
    pub fn process(&mut self, samples: &[u8]) -> Result<std::result::Result<Release, Failure>> {
        check_width(samples, self.monitor.config().bits_per_sample)?;
        if !self.pending.is_empty() {
            return Err(Error::argument(
                "data",
                "process() cannot follow feed() while feed() holds samples; use one or the other",
            ));
        }
        Ok(self.monitor.process(samples))
    }

    /// Leaves the failed state and drops every held sample; the next samples go through the
    /// start-up test again.
    pub fn reset(&mut self) {
        self.monitor.reset();
        self.pending.clear();
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::health::{HealthTest, State};
    use crate::maths::xoshiro::test_bytes as random_bytes;

    #[test]
    fn samples_are_held_until_their_window_passes_then_released_in_order() {
        let mut m = BufferedMonitor::new(Config::new(7.0, 8)).unwrap();
        let data = random_bytes(3000, 1);
        // Start-up: two windows of 512 dropped; three more released; 3000 − 2560 held.
        let out = m.feed(&data).unwrap().unwrap();
        assert_eq!(out, data[1024..2560]);
        assert_eq!(m.pending(), 440);
        // 72 more complete the sixth window: the held 440 then the 72 come out.
        let more = random_bytes(100, 2);
        let out = m.feed(&more).unwrap().unwrap();
        assert_eq!(out[..440], data[2560..]);
        assert_eq!(out[440..], more[..72]);
        assert_eq!(m.pending(), 28);
    }

    #[test]
    fn a_failure_drops_every_held_sample_until_reset() {
        let mut m = BufferedMonitor::new(Config::new(8.0, 8)).unwrap();
        let mut data = random_bytes(3000, 3);
        data[2800..2804].fill(7);
        let f = m.feed(&data).unwrap().unwrap_err();
        assert_eq!((f.test, f.index), (HealthTest::RepetitionCount, 2803));
        assert_eq!((m.pending(), m.monitor().state()), (0, State::Failed));
        assert_eq!(m.feed(&random_bytes(10, 4)), Ok(Err(f)));
        m.reset();
        assert_eq!(m.monitor().state(), State::StartUp);
        assert_eq!(m.feed(&random_bytes(1536, 5)).unwrap().unwrap().len(), 512);
    }

    #[test]
    fn feed_and_process_refuse_each_others_outstanding_samples() {
        let mut m = BufferedMonitor::new(Config::new(7.0, 8)).unwrap();
        let data = random_bytes(1500, 6);
        // process() leaves 488 samples with the caller: feed() would not know them.
        assert_eq!(m.process(&data[..1000]), Ok(Ok(Release { discard: 512, emit: 0 })));
        let err = m.feed(&data).unwrap_err();
        assert!(matches!(err, Error::InvalidArgument { name: "data", .. }), "{err}");
        // Once they resolve, feed() may take over; then process() refuses while it holds samples.
        assert_eq!(m.process(&data[..24]), Ok(Ok(Release { discard: 512, emit: 0 })));
        assert!(m.feed(&data[..100]).unwrap().unwrap().is_empty());
        let err = m.process(&data).unwrap_err();
        assert!(matches!(err, Error::InvalidArgument { name: "data", .. }), "{err}");
        m.reset();
        assert!(m.process(&data).is_ok());
    }

    proptest! {
        /// Whatever the chunking, the samples released are exactly those a single call releases:
        /// the tail of the resolved windows after the start-up ones.
        #[test]
        fn feed_releases_the_same_samples_under_any_chunking(
            seed in any::<u64>(),
            len in 1usize..5000,
            cuts in prop::collection::vec(1usize..900, 1..16),
        ) {
            let data = random_bytes(len, seed);
            let config = Config { startup_samples: 512, ..Config::new(6.0, 8) };
            let mut whole = BufferedMonitor::new(config).unwrap();
            let expect = whole.feed(&data).unwrap().unwrap();
            let mut chunked = BufferedMonitor::new(config).unwrap();
            let (mut got, mut rest) = (Vec::new(), &data[..]);
            for &cut in cuts.iter().cycle() {
                if rest.is_empty() {
                    break;
                }
                let (chunk, tail) = rest.split_at(cut.min(rest.len()));
                got.extend(chunked.feed(chunk).unwrap().unwrap());
                rest = tail;
            }
            let resolved = len - len % 512;
            prop_assert_eq!(&expect[..], &data[512.min(resolved)..resolved]);
            prop_assert_eq!(got, expect);
            prop_assert_eq!(chunked.pending(), len - resolved);
        }
    }

    #[test]
    fn samples_wider_than_the_configured_bits_are_refused_untested() {
        for bits in [1, 4, 7] {
            let mut m = BufferedMonitor::new(Config::new(0.5, bits)).unwrap();
            let mask = (1u8 << bits) - 1;
            let mut data: Vec<u8> = (0..600u32).map(|i| i as u8 & mask).collect();
            data[321] = 1 << bits;
            let err = m.feed(&data).unwrap_err();
            assert!(err.to_string().contains("offset 321"), "{err}");
            assert!(m.process(&data).is_err());
            assert_eq!(m.monitor.counters().samples, 0, "nothing was tested");
            data[321] = mask;
            assert!(m.feed(&data).unwrap().is_ok());
        }
    }
}
