//! The on-demand self-test: fresh monitors with the same configuration are fed sequences built to
//! make each test fire, and must fire with the right test.

use super::monitor::{Config, HealthTest, Monitor};
use crate::error::Result;

/// Which tests fired on their known-bad sequence.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(
    feature = "python",
    pyo3::pyclass(frozen, get_all, eq, module = "qitcore.health"),
    derive(serde::Serialize, serde::Deserialize)
)]
pub struct SelfTest {
    /// The Repetition Count Test fired on a stuck source.
    pub repetition_count: bool,
    /// The Adaptive Proportion Test fired on a source biased towards one value (without runs long
    /// enough for the RCT).
    pub adaptive_proportion: bool,
}

impl SelfTest {
    /// Both tests fired.
    pub fn passed(&self) -> bool {
        self.repetition_count && self.adaptive_proportion
    }
}

/// Runs the self-test for `config`.
///
/// # Errors
/// As [`Monitor::new`].
pub fn self_test(config: Config) -> Result<SelfTest> {
    let probe = Monitor::new(config)?;
    let (rct, _, window) = probe.cutoffs();
    let (a, b) = (0u8, 1u8);
    // Stuck at one value: the RCT must fire at the cutoff-th repeat.
    let stuck = vec![a; rct as usize + 1];
    let mut m = Monitor::new(config)?;
    let repetition_count = matches!(m.process(&stuck), Err(f) if f.test == HealthTest::RepetitionCount);
    // Runs of a as long as the RCT allows, each broken by one b: a window of this is biased to a
    // far past the APT cutoff for any claimed entropy.
    let run = (rct - 1).max(1) as usize;
    let biased: Vec<u8> = (0..2 * window as usize).map(|i| if i % (run + 1) == run { b } else { a }).collect();
    let mut m = Monitor::new(config)?;
    let adaptive_proportion = matches!(m.process(&biased), Err(f) if f.test == HealthTest::AdaptiveProportion);
    Ok(SelfTest { repetition_count, adaptive_proportion })
}
