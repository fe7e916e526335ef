//! The SP 800-90B continuous health tests (§4.4) as a streaming monitor: the Repetition Count
//! Test and the Adaptive Proportion Test, a start-up test before any output (§4.3), and a state
//! machine in which a failure withholds every sample from the failing window on until an explicit
//! reset reruns the start-up test.
//!
//! Samples are resolved a whole APT window at a time, once the window has passed: a failure
//! anywhere in a window must not let its earlier samples out. The start-up samples are tested and
//! discarded; later ones are released.

use super::cutoffs::{apt_cutoff, check, check_apt, rct_cutoff, AptFormula};
use crate::error::Result;

/// The health tests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "python", derive(serde::Serialize, serde::Deserialize))]
pub enum HealthTest {
    /// Repetition Count Test (§4.4.1).
    RepetitionCount,
    /// Adaptive Proportion Test (§4.4.2).
    AdaptiveProportion,
}

impl HealthTest {
    /// The test's name.
    pub fn name(self) -> &'static str {
        match self {
            HealthTest::RepetitionCount => "Repetition Count Test",
            HealthTest::AdaptiveProportion => "Adaptive Proportion Test",
        }
    }
}

/// Where and why a health test failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(
    feature = "python",
    pyo3::pyclass(frozen, get_all, eq, module = "qitcore.health", name = "ScanFailure"),
    derive(serde::Serialize, serde::Deserialize)
)]
pub struct Failure {
    /// The test that fired.
    pub test: HealthTest,
    /// Index of the sample at which it fired (counting every sample fed since construction).
    pub index: u64,
    /// The sample value repeated (RCT) or counted (APT).
    pub value: u8,
    /// The run length (RCT) or the count in the window (APT) that reached the cutoff.
    pub count: u64,
    /// The cutoff.
    pub cutoff: u64,
}

/// The monitor's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// Testing the first samples; nothing is released yet.
    StartUp,
    /// Samples are released as their windows pass.
    Healthy,
    /// A test fired; nothing is released until [`Monitor::reset`].
    Failed,
}

impl State {
    /// `"startup"`, `"healthy"` or `"failed"`.
    pub fn name(self) -> &'static str {
        match self {
            State::StartUp => "startup",
            State::Healthy => "healthy",
            State::Failed => "failed",
        }
    }
}

/// Configuration of a monitor.
#[derive(Clone, Copy, Debug)]
pub struct Config {
    /// Claimed min-entropy per sample (bits).
    pub min_entropy: f64,
    /// Bits per sample (1 to 8).
    pub bits_per_sample: u32,
    /// False-positive probability of each test.
    pub alpha: f64,
    /// Samples tested before any output (rounded up to whole APT windows).
    pub startup_samples: u64,
    /// APT cutoff formula.
    pub apt_formula: AptFormula,
}

impl Config {
    /// α = 2^−20, the largest SP 800-90B suggests (2^−20 to 2^−40).
    pub const DEFAULT_ALPHA: f64 = 1.0 / (1u64 << 20) as f64;
    /// Samples of the start-up test: SP 800-90B §4.3 asks for at least 1024.
    pub const DEFAULT_STARTUP_SAMPLES: u64 = 1024;

    /// SP 800-90B's defaults: [`Self::DEFAULT_ALPHA`], [`Self::DEFAULT_STARTUP_SAMPLES`], the
    /// standard APT formula.
    pub fn new(min_entropy: f64, bits_per_sample: u32) -> Self {
        Config {
            min_entropy,
            bits_per_sample,
            alpha: Self::DEFAULT_ALPHA,
            startup_samples: Self::DEFAULT_STARTUP_SAMPLES,
            apt_formula: AptFormula::Standard,
        }
    }

    /// The APT window: 1024 samples for binary sources, 512 otherwise.
    pub fn window(&self) -> u64 {
        if self.bits_per_sample == 1 {
            1024
        } else {
            512
        }
    }
}

