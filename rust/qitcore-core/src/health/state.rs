//! A monitor's whole state as bytes, and back: what pickling a `HealthMonitor` carries to another
//! process (a Dask worker) or to a later run, so that the monitor fed the rest of a stream there
//! gives exactly what the original would have given.
//!
//! The format is versioned (`QHMS`, then a version byte) and fixed-width little-endian, followed by
//! the samples held for their window. An import checks every field against the configuration and
//! against the others (a cutoff is recomputed from the configuration, never read), so bytes that
//! no monitor could have exported are refused by name rather than making a monitor whose tests
//! would be weaker than its configuration says. It is an integrity check, not an authentication:
//! a pickle must come from a trusted source anyway.

use super::buffered::BufferedMonitor;
use super::cutoffs::{apt_cutoff, check, check_apt, rct_cutoff, AptFormula};
use super::monitor::{startup_total, Config, Counters, Failure, HealthTest, Monitor, State};
use crate::error::{Error, Result};

const MAGIC: &[u8; 4] = b"QHMS";
/// The format written by [`export`]; [`import`] reads this version only.
pub const VERSION: u8 = 1;

/// The failure fields written when there is none: an import requires exactly these then, so that
/// one monitor has one encoding.
const NO_FAILURE: Failure = Failure { test: HealthTest::RepetitionCount, index: 0, value: 0, count: 0, cutoff: 0 };

/// The monitor's state, version [`VERSION`].
pub fn export(m: &BufferedMonitor) -> Vec<u8> {
    let mut w = Writer(Vec::with_capacity(160 + m.pending.len()));
    w.0.extend_from_slice(MAGIC);
    w.u8(VERSION);
    let s = &m.monitor;
    let c = &s.config;
    w.f64(c.min_entropy);
    w.u8(c.bits_per_sample as u8); // 1..=8, checked at construction
    w.f64(c.alpha);
    w.u64(c.startup_samples);
    w.u8(match c.apt_formula {
        AptFormula::Standard => 0,
        AptFormula::Hill => 1,
    });
    w.u8(match s.state {
        State::StartUp => 0,
        State::Healthy => 1,
        State::Failed => 2,
    });
    w.u64(s.startup_left);
    w.u8(s.last);
    w.u64(s.run);
    w.u8(s.window_value);
    w.u64(s.window_count);
    w.u64(s.window_pos);
    w.u64(s.resolved_upto);
    w.u64(s.window_start);
    let f = s.failure.unwrap_or(NO_FAILURE);
    w.u8(u8::from(s.failure.is_some()));
    w.u8(match f.test {
        HealthTest::RepetitionCount => 0,
        HealthTest::AdaptiveProportion => 1,
    });
    w.u64(f.index);
    w.u8(f.value);
    w.u64(f.count);
    w.u64(f.cutoff);
    let k = &s.counters;
    for v in [k.samples, k.released, k.windows, k.longest_run, k.largest_window_count, k.failures] {
        w.u64(v);
    }
    // Fewer than one window (at most 1024) by construction.
    w.u64(m.pending.len() as u64);
    w.0.extend_from_slice(&m.pending);
    w.0
}

