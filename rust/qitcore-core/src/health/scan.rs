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
    // One OR over the samples (vectorised) decides the usual case; the search runs only on a refusal.
    let all = samples.iter().fold(0u8, |acc, &s| acc | s);
    if u32::from(all).checked_shr(bits).unwrap_or(0) == 0 {
        return Ok(());
    }
    let offset = samples.iter().position(|&s| u32::from(s).checked_shr(bits).unwrap_or(0) != 0).unwrap_or(0);
    Err(Error::argument(
        "data",
        format!("the sample at offset {offset} (value {}) does not fit in {bits} bits per sample", samples[offset]),
    ))
}

/// Runs the continuous tests of `config` over `samples` (one per byte) and reports up to
/// `max_failures` failures, resetting the monitor after each (the start-up test then runs again).
///
/// # Errors
/// As [`Monitor::new`]; [`Error::InvalidArgument`] naming `data` for a sample that does not fit in
/// `config.bits_per_sample` bits (the message gives its offset).
pub fn scan(samples: &[u8], config: Config, max_failures: usize) -> Result<Scan> {
    let mut monitor = Monitor::new(config)?;
    check_width(samples, config.bits_per_sample)?;
    let mut failures = Vec::new();
    let mut rest = samples;
    while !rest.is_empty() && failures.len() < max_failures {
        let before = monitor.counters().samples;
        match monitor.process(rest) {
            Ok(_) => break,
            Err(f) => {
                failures.push(f);
                let consumed = (f.index + 1 - before) as usize;
                rest = &rest[consumed.min(rest.len())..];
                monitor.reset();
            }
        }
    }
    let counters = monitor.counters();
    let (rct_cutoff, apt_cutoff, window) = monitor.cutoffs();
    Ok(Scan {
        samples: counters.samples,
        failures,
        rct_cutoff,
        apt_cutoff,
        window,
        longest_run: counters.longest_run,
        largest_window_count: counters.largest_window_count,
    })
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