/// Counters for reports and statistics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(
    feature = "python",
    pyo3::pyclass(frozen, get_all, eq, module = "qitcore.health", name = "HealthCounters"),
    derive(serde::Serialize, serde::Deserialize)
)]
pub struct Counters {
    /// Samples fed.
    pub samples: u64,
    /// Samples released.
    pub released: u64,
    /// APT windows completed.
    pub windows: u64,
    /// Longest run seen by the RCT.
    pub longest_run: u64,
    /// Largest count seen in an APT window.
    pub largest_window_count: u64,
    /// Failures since construction.
    pub failures: u64,
}

/// A streaming health monitor. Its fields are visible to [`super::state`], which exports and
/// imports them (pickling).
#[derive(Clone, Debug)]
pub struct Monitor {
    pub(super) config: Config,
    pub(super) rct_cutoff: u64,
    pub(super) apt_cutoff: u64,
    pub(super) window: u64,
    pub(super) state: State,
    /// Samples of the start-up test still to pass (whole windows).
    pub(super) startup_left: u64,
    pub(super) last: u8,
    pub(super) run: u64,
    pub(super) window_value: u8,
    pub(super) window_count: u64,
    pub(super) window_pos: u64,
    /// Every sample before this index has been resolved (discarded or released).
    pub(super) resolved_upto: u64,
    /// Index of the first sample of the current window.
    pub(super) window_start: u64,
    pub(super) failure: Option<Failure>,
    pub(super) counters: Counters,
}

impl Monitor {
    /// A monitor in the start-up state.
    ///
    /// # Errors
    /// [`crate::Error::InvalidArgument`] naming `min_entropy`, `bits_per_sample` or `alpha`.
    pub fn new(config: Config) -> Result<Self> {
        check(config.min_entropy, config.bits_per_sample, config.alpha)?;
        let window = config.window();
        let apt = apt_cutoff(config.min_entropy, config.alpha, window, config.apt_formula);
        check_apt(config.min_entropy, config.alpha, apt, window)?;
        let mut m = Monitor {
            config,
            rct_cutoff: rct_cutoff(config.min_entropy, config.alpha),
            apt_cutoff: apt,
            window,
            state: State::StartUp,
            startup_left: 0,
            last: 0,
            run: 0,
            window_value: 0,
            window_count: 0,
            window_pos: 0,
            resolved_upto: 0,
            window_start: 0,
            failure: None,
            counters: Counters::default(),
        };
        m.restart();
        Ok(m)
    }

    fn restart(&mut self) {
        self.state = State::StartUp;
        self.startup_left = startup_total(&self.config).unwrap_or(u64::MAX / self.window * self.window);
        self.run = 0;
        self.window_pos = 0;
        self.window_count = 0;
        self.window_start = self.counters.samples;
        self.resolved_upto = self.counters.samples;
        self.failure = None;
    }

    /// Leaves the failed state: the next samples go through the start-up test again.
    pub fn reset(&mut self) {
        self.restart();
    }

    /// The current state.
    pub fn state(&self) -> State {
        self.state
    }

    /// The failure that put the monitor in the failed state.
    pub fn failure(&self) -> Option<Failure> {
        self.failure
    }