/// The monitor whose state [`export`] wrote as `bytes`.
///
/// # Errors
/// [`Error::InvalidArgument`] naming `state`: not a monitor state, another version, truncated or
/// followed by extra bytes, or fields that contradict the configuration or each other.
pub fn import(bytes: &[u8]) -> Result<BufferedMonitor> {
    let mut r = Reader(bytes);
    if r.take(4)? != MAGIC {
        return Err(bad("not a health monitor state"));
    }
    let version = r.u8()?;
    if version != VERSION {
        return Err(bad(format!("version {version}; this qitcore reads version {VERSION}")));
    }
    let min_entropy = r.f64()?;
    let bits_per_sample = u32::from(r.u8()?);
    let alpha = r.f64()?;
    let startup_samples = r.u64()?;
    let apt_formula = match r.u8()? {
        0 => AptFormula::Standard,
        1 => AptFormula::Hill,
        x => return Err(bad(format!("unknown APT formula {x}"))),
    };
    let config = Config { min_entropy, bits_per_sample, alpha, startup_samples, apt_formula };
    check(min_entropy, bits_per_sample, alpha).map_err(|e| bad(format!("configuration: {e}")))?;
    // What HealthMonitor's constructor refuses, a state may not bring in.
    if startup_samples == 0 {
        return Err(bad("startup_samples must be at least 1"));
    }
    let window = config.window();
    let apt = apt_cutoff(min_entropy, alpha, window, apt_formula);
    check_apt(min_entropy, alpha, apt, window).map_err(|e| bad(format!("configuration: {e}")))?;
    let total = startup_total(&config).ok_or_else(|| bad("startup_samples out of range"))?;
    let state = match r.u8()? {
        0 => State::StartUp,
        1 => State::Healthy,
        2 => State::Failed,
        x => return Err(bad(format!("unknown state {x}"))),
    };
    let mut m = Monitor {
        config,
        rct_cutoff: rct_cutoff(min_entropy, alpha),
        apt_cutoff: apt,
        window,
        state,
        startup_left: r.u64()?,
        last: r.u8()?,
        run: r.u64()?,
        window_value: r.u8()?,
        window_count: r.u64()?,
        window_pos: r.u64()?,
        resolved_upto: r.u64()?,
        window_start: r.u64()?,
        failure: None,
        counters: Counters::default(),
    };
    let has_failure = r.u8()?;
    let test = match r.u8()? {
        0 => HealthTest::RepetitionCount,
        1 => HealthTest::AdaptiveProportion,
        x => return Err(bad(format!("unknown health test {x}"))),
    };
    let failure = Failure { test, index: r.u64()?, value: r.u8()?, count: r.u64()?, cutoff: r.u64()? };
    m.failure = match has_failure {
        0 if failure == NO_FAILURE => None,
        0 => return Err(bad("failure fields without a failure")),
        1 => Some(failure),
        x => return Err(bad(format!("failure flag {x}"))),
    };
    m.counters = Counters {
        samples: r.u64()?,
        released: r.u64()?,
        windows: r.u64()?,
        longest_run: r.u64()?,
        largest_window_count: r.u64()?,
        failures: r.u64()?,
    };
    let held = r.u64()?;
    if held >= window {
        return Err(bad(format!("{held} samples held, a window is {window}")));
    }
    let pending = r.take(held as usize)?.to_vec();
    if !r.0.is_empty() {
        return Err(bad(format!("{} bytes after the end", r.0.len())));
    }
    consistent(&m, total, &pending)?;
    Ok(BufferedMonitor { monitor: m, pending })
}

/// Checks what every monitor keeps true between calls (see `Monitor::process`).
fn consistent(m: &Monitor, total: u64, pending: &[u8]) -> Result<()> {
    let k = &m.counters;
    // No real stream comes near 2^62 samples; past it the counters' sums could wrap.
    let counters = [k.samples, k.released, k.windows, k.failures];
    if counters.iter().any(|&c| c >= COUNTER_LIMIT) {
        return Err(bad("a counter past 2^62"));
    }
    let limit = 1u16 << m.config.bits_per_sample;
    let fits = |v: u8| u16::from(v) < limit;
    let require = |ok: bool, what: &str| if ok { Ok(()) } else { Err(bad(what.to_string())) };
    require(fits(m.last) && fits(m.window_value), "a sample wider than bits_per_sample")?;
    require(pending.iter().all(|&v| fits(v)), "a held sample wider than bits_per_sample")?;
    require(m.window_pos < m.window, "window position past the window")?;
    require(m.startup_left <= total && m.startup_left.is_multiple_of(m.window), "start-up count out of range")?;
    require(m.window_start <= m.resolved_upto && m.resolved_upto <= k.samples, "sample indices out of order")?;
    require(k.released <= k.samples && k.windows <= k.samples / m.window, "counters exceed the samples fed")?;
    require(k.longest_run <= m.rct_cutoff && k.largest_window_count <= m.apt_cutoff, "counters past the cutoffs")?;
    require(m.run <= m.rct_cutoff && m.window_count <= m.apt_cutoff, "run or window count past its cutoff")?;
    match (m.state, m.failure) {
        (State::Failed, Some(f)) => {
            let cutoff = match f.test {
                HealthTest::RepetitionCount => m.rct_cutoff,
                HealthTest::AdaptiveProportion => m.apt_cutoff,
            };
            require(f.cutoff == cutoff && f.count == cutoff, "the failure's count is not its test's cutoff")?;
            require(fits(f.value), "the failure's sample is wider than bits_per_sample")?;
            require(f.index.checked_add(1) == Some(k.samples), "the failure is not the last sample fed")?;
            require(k.failures >= 1, "a failed monitor that counts no failure")?;
            require(pending.is_empty(), "a failed monitor holding samples")
        }
        (State::Failed, None) | (_, Some(_)) => Err(bad("the state and the failure disagree")),
        (state, None) => {
            require((state == State::StartUp) == (m.startup_left > 0), "the start-up count and the state disagree")?;
            require(k.samples - m.resolved_upto == m.window_pos, "unresolved samples and window position disagree")?;
            require(m.run < m.rct_cutoff && m.window_count < m.apt_cutoff, "a test at its cutoff without failing")?;
            // Between windows (position 0) the count is the last window's, kept until the next
            // sample; within one it counts the window's first sample and at most every other.
            require(
                m.window_pos == 0 || (1..=m.window_pos).contains(&m.window_count),
                "window count and window position disagree",
            )?;
            // Samples are held by feed() (all unresolved ones) or by the caller of process() (none).
            require(pending.is_empty() || pending.len() as u64 == m.window_pos, "held samples and window disagree")
        }
    }
}

