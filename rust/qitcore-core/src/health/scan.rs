//! Every failure of the continuous tests in a capture: the monitor is reset after each failure and
//! goes on, so that a report can say where and why a source fails, not only that it does.

use super::monitor::{Config, Failure, Monitor};
use crate::error::{Error, Result};

/// The failures found in a capture, with the cutoffs they were measured against.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(
    feature = "python",
    pyo3::pyclass(frozen, get_all, eq, module = "qitcore.health", name = "HealthScan"),
    derive(serde::Serialize, serde::Deserialize)
)]
pub struct Scan {
    /// Samples tested.
    pub samples: u64,
    /// The failures in order, at most the limit asked for.
    pub failures: Vec<Failure>,
    /// The Repetition Count Test cutoff.
    pub rct_cutoff: u64,
    /// The Adaptive Proportion Test cutoff.
    pub apt_cutoff: u64,
    /// The Adaptive Proportion Test window, in samples.
    pub window: u64,
    /// The longest run of one value.
    pub longest_run: u64,
    /// The largest count of a window's first value in its window.
    pub largest_window_count: u64,
}

impl Scan {
    /// No test fired.
    pub fn passed(&self) -> bool {
        self.failures.is_empty()
    }
}

/// Refuses samples wider than `bits`: a monitor configured for narrower samples than it is fed
/// would test values the source cannot produce and could never raise the right alarm.
///
/// # Errors
/// [`Error::InvalidArgument`] naming `data`, with the offset and value of the first wide sample.
pub fn check_width(samples: &[u8], bits: u32) -> Result<()> {
    check_width_at(samples, bits, 0)
}

/// [`check_width`] of samples that start `base` samples into a capture (the offset it names).
fn check_width_at(samples: &[u8], bits: u32, base: u64) -> Result<()> {
    // One OR over the samples (vectorised) decides the usual case; the search runs only on a refusal.
    let all = samples.iter().fold(0u8, |acc, &s| acc | s);
    if u32::from(all).checked_shr(bits).unwrap_or(0) == 0 {
        return Ok(());
    }
    let at = samples.iter().position(|&s| u32::from(s).checked_shr(bits).unwrap_or(0) != 0).unwrap_or(0);
    Err(Error::argument(
        "data",
        format!(
            "the sample at offset {} (value {}) does not fit in {bits} bits per sample",
            base + at as u64,
            samples[at]
        ),
    ))
}

/// A scan fed a capture a piece at a time (a file larger than memory, read in chunks): the same
/// failures and counters as [`scan`] of the whole capture, since the monitor carries its runs and
/// windows from one piece to the next.
pub struct Scanner {
    monitor: Monitor,
    failures: Vec<Failure>,
    max_failures: usize,
    fed: u64,
}

impl Scanner {
    /// A scanner of `config` that stops after `max_failures` failures.
    ///
    /// # Errors
    /// As [`Monitor::new`].
    pub fn new(config: Config, max_failures: usize) -> Result<Self> {
        Ok(Scanner { monitor: Monitor::new(config)?, failures: Vec::new(), max_failures, fed: 0 })
    }

    /// Tests the next samples of the capture. Returns whether more are wanted: `false` once
    /// `max_failures` failures are found (the rest of the capture is then not tested).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] naming `data` for a sample that does not fit, with its offset
    /// in the whole capture; the scanner is unchanged and may be fed the rest.
    pub fn feed(&mut self, samples: &[u8]) -> Result<bool> {
        check_width_at(samples, self.monitor.config().bits_per_sample, self.fed)?;
        self.fed += samples.len() as u64;
        let mut rest = samples;
        while !rest.is_empty() && !self.full() {
            let before = self.monitor.counters().samples;
            match self.monitor.process(rest) {
                Ok(_) => break,
                Err(f) => {
                    self.failures.push(f);
                    let consumed = (f.index + 1 - before) as usize;
                    rest = &rest[consumed.min(rest.len())..];
                    self.monitor.reset();
                }
            }
        }
        Ok(!self.full())
    }

    fn full(&self) -> bool {
        self.failures.len() >= self.max_failures
    }

    /// The failures so far and the monitor's counters.
    pub fn report(&self) -> Scan {
        let counters = self.monitor.counters();
        let (rct_cutoff, apt_cutoff, window) = self.monitor.cutoffs();
        Scan {
            samples: counters.samples,
            failures: self.failures.clone(),
            rct_cutoff,
            apt_cutoff,
            window,
            longest_run: counters.longest_run,
            largest_window_count: counters.largest_window_count,
        }
    }
}