    /// `(RCT cutoff, APT cutoff, APT window)`.
    pub fn cutoffs(&self) -> (u64, u64, u64) {
        (self.rct_cutoff, self.apt_cutoff, self.window)
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Counters since construction.
    pub fn counters(&self) -> Counters {
        self.counters
    }

    /// Samples fed but not yet resolved (dropped or released): those of the current window.
    pub fn unresolved(&self) -> u64 {
        self.counters.samples - self.resolved_upto
    }

    /// Tests `samples`, fed in order after all earlier ones. Of the samples fed but not yet
    /// resolved (oldest first), the first `discard` are dropped (start-up test) and the next `emit`
    /// pass; the rest wait for their window to complete.
    ///
    /// # Errors
    /// The [`Failure`] when a test fires during this call, or the earlier one while failed. Every
    /// unresolved sample, and the rest of this call's samples, are then withheld for good.
    pub fn process(&mut self, samples: &[u8]) -> std::result::Result<Release, Failure> {
        if let Some(f) = self.failure {
            return Err(f);
        }
        let mut release = Release::default();
        let (rct_cutoff, apt_cutoff, window) = (self.rct_cutoff, self.apt_cutoff, self.window);
        let mut index = self.counters.samples;
        let mut rest = samples;
        // Whole windows' worth of work at a time, with the state in locals (registers).
        while !rest.is_empty() {
            let take = rest.len().min((window - self.window_pos) as usize);
            let (chunk, tail) = rest.split_at(take);
            let (mut last, mut run, mut longest) = (self.last, self.run, self.counters.longest_run);
            let (mut value, mut count) = (self.window_value, self.window_count);
            if self.window_pos == 0 {
                // The window's first sample is the value the APT counts.
                value = chunk[0];
                count = 0;
            }
            let mut i = 0usize;
            while i < chunk.len() {
                // Fast path: 64 samples compared at once, taken whole when neither test fires in
                // them (the sample-by-sample loop below then finds where one does).
                if let Some((repeats, hits)) = wide::compare(chunk, i, last, value) {
                    // Before the first sample there is no run to extend.
                    let repeats = if run == 0 { repeats & !1 } else { repeats };
                    if count + hits < apt_cutoff {
                        if let Some((current, completed)) = runs_of(repeats, run, rct_cutoff) {
                            longest = longest.max(completed);
                            run = current;
                            last = chunk[i + 63];
                            count += hits;
                            i += 64;
                            continue;
                        }
                    }
                }
                let x = chunk[i];
                // Repetition Count Test: a run of `rct_cutoff` identical samples fails.
                if x == last && run > 0 {
                    run += 1;
                    if run >= rct_cutoff {
                        // The state as of this sample, for the failure's counters.
                        (self.last, self.run, self.counters.longest_run) = (last, run, longest);
                        self.window_count = count;
                        return Err(self.fail(HealthTest::RepetitionCount, index + i as u64, x, run, rct_cutoff));
                    }
                } else {
                    longest = longest.max(run);
                    last = x;
                    run = 1;
                }
                // Adaptive Proportion Test: the window's first sample may not recur `apt_cutoff` times.
                count += u64::from(x == value);
                if count >= apt_cutoff {
                    (self.last, self.run, self.counters.longest_run) = (last, run, longest);
                    self.window_count = count;
                    return Err(self.fail(HealthTest::AdaptiveProportion, index + i as u64, x, count, apt_cutoff));
                }
                i += 1;
            }
            (self.last, self.run, self.counters.longest_run) = (last, run, longest);
            (self.window_value, self.window_count) = (value, count);
            self.window_pos += take as u64;
            index += take as u64;
            rest = tail;
            if self.window_pos == window {
                self.counters.samples = index;
                self.complete_window(index, &mut release);
            }
        }
        self.counters.samples = index;
        Ok(release)
    }

    #[cold]
    fn complete_window(&mut self, end: u64, release: &mut Release) {
        self.window_pos = 0;
        self.counters.windows += 1;
        self.counters.largest_window_count = self.counters.largest_window_count.max(self.window_count);
        let resolved = end - self.resolved_upto;
        self.resolved_upto = end;
        if self.state == State::StartUp {
            release.discard += resolved;
            self.startup_left -= self.window;
            if self.startup_left == 0 {
                self.state = State::Healthy;
            }
        } else {
            release.emit += resolved;
            self.counters.released += resolved;
        }
    }

    #[cold]
    fn fail(&mut self, test: HealthTest, index: u64, value: u8, count: u64, cutoff: u64) -> Failure {
        let f = Failure { test, index, value, count, cutoff };
        self.state = State::Failed;
        self.failure = Some(f);
        self.counters.failures += 1;
        self.counters.samples = index + 1;
        self.counters.longest_run = self.counters.longest_run.max(self.run);
        self.counters.largest_window_count = self.counters.largest_window_count.max(self.window_count);
        f
    }
}

/// The start-up test's length: `startup_samples` rounded up to whole APT windows, or `None` when
/// that overflows.
pub(super) fn startup_total(config: &Config) -> Option<u64> {
    let window = config.window();
    config.startup_samples.max(1).div_ceil(window).checked_mul(window)
}

/// What a call to [`Monitor::process`] resolved, counted from the oldest unresolved sample.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Release {
    /// Samples to drop (tested during start-up).
    pub discard: u64,
    /// Samples that passed, to be released after the discarded ones.
    pub emit: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::self_test::self_test;
    use crate::maths::xoshiro::test_bytes as random_bytes;