/// The largest count a state may hold (exclusive).
const COUNTER_LIMIT: u64 = 1 << 62;

fn bad(message: impl Into<String>) -> Error {
    Error::argument("state", message)
}

struct Writer(Vec<u8>);

impl Writer {
    fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn f64(&mut self, v: f64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, len: usize) -> Result<&'a [u8]> {
        if self.0.len() < len {
            return Err(bad("truncated"));
        }
        let (head, tail) = self.0.split_at(len);
        self.0 = tail;
        Ok(head)
    }
    fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }
    fn u64(&mut self) -> Result<u64> {
        let mut b = [0u8; 8];
        b.copy_from_slice(self.take(8)?);
        Ok(u64::from_le_bytes(b))
    }
    fn f64(&mut self) -> Result<f64> {
        Ok(f64::from_bits(self.u64()?))
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::maths::xoshiro::test_bytes as random_bytes;

    fn config(bits: u32) -> Config {
        Config { startup_samples: 600, apt_formula: AptFormula::Hill, ..Config::new(0.8, bits) }
    }

    /// Feeds `data` in `cuts`, stopping at a failure: the outputs (or failures) of each call.
    fn run(m: &mut BufferedMonitor, data: &[u8], cuts: &[usize]) -> Vec<std::result::Result<Vec<u8>, Failure>> {
        let (mut rest, mut out) = (data, Vec::new());
        for &cut in cuts.iter().cycle() {
            if rest.is_empty() {
                break;
            }
            let (chunk, tail) = rest.split_at(cut.min(rest.len()));
            out.push(m.feed(chunk).unwrap());
            rest = tail;
        }
        out
    }

    proptest! {
        /// Exported anywhere in a stream (start-up, healthy, failed, mid-window) and imported, a
        /// monitor fed the rest gives exactly what the original gives, and exports the same bytes.
        #[test]
        fn an_imported_monitor_continues_exactly_as_the_original(
            seed in any::<u64>(),
            bits in 1u32..=8,
            len in 1usize..6000,
            split in 0usize..6000,
            at_window_end in any::<bool>(),
            stuck_at in 0usize..8000,
            cuts in prop::collection::vec(1usize..700, 1..8),
        ) {
            let mask = ((1u16 << bits) - 1) as u8;
            let mut data: Vec<u8> = random_bytes(len, seed).iter().map(|b| b & mask).collect();
            if stuck_at < len {
                let end = (stuck_at + 40).min(len);
                data[stuck_at..end].fill(0);
            }
            // Half the cases split on a window boundary, where the state is between windows.
            let split = if at_window_end { split - split % 512 } else { split }.min(len);
            let mut original = BufferedMonitor::new(config(bits)).unwrap();
            let _ = run(&mut original, &data[..split], &cuts);
            let bytes = export(&original);
            let mut copy = import(&bytes).unwrap();
            prop_assert_eq!(export(&copy), bytes);
            let expect = run(&mut original, &data[split..], &cuts);
            let got = run(&mut copy, &data[split..], &cuts);
            prop_assert_eq!(got, expect);
            prop_assert_eq!(export(&copy), export(&original));
        }
    }

    #[test]
    fn a_monitor_between_two_windows_round_trips() {
        // At a window's end the APT count is the finished window's (a regression: it was refused).
        for (bits, fed) in [(1u32, 1024usize), (8, 512), (8, 1536), (4, 2048)] {
            let mut m = BufferedMonitor::new(config(bits)).unwrap();
            let mask = ((1u16 << bits) - 1) as u8;
            let data: Vec<u8> = random_bytes(fed + 700, 11).iter().map(|b| b & mask).collect();
            m.feed(&data[..fed]).unwrap().unwrap();
            assert_eq!(m.monitor.window_pos, 0);
            let mut copy = import(&export(&m)).unwrap();
            assert_eq!(copy.feed(&data[fed..]), m.feed(&data[fed..]));
        }
    }

    #[test]
    fn a_monitor_used_through_process_round_trips() {
        let mut m = BufferedMonitor::new(Config::new(7.0, 8)).unwrap();
        let data = random_bytes(3000, 9);
        m.process(&data[..1700]).unwrap().unwrap();
        let mut copy = import(&export(&m)).unwrap();
        assert_eq!(copy.process(&data[1700..]), m.process(&data[1700..]));
        assert_eq!(copy.monitor().counters(), m.monitor().counters());
    }

    fn refused(bytes: &[u8]) -> String {
        match import(bytes) {
            Err(e @ Error::InvalidArgument { name: "state", .. }) => e.to_string(),
            other => panic!("expected a refusal naming state, got {other:?}"),
        }
    }

    #[test]
    fn truncated_extended_and_foreign_bytes_are_refused_by_name() {
        let mut m = BufferedMonitor::new(config(8)).unwrap();
        m.feed(&random_bytes(2500, 3)).unwrap().unwrap();
        let good = export(&m);
        for len in 0..good.len() {
            assert!(refused(&good[..len]).contains("state:"));
        }
        let mut longer = good.clone();
        longer.push(0);
        assert!(refused(&longer).contains("after the end"));
        assert!(refused(b"not a pickle at all").contains("not a health monitor state"));
        let mut other = good.clone();
        other[4] = 2;
        assert!(refused(&other).contains("version 2"));
    }

    #[test]
    fn every_single_byte_change_is_refused_or_gives_a_consistent_monitor() {
        // Flipping any bit either breaks an invariant (refused) or changes a value the format
        // cannot check (a sample value, a count within range): then the import must still not
        // panic and must give a monitor that exports the changed bytes.
        let mut m = BufferedMonitor::new(config(4)).unwrap();
        let data: Vec<u8> = random_bytes(2300, 4).iter().map(|b| b & 15).collect();
        m.feed(&data).unwrap().unwrap();
        let good = export(&m);
        for i in 0..good.len() {
            for bit in 0..8 {
                let mut bytes = good.clone();
                bytes[i] ^= 1 << bit;
                if let Ok(copy) = import(&bytes) {
                    assert_eq!(export(&copy), bytes);
                }
            }
        }
    }

    #[test]
    fn contradictions_are_refused() {
        let mut m = BufferedMonitor::new(config(8)).unwrap();
        // 700 samples: one start-up window passed, one to go, 188 samples into it.
        m.feed(&random_bytes(700, 5)).unwrap().unwrap();
        // A weaker configuration is accepted only as a configuration (the cutoffs follow it);
        // a state past its own cutoffs is not.
        let mut past = m.clone();
        past.monitor.run = past.monitor.rct_cutoff;
        assert!(refused(&export(&past)).contains("cutoff"));
        let mut healthy = m.clone();
        healthy.monitor.state = State::Healthy;
        assert!(refused(&export(&healthy)).contains("start-up"));
        let mut failed = m.clone();
        failed.monitor.state = State::Failed;
        assert!(refused(&export(&failed)).contains("failure"));
        let mut held = m.clone();
        held.pending.push(1);
        assert!(refused(&export(&held)).contains("held"));
        let mut bad_config = m.clone();
        bad_config.monitor.config.alpha = 2.0;
        assert!(refused(&export(&bad_config)).contains("alpha"));
        // What the constructor refuses, and counts that could wrap.
        let mut no_startup = m.clone();
        no_startup.monitor.config.startup_samples = 0;
        assert!(refused(&export(&no_startup)).contains("startup_samples"));
        let mut wraps = m.clone();
        wraps.monitor.counters.failures = u64::MAX;
        assert!(refused(&export(&wraps)).contains("2^62"));
    }
}