/// Runs the continuous tests of `config` over `samples` (one per byte) and reports up to
/// `max_failures` failures, resetting the monitor after each (the start-up test then runs again).
///
/// # Errors
/// As [`Monitor::new`]; [`Error::InvalidArgument`] naming `data` for a sample that does not fit in
/// `config.bits_per_sample` bits (the message gives its offset).
pub fn scan(samples: &[u8], config: Config, max_failures: usize) -> Result<Scan> {
    let mut scanner = Scanner::new(config, max_failures)?;
    scanner.feed(samples)?;
    Ok(scanner.report())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::HealthTest;
    use crate::maths::xoshiro::test_bytes as random_bytes;

    #[test]
    fn every_failure_is_found_and_the_scan_goes_on_after_each() {
        let mut data = random_bytes(20_000, 1);
        for at in [3000, 9000, 15_000] {
            data[at..at + 6].fill(0x33);
        }
        let s = scan(&data, Config::new(8.0, 8), 1000).unwrap();
        let found: Vec<(HealthTest, u64)> = s.failures.iter().map(|f| (f.test, f.index)).collect();
        assert_eq!(
            found,
            [3003, 9003, 15_003].map(|i| (HealthTest::RepetitionCount, i)),
            "each run fires at its fourth sample"
        );
        assert!(!s.passed());
        assert_eq!((s.samples, s.rct_cutoff, s.apt_cutoff, s.window), (20_000, 4, 13, 512));
        assert_eq!(s.longest_run, 4);
    }

    #[test]
    fn a_capture_fed_in_pieces_scans_as_the_whole() {
        // Failures of both tests, some straddling the pieces' boundaries, and every piece size.
        let mut data = random_bytes(30_000, 3);
        for at in [2_998, 9_000, 17_001] {
            data[at..at + 6].fill(0x33);
        }
        // Two values in turn for three windows: the Adaptive Proportion Test fires whatever the
        // window's first sample.
        data[22_000..23_600].iter_mut().enumerate().for_each(|(i, s)| *s = 7 + (i % 2) as u8);
        for limit in [1, 2, 10, 1000] {
            let whole = scan(&data, Config::new(7.0, 8), limit).unwrap();
            // Three runs, then the test fires again each time the start-up after a reset is done.
            assert_eq!(whole.failures.len(), limit.min(45));
            assert!(whole.failures.iter().any(|f| f.test == HealthTest::AdaptiveProportion) || limit < 4);
            for piece in [1, 7, 512, 3_000, 29_999] {
                let mut scanner = Scanner::new(Config::new(7.0, 8), limit).unwrap();
                for chunk in data.chunks(piece) {
                    if !scanner.feed(chunk).unwrap() {
                        break;
                    }
                }
                assert_eq!(scanner.report(), whole, "pieces of {piece}, limit {limit}");
            }
        }
    }

    #[test]
    fn a_wide_sample_in_a_later_piece_is_named_by_its_offset_in_the_capture() {
        let mut scanner = Scanner::new(Config::new(3.0, 4), 10).unwrap();
        assert!(scanner.feed(&[1, 2, 3, 4]).unwrap());
        let err = scanner.feed(&[5, 6, 17]).unwrap_err().to_string();
        assert!(err.contains("offset 6 (value 17)"), "{err}");
        // Refused whole: the scanner is as before and takes the rest.
        assert_eq!(scanner.report().samples, 4);
    }

    #[test]
    fn the_limit_stops_the_scan_early() {
        let stuck = vec![5u8; 10_000];
        let s = scan(&stuck, Config::new(8.0, 8), 3).unwrap();
        assert_eq!(s.failures.len(), 3);
        // Each failure fires at the fourth sample after the reset before it.
        assert_eq!(s.failures.iter().map(|f| f.index).collect::<Vec<_>>(), [3, 7, 11]);
        assert_eq!(s.samples, 12);
    }

    #[test]
    fn a_clean_capture_passes_and_reports_its_extremes() {
        let s = scan(&random_bytes(50_000, 2), Config::new(6.0, 8), 10).unwrap();
        assert!(s.passed());
        assert_eq!(s.samples, 50_000);
        assert!((1..5).contains(&s.longest_run) && s.largest_window_count < s.apt_cutoff, "{s:?}");
    }

    #[test]
    fn samples_too_wide_and_bad_configurations_are_refused() {
        let err = scan(&[1, 0, 2, 1], Config::new(1.0, 1), 10).unwrap_err();
        assert!(matches!(err, Error::InvalidArgument { name: "data", .. }), "{err}");
        assert!(err.to_string().contains("offset 2 (value 2)"), "{err}");
        let err = scan(&[], Config::new(9.0, 8), 10).unwrap_err();
        assert!(matches!(err, Error::InvalidArgument { name: "min_entropy", .. }), "{err}");
    }
}