    #[test]
    fn startup_windows_are_discarded_then_windows_released() {
        let mut m = Monitor::new(Config::new(7.0, 8)).unwrap();
        assert_eq!(m.cutoffs(), (4, 18, 512));
        let data = random_bytes(5000, 1);
        // Nine full windows: two of start-up (1024 samples), seven released; 5000 − 4608 wait.
        let r = m.process(&data).unwrap();
        assert_eq!(r, Release { discard: 1024, emit: 3584 });
        assert_eq!(m.state(), State::Healthy);
        // 392 + 120 complete the tenth window.
        let r = m.process(&data[..120]).unwrap();
        assert_eq!(r, Release { discard: 0, emit: 512 });
    }

    #[test]
    fn a_failure_withholds_everything_until_reset() {
        let mut m = Monitor::new(Config::new(8.0, 8)).unwrap();
        let mut data = random_bytes(3000, 2);
        data[2000..2004].fill(0x5A);
        let f = m.process(&data).unwrap_err();
        assert_eq!(f, Failure { test: HealthTest::RepetitionCount, index: 2003, value: 0x5A, count: 4, cutoff: 4 });
        assert_eq!(m.state(), State::Failed);
        assert_eq!(m.process(&random_bytes(10, 3)), Err(f));
        m.reset();
        assert_eq!(m.state(), State::StartUp);
        let r = m.process(&random_bytes(2048, 4)).unwrap();
        assert_eq!(r, Release { discard: 1024, emit: 1024 });
    }

    #[test]
    fn the_adaptive_proportion_test_names_the_window_value() {
        let mut m = Monitor::new(Config::new(1.0, 1)).unwrap();
        // Binary, H = 1: window 1024, APT cutoff 589. Three zeros per one.
        let data: Vec<u8> = (0..4096).map(|i| u8::from(i % 4 == 3)).collect();
        let f = m.process(&data).unwrap_err();
        assert_eq!((f.test, f.value, f.count, f.cutoff), (HealthTest::AdaptiveProportion, 0, 589, 589));
        // The 589th zero of the first window is sample 784 (three zeros in every four).
        assert_eq!(f.index, 784);
    }

    #[test]
    fn good_sources_pass_at_their_claimed_entropy() {
        let data = random_bytes(1 << 20, 5);
        let mut m = Monitor::new(Config::new(7.5, 8)).unwrap();
        assert!(m.process(&data).is_ok());
        let bits: Vec<u8> = data.iter().map(|b| b & 1).collect();
        let mut m = Monitor::new(Config::new(0.9, 1)).unwrap();
        assert!(m.process(&bits).is_ok());
    }

    #[test]
    fn self_test_fires_both_tests_for_every_claim() {
        for bits in 1..=8u32 {
            for h in [0.2, 0.5, 1.0, f64::from(bits) / 2.0, f64::from(bits)] {
                if h > f64::from(bits) {
                    continue;
                }
                let st = self_test(Config::new(h, bits)).unwrap();
                assert!(st.passed(), "bits {bits}, H {h}: {st:?}");
            }
        }
    }

    /// SP 800-90B §4.4 sample by sample: the index and test of the first failure, if any.
    fn naive_first_failure(data: &[u8], rct: u64, apt: u64, window: usize) -> Option<(u64, HealthTest)> {
        let mut run = 0u64;
        for (i, &x) in data.iter().enumerate() {
            run = if i > 0 && data[i - 1] == x { run + 1 } else { 1 };
            if run >= rct {
                return Some((i as u64, HealthTest::RepetitionCount));
            }
            let w = i - i % window;
            let count = data[w..=i].iter().filter(|&&y| y == data[w]).count() as u64;
            if count >= apt {
                return Some((i as u64, HealthTest::AdaptiveProportion));
            }
        }
        None
    }

    proptest::proptest! {
        #[test]
        fn matches_the_definition_under_any_chunking(
            data in proptest::collection::vec(0u8..3, 1..6000),
            cuts in proptest::collection::vec(1usize..700, 1..20),
            h in 0.3f64..1.6,
        ) {
            let config = Config { startup_samples: 512, ..Config::new(h, 2) };
            let mut m = Monitor::new(config).unwrap();
            let (rct, apt, window) = m.cutoffs();
            let expect = naive_first_failure(&data, rct, apt, window as usize);
            let (mut rest, mut got, mut resolved) = (&data[..], None, 0u64);
            let mut fed = 0u64;
            for &cut in cuts.iter().cycle() {
                if rest.is_empty() {
                    break;
                }
                let (chunk, tail) = rest.split_at(cut.min(rest.len()));
                match m.process(chunk) {
                    Ok(r) => resolved += r.discard + r.emit,
                    Err(f) => {
                        got = Some((f.index, f.test));
                        break;
                    }
                }
                fed += chunk.len() as u64;
                rest = tail;
            }
            proptest::prop_assert_eq!(got, expect);
            if expect.is_none() {
                proptest::prop_assert_eq!(m.counters().longest_run, naive_longest_ended(&data));
            }
            // Windows resolve when they are complete, up to the failure; a call that fails
            // resolves nothing (the caller withholds every sample it holds), so windows that
            // completed within the failing call stay unresolved.
            let limit = expect.map_or(data.len() as u64, |(i, _)| (i - i % window).min(fed));
            proptest::prop_assert_eq!(resolved, limit - limit % window);
        }
    }

    proptest::proptest! {
        #[test]
        fn wide_and_narrow_paths_agree_on_byte_samples(
            seed in proptest::prelude::any::<u64>(),
            len in 100usize..9000,
            run_at in 0usize..9000,
            run_len in 1usize..12,
            cuts in proptest::collection::vec(1usize..900, 1..12),
            h in 3.0f64..8.0,
        ) {
            let mut data = random_bytes(len, seed);
            let at = run_at % len;
            let end = (at + run_len).min(len);
            let v = data[at];
            data[at..end].fill(v);
            let mut m = Monitor::new(Config::new(h, 8)).unwrap();
            let (rct, apt, window) = m.cutoffs();
            let expect = naive_first_failure(&data, rct, apt, window as usize);
            let (mut rest, mut got) = (&data[..], None);
            for &cut in cuts.iter().cycle() {
                if rest.is_empty() {
                    break;
                }
                let (chunk, tail) = rest.split_at(cut.min(rest.len()));
                if let Err(f) = m.process(chunk) {
                    got = Some((f.index, f.test));
                    break;
                }
                rest = tail;
            }
            proptest::prop_assert_eq!(got, expect);
            if expect.is_none() {
                proptest::prop_assert_eq!(m.counters().longest_run, naive_longest_ended(&data));
            }
        }

        /// The 64-sample run rule against stepping through the samples one by one.
        #[test]
        fn runs_of_64_samples_step_by_step(
            repeats in proptest::prelude::any::<u64>(),
            sparse in proptest::prelude::any::<u64>(),
            dense in 0u32..3,
            tail in 0u32..64,
            run in 1u64..90,
            cutoff in 2u64..140,
        ) {
            // Mostly repeats, mostly starts, or even; then the last `tail` samples repeats (the
            // run at the end often the longest).
            let repeats = match dense {
                0 => repeats & sparse,
                1 => repeats | sparse,
                _ => repeats,
            } | (!0u64).checked_shl(64 - tail).unwrap_or(0);
            let (mut current, mut longest, mut fired) = (run, 0u64, run >= cutoff);
            for j in 0..64 {
                if repeats >> j & 1 == 1 {
                    current += 1;
                } else {
                    longest = longest.max(current);
                    current = 1;
                }
                fired |= current >= cutoff;
            }
            let expect = (!fired).then_some((current, longest));
            proptest::prop_assert_eq!(runs_of(repeats, run, cutoff), expect);
        }
    }

    /// Feeds `data` in pieces of `cuts` (cycled): the failure, if any, and the counters then.
    fn fed_in_pieces(m: &mut Monitor, data: &[u8], cuts: &[usize]) -> (Option<Failure>, Counters) {
        let mut rest = data;
        for &cut in cuts.iter().cycle() {
            if rest.is_empty() {
                break;
            }
            let (piece, tail) = rest.split_at(cut.min(rest.len()));
            if let Err(f) = m.process(piece) {
                return (Some(f), m.counters());
            }
            rest = tail;
        }
        (None, m.counters())
    }

    proptest::proptest! {
        /// Runs of up to a hundred equal samples (crossing and filling 64-sample blocks, RCT
        /// cutoffs above and below 64) of 1-, 2- and 8-bit samples, fed in pieces, against the
        /// same data a sample at a time (which never takes the 64-sample path): the same failure
        /// and the same counters, with or without one; and again after a reset.
        #[test]
        fn blocks_and_single_samples_agree(
            runs in proptest::collection::vec((0u8..4, 1usize..100), 1..200),
            cuts in proptest::collection::vec(1usize..1500, 1..10),
            bits in proptest::prop_oneof![proptest::strategy::Just(1u32), proptest::strategy::Just(2), proptest::strategy::Just(8)],
            h in 0.15f64..1.0,
        ) {
            let mask = ((1u16 << bits) - 1) as u8;
            let data: Vec<u8> = runs.iter().flat_map(|&(v, len)| std::iter::repeat_n(v & mask, len)).collect();
            let config = Config { startup_samples: 512, ..Config::new(h, bits) };
            let (mut pieces, mut single) = (Monitor::new(config).unwrap(), Monitor::new(config).unwrap());
            for _ in 0..2 {
                let expect = fed_in_pieces(&mut single, &data, &[1]);
                proptest::prop_assert_eq!(fed_in_pieces(&mut pieces, &data, &cuts), expect);
                pieces.reset();
                single.reset();
            }
        }
    }

    /// After an APT failure the longest run counts the runs that ended in the failing call
    /// (the counters once read the state as the call began).
    #[test]
    fn a_failure_reports_the_runs_of_its_own_call() {
        let config = Config { startup_samples: 512, ..Config::new(1.0, 1) };
        let data: Vec<u8> = (0..1050).map(|i| u8::from(i % 21 == 20)).collect();
        let mut m = Monitor::new(config).unwrap();
        let f = m.process(&data).unwrap_err();
        assert_eq!(f.test, HealthTest::AdaptiveProportion);
        assert_eq!(m.counters().longest_run, 20);
    }

    /// The longest run of equal samples that ended (a different sample followed it).
    fn naive_longest_ended(data: &[u8]) -> u64 {
        let (mut run, mut longest) = (0u64, 0u64);
        for (i, &x) in data.iter().enumerate() {
            if i > 0 && data[i - 1] == x {
                run += 1;
            } else {
                longest = longest.max(run);
                run = 1;
            }
        }
        longest
    }

    #[test]
    fn bad_configurations_are_refused() {
        assert!(Monitor::new(Config::new(0.0, 8)).is_err());
        assert!(Monitor::new(Config::new(9.0, 8)).is_err());
        assert!(Monitor::new(Config { alpha: 1.0, ..Config::new(1.0, 8) }).is_err());
    }
}

/// The RCT over 64 samples from their repeat mask (bit `j`: sample `j` equals the one before it)
/// and the run they continue (`run` samples long): the run at their end and the longest run that
/// ended among them (0 when none did), or `None` when some run reaches `cutoff`.
#[inline(always)]
fn runs_of(repeats: u64, run: u64, cutoff: u64) -> Option<(u64, u64)> {
    let starts = !repeats;
    if starts == 0 {
        let current = run + 64;
        return (current < cutoff).then_some((current, 0));
    }
    let (first, last) = (u64::from(starts.trailing_zeros()), 63 - u64::from(starts.leading_zeros()));
    // The run before the first start ends there; the one from the last start goes on.
    let (head, current) = (run + first, 64 - last);
    // Runs from one start to the next: each a start and the repeats after it.
    let between = if last > first { repeats & ((1u64 << last) - 1) & (!1u64 << first) } else { 0 };
    let mut longest_between = u64::from(last > first);
    let mut ones = between;
    while ones != 0 {
        ones &= ones << 1;
        longest_between += 1;
    }
    (head < cutoff && longest_between < cutoff && current < cutoff).then_some((current, head.max(longest_between)))
}

/// Sixty-four samples at a time with AVX-512BW, or AVX2.
mod wide {
    #[cfg(target_arch = "x86_64")]
    use crate::cpu::{self, Features};

    /// For `chunk[i .. i + 64]`: which samples equal their predecessor (`chunk[i − 1]`, or
    /// `last` for `i = 0`), bit `j` for sample `i + j`, and how many equal `value`; `None` when
    /// fewer than 64 samples are left or the CPU has neither AVX-512BW nor AVX2.
    #[inline]
    pub(super) fn compare(chunk: &[u8], i: usize, last: u8, value: u8) -> Option<(u64, u64)> {
        if i + 64 > chunk.len() {
            return None;
        }
        #[cfg(target_arch = "x86_64")]
        {
            if cpu::has(Features::AVX512F | Features::AVX512BW) {
                // SAFETY: AVX-512BW was detected; i + 64 <= chunk.len().
                return Some(unsafe { x86::compare(chunk, i, last, value) });
            }
            if cpu::has(Features::AVX2 | Features::POPCNT) {
                // SAFETY: AVX2 and POPCNT were detected; i + 64 <= chunk.len().
                return Some(unsafe { x86::compare_avx2(chunk, i, last, value) });
            }
        }
        let _ = (chunk, last, value);
        None
    }

    /// [`compare`] sample by sample: the reference for the vector paths.
    #[cfg(test)]
    fn reference(chunk: &[u8], i: usize, last: u8, value: u8) -> (u64, u64) {
        let window = &chunk[i..i + 64];
        let before = if i == 0 { last } else { chunk[i - 1] };
        let repeats = std::iter::once(&before).chain(window).zip(window).enumerate();
        let mask = repeats.filter(|(_, (a, b))| a == b).fold(0u64, |m, (j, _)| m | 1 << j);
        (mask, window.iter().filter(|&&x| x == value).count() as u64)
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        /// Every vector path this CPU runs against the reference, at the chunk's start (where
        /// `last` is the predecessor) and inside it, with and without a repeat at each place.
        #[test]
        #[cfg(target_arch = "x86_64")]
        fn vector_paths_count_as_the_reference() {
            type Count = unsafe fn(&[u8], usize, u8, u8) -> (u64, u64);
            let paths: [(Features, Count); 2] = [
                (Features::AVX512F | Features::AVX512BW, x86::compare),
                (Features::AVX2 | Features::POPCNT, x86::compare_avx2),
            ];
            let mut g = crate::maths::xoshiro::Xoshiro256::from_seed(3);
            // Neighbours always differ: each byte a nonzero step from the one before.
            let mut chunk = vec![0u8; 200];
            for k in 1..chunk.len() {
                chunk[k] = chunk[k - 1].wrapping_add(1 + (g.next_u64() % 3) as u8);
            }
            let mut tried = 0;
            for (features, count) in paths {
                if !cpu::has(features) {
                    continue;
                }
                tried += 1;
                for i in [0usize, 1, 31, 32, 63, 100, 136] {
                    for repeat in [None, Some(0usize), Some(31), Some(32), Some(63)] {
                        let mut c = chunk.clone();
                        let mut last = c[0].wrapping_sub(1);
                        match repeat {
                            Some(0) if i == 0 => last = c[0],
                            Some(r) => c[i + r] = if i + r == 0 { c[0] } else { c[i + r - 1] },
                            None => {}
                        }
                        for value in [c[i], c[i + 40], 255] {
                            // SAFETY: the CPU runs the path; i + 64 <= c.len().
                            let got = unsafe { count(&c, i, last, value) };
                            assert_eq!(got, reference(&c, i, last, value), "path {tried}, i {i}, repeat {repeat:?}");
                        }
                    }
                }
            }
            // The AVX-512 path needs AVX-512BW; the AVX2 one runs on any x86-64 from 2013 on.
            assert!(tried >= usize::from(cpu::has(Features::AVX2 | Features::POPCNT)));
        }
    }

    #[cfg(target_arch = "x86_64")]
    mod x86 {
        use std::arch::x86_64::*;

        /// [`compare`] with two 32-byte halves.
        #[target_feature(enable = "avx2,popcnt")]
        pub(super) unsafe fn compare_avx2(chunk: &[u8], i: usize, last: u8, value: u8) -> (u64, u64) {
            // SAFETY: the caller guarantees i + 64 <= chunk.len(), and for i >= 1 that
            // chunk[i − 1 .. i + 63] is in bounds; `before` is 64 bytes.
            let (v0, v1, q0, q1) = unsafe {
                let p = chunk.as_ptr().add(i);
                let (v0, v1) = (_mm256_loadu_si256(p.cast()), _mm256_loadu_si256(p.add(32).cast()));
                // The predecessors: chunk[i − 1 .. i + 63], with `last` before the first.
                if i == 0 {
                    let mut before = [0u8; 64];
                    before[0] = last;
                    before[1..].copy_from_slice(&chunk[..63]);
                    (
                        v0,
                        v1,
                        _mm256_loadu_si256(before.as_ptr().cast()),
                        _mm256_loadu_si256(before[32..].as_ptr().cast()),
                    )
                } else {
                    (v0, v1, _mm256_loadu_si256(p.sub(1).cast()), _mm256_loadu_si256(p.add(31).cast()))
                }
            };
            let mask = |low: i32, high: i32| u64::from(low as u32) | u64::from(high as u32) << 32;
            let repeats =
                mask(_mm256_movemask_epi8(_mm256_cmpeq_epi8(v0, q0)), _mm256_movemask_epi8(_mm256_cmpeq_epi8(v1, q1)));
            let x = _mm256_set1_epi8(value as i8);
            let hits =
                mask(_mm256_movemask_epi8(_mm256_cmpeq_epi8(v0, x)), _mm256_movemask_epi8(_mm256_cmpeq_epi8(v1, x)));
            (repeats, u64::from(hits.count_ones()))
        }

        /// [`compare`] in one 64-byte register.
        #[target_feature(enable = "avx512f,avx512bw")]
        pub(super) unsafe fn compare(chunk: &[u8], i: usize, last: u8, value: u8) -> (u64, u64) {
            // SAFETY: the caller guarantees i + 64 <= chunk.len().
            let v = unsafe { _mm512_loadu_si512(chunk.as_ptr().add(i) as *const __m512i) };
            // The predecessors: chunk[i − 1 .. i + 63], with `last` before the first.
            let prev = if i == 0 {
                let shifted = _mm512_maskz_loadu_epi8(!1u64, chunk.as_ptr().wrapping_sub(1) as *const i8);
                _mm512_mask_set1_epi8(shifted, 1, last as i8)
            } else {
                // SAFETY: i >= 1, so chunk[i − 1 .. i + 63] is in bounds.
                unsafe { _mm512_loadu_si512(chunk.as_ptr().add(i - 1) as *const __m512i) }
            };
            let repeats = _mm512_cmpeq_epi8_mask(v, prev);
            (repeats, u64::from(_mm512_cmpeq_epi8_mask(v, _mm512_set1_epi8(value as i8)).count_ones()))
        }
    }
}
