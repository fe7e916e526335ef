//! A vacuum-noise homodyne QRNG as a physical model: the quadrature of the vacuum state is
//! Gaussian noise (standard deviation `sigma_quantum`), filtered by the detector's bandwidth into
//! a first-order autoregressive process, plus independent classical electronic noise
//! (`sigma_classical`), amplified (`gain`), shifted (`offset`) and digitised by an n-bit ADC over
//! `[-range, range]`, with out-of-range values clipped to the end codes.
//!
//! Because everything is known, so is the entropy. An adversary who knows the classical noise and
//! the past (the worst case of Haw et al., Phys. Rev. Applied 3, 054004, 2015) still faces the
//! fresh quantum innovation, Gaussian with standard deviation `gain · sigma_quantum · sqrt(1 − ρ²)`
//! around a mean they know; its min-entropy, minimised over every mean within five standard
//! deviations of the known part, is [`NoiseParams::min_entropy`].

use crate::maths::xoshiro::Xoshiro256;
use crate::{Error, Result};

/// The model's parameters. Voltages are in units of the ADC's half range.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct NoiseParams {
    /// ADC resolution, 1 to 16 bits.
    pub bits: u8,
    /// Samples per second (pacing only; 0 means as fast as possible), else 1 to [`MAX_RATE`].
    pub rate: f64,
    /// Standard deviation of the vacuum noise at the detector.
    pub sigma_quantum: f64,
    /// Standard deviation of the classical electronic noise.
    pub sigma_classical: f64,
    /// Amplifier gain before the ADC.
    pub gain: f64,
    /// DC offset at the ADC input.
    pub offset: f64,
    /// Detection bandwidth in Hz; successive samples correlate as `exp(−2π·bandwidth/rate)`.
    /// Infinite (the default) makes them independent.
    pub bandwidth: f64,
    /// ADC half range: codes span `[-range, range]`.
    pub range: f64,
}

impl NoiseParams {
    /// The simulator's defaults (of `sim://` URLs too): four standard deviations of the total
    /// noise fill the ADC's half range; the classical noise is 14 dB below the quantum noise.
    pub const DEFAULT: NoiseParams = NoiseParams {
        bits: 8,
        rate: 0.0,
        sigma_quantum: 0.24,
        sigma_classical: 0.048,
        gain: 1.0,
        offset: 0.0,
        bandwidth: f64::INFINITY,
        range: 1.0,
    };
}

impl Default for NoiseParams {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// The largest sample rate: the sample format states rates as a 32-bit count per second.
pub const MAX_RATE: f64 = u32::MAX as f64;

/// The largest magnitude of a voltage (noise, gain, offset, range): far beyond any sensible model,
/// and small enough that no sum or product of a few of them overflows to infinity.
pub const MAX_VOLTAGE: f64 = 1e12;

impl NoiseParams {
    /// Checks every parameter.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] naming the parameter out of range.
    pub fn validate(&self) -> Result<()> {
        if !(1..=16).contains(&self.bits) {
            return Err(Error::argument("bits", format!("must be 1 to 16, got {}", self.bits)));
        }
        let positive = [("sigma_quantum", self.sigma_quantum), ("gain", self.gain), ("range", self.range)];
        for (name, v) in positive {
            if !(v > 0.0 && v <= MAX_VOLTAGE) {
                return Err(Error::argument(name, format!("must be a positive number up to {MAX_VOLTAGE:e}, got {v}")));
            }
        }
        if !(self.sigma_classical >= 0.0 && self.sigma_classical <= MAX_VOLTAGE) {
            return Err(Error::argument(
                "sigma_classical",
                format!("must be 0 to {MAX_VOLTAGE:e}, got {}", self.sigma_classical),
            ));
        }
        if !(-MAX_VOLTAGE..=MAX_VOLTAGE).contains(&self.offset) {
            return Err(Error::argument("offset", format!("must lie within ±{MAX_VOLTAGE:e}, got {}", self.offset)));
        }
        if !(self.rate == 0.0 || (1.0..=MAX_RATE).contains(&self.rate)) {
            return Err(Error::argument(
                "rate",
                format!("must be 0 (as fast as possible) or 1 to {MAX_RATE} samples per second, got {}", self.rate),
            ));
        }
        if self.bandwidth.is_nan() || self.bandwidth <= 0.0 {
            return Err(Error::argument(
                "bandwidth",
                format!("must be positive (inf for none), got {}", self.bandwidth),
            ));
        }
        Ok(())
    }

    /// Correlation between successive quantum samples.
    pub fn correlation(&self) -> f64 {
        if self.bandwidth.is_infinite() || self.rate == 0.0 {
            0.0
        } else {
            (-2.0 * std::f64::consts::PI * self.bandwidth / self.rate).exp()
        }
    }

    fn codes(&self) -> usize {
        1usize << self.bits
    }

    /// Code boundaries: code k covers `[edge(k), edge(k + 1))`, the end codes extend to ±∞.
    fn edge(&self, k: usize) -> f64 {
        -self.range + 2.0 * self.range * k as f64 / self.codes() as f64
    }

    /// The ADC code of an input voltage.
    pub fn quantise(&self, v: f64) -> u16 {
        let x = ((v + self.range) / (2.0 * self.range) * self.codes() as f64).floor();
        x.clamp(0.0, (self.codes() - 1) as f64) as u16
    }

    /// The largest probability of any code for Gaussian input of mean `mean` and standard
    /// deviation `sigma`.
    fn max_code_probability(&self, mean: f64, sigma: f64) -> f64 {
        let cdf = |x: f64| 0.5 * erfc(-(x - mean) / (sigma * std::f64::consts::SQRT_2));
        (0..self.codes())
            .map(|k| {
                let lo = if k == 0 { 0.0 } else { cdf(self.edge(k)) };
                let hi = if k + 1 == self.codes() { 1.0 } else { cdf(self.edge(k + 1)) };
                hi - lo
            })
            .fold(0.0, f64::max)
    }

    /// Min-entropy per sample, in bits, against an adversary who knows the classical noise and
    /// every earlier sample: `−log2 max_m max_k P(k | m)` over known means `m` within five
    /// standard deviations of the offset.
    pub fn min_entropy(&self) -> f64 {
        let rho = self.correlation();
        let innovation = self.gain * self.sigma_quantum * (1.0 - rho * rho).sqrt();
        let known = self.gain * (rho * rho * self.sigma_quantum.powi(2) + self.sigma_classical.powi(2)).sqrt();
        let (lo, hi) = (self.offset - 5.0 * known, self.offset + 5.0 * known);
        // The worst mean is at an end of the interval (pushing probability into an end code) or
        // at the centre of a code inside it.
        let mut worst = self.max_code_probability(lo, innovation).max(self.max_code_probability(hi, innovation));
        let width = 2.0 * self.range / self.codes() as f64;
        for k in 0..self.codes() {
            let centre = self.edge(k) + width / 2.0;
            if centre > lo && centre < hi {
                worst = worst.max(self.max_code_probability(centre, innovation));
                // Interior codes all give the same value: one suffices.
                if k > 0 && k + 1 < self.codes() {
                    break;
                }
            }
        }
        -worst.log2()
    }

    /// Min-entropy per sample of the samples' own distribution, with no side information.
    pub fn min_entropy_without_side_information(&self) -> f64 {
        let total = self.gain * (self.sigma_quantum.powi(2) + self.sigma_classical.powi(2)).sqrt();
        -self.max_code_probability(self.offset, total).log2()
    }
}

/// Complementary error function (W. J. Cody's rational approximations via `erfc = 1 − erf`
/// would do; this is Numerical Recipes' Chebyshev fit, relative error below 1.2e-7, ample for
/// an entropy to a few decimal places).
fn erfc(x: f64) -> f64 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let poly = -z * z - 1.265_512_23
        + t * (1.000_023_68
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06
                        + t * (0.278_868_07
                            + t * (-1.135_203_98 + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77))))))));
    let r = t * poly.exp();
    if x >= 0.0 {
        r
    } else {
        2.0 - r
    }
}

/// A sample generator for the model, with the faults a test may inject.
#[derive(Clone, Debug)]
pub struct NoiseSource {
    params: NoiseParams,
    rng: Xoshiro256,
    rho: f64,
    innovation: f64,
    quantum: f64,
    /// Independent samples come from an alias table of the exact code distribution.
    alias: Option<Alias>,
    /// Samples generated so far.
    pub produced: u64,
    /// From this sample on, the output sticks at its last value.
    pub stuck_after: Option<u64>,
    /// Offset added per sample (slow bias drift).
    pub drift_per_sample: f64,
    stuck_value: u16,
}

impl NoiseSource {
    /// A source seeded with `seed`.
    ///
    /// # Errors
    /// As [`NoiseParams::validate`].
    pub fn new(params: NoiseParams, seed: u64) -> Result<Self> {
        params.validate()?;
        let rho = params.correlation();
        let innovation = params.sigma_quantum * (1.0 - rho * rho).sqrt();
        let alias = if rho == 0.0 { Some(Alias::new(&params)) } else { None };
        let mut rng = Xoshiro256::from_seed(seed);
        let quantum = params.sigma_quantum * gaussian(&mut rng);
        Ok(NoiseSource {
            params,
            rng,
            rho,
            innovation,
            quantum,
            alias,
            produced: 0,
            stuck_after: None,
            drift_per_sample: 0.0,
            stuck_value: 0,
        })
    }

    pub fn params(&self) -> &NoiseParams {
        &self.params
    }

    /// Fills `out` with the next samples.
    pub fn fill(&mut self, out: &mut [u16]) {
        for s in out.iter_mut() {
            if self.stuck_after.is_some_and(|at| self.produced >= at) {
                *s = self.stuck_value;
            } else if let (Some(alias), true) = (&self.alias, self.drift_per_sample == 0.0) {
                *s = alias.draw(self.rng.next_u64());
            } else {
                let p = &self.params;
                self.quantum = self.rho * self.quantum + self.innovation * gaussian(&mut self.rng);
                let classical = p.sigma_classical * gaussian(&mut self.rng);
                let offset = p.offset + self.drift_per_sample * self.produced as f64;
                *s = p.quantise(offset + p.gain * (self.quantum + classical));
            }
            self.stuck_value = *s;
            self.produced += 1;
        }
    }
}

/// A standard normal deviate (Marsaglia's polar method).
fn gaussian(rng: &mut Xoshiro256) -> f64 {
    loop {
        let u = (rng.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64) * 2.0 - 1.0;
        let v = (rng.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64) * 2.0 - 1.0;
        let s = u * u + v * v;
        if s > 0.0 && s < 1.0 {
            return u * (-2.0 * s.ln() / s).sqrt();
        }
    }
}

/// Walker's alias method over the ADC codes: one 64-bit random number per sample.
#[derive(Clone, Debug)]
struct Alias {
    /// Per code: acceptance threshold (scaled to 2^32) and alias.
    table: Vec<(u32, u16)>,
    shift: u32,
}

impl Alias {
    fn new(p: &NoiseParams) -> Self {
        let n = p.codes();
        let total = p.gain * (p.sigma_quantum.powi(2) + p.sigma_classical.powi(2)).sqrt();
        let cdf = |x: f64| 0.5 * erfc(-(x - p.offset) / (total * std::f64::consts::SQRT_2));
        let probs: Vec<f64> = (0..n)
            .map(|k| {
                let lo = if k == 0 { 0.0 } else { cdf(p.edge(k)) };
                let hi = if k + 1 == n { 1.0 } else { cdf(p.edge(k + 1)) };
                (hi - lo) * n as f64
            })
            .collect();
        let mut scaled = probs;
        let (mut small, mut large): (Vec<usize>, Vec<usize>) = (0..n).partition(|&k| scaled[k] < 1.0);
        let mut table = vec![(u32::MAX, 0u16); n];
        while let (Some(s), Some(&l)) = (small.pop(), large.last()) {
            table[s] = ((scaled[s] * 4_294_967_296.0).min(4_294_967_295.0) as u32, l as u16);
            scaled[l] -= 1.0 - scaled[s];
            if scaled[l] < 1.0 {
                large.pop();
                small.push(l);
            }
        }
        for k in large.into_iter().chain(small) {
            table[k] = (u32::MAX, k as u16);
        }
        Alias { table, shift: 64 - u32::from(p.bits) }
    }

    fn draw(&self, r: u64) -> u16 {
        let k = (r >> self.shift) as usize;
        let (threshold, alias) = self.table[k];
        if (r as u32) < threshold || threshold == u32::MAX {
            k as u16
        } else {
            alias
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn erfc_matches_known_values() {
        for (x, want) in [
            (0.0, 1.0),
            (0.5, 0.479_500_122_186_953_5),
            (1.0, 0.157_299_207_050_285_1),
            (-1.0, 1.842_700_792_949_715),
            (3.0, 2.209_049_699_858_544e-5),
        ] {
            assert!((erfc(x) - want).abs() <= 1.2e-7 * want.max(1e-3), "{x}");
        }
    }

    #[test]
    fn samples_follow_the_model_and_entropy_bounds_hold() {
        let p = NoiseParams::default();
        let mut src = NoiseSource::new(p, 1).unwrap();
        let mut s = vec![0u16; 1 << 20];
        src.fill(&mut s);
        let mean = s.iter().map(|&v| f64::from(v)).sum::<f64>() / s.len() as f64;
        let var = s.iter().map(|&v| (f64::from(v) - mean).powi(2)).sum::<f64>() / s.len() as f64;
        // Codes are 1/128 of the half range wide: the total standard deviation is 0.2448 × 128.
        let total = (0.24f64.powi(2) + 0.048f64.powi(2)).sqrt() * 128.0;
        assert!((mean - 127.5).abs() < 0.2, "{mean}");
        assert!((var.sqrt() - total).abs() / total < 0.01, "{}", var.sqrt());
        // The most frequent code's empirical frequency gives the unconditional min-entropy.
        let mut counts = vec![0u32; 256];
        s.iter().for_each(|&v| counts[usize::from(v)] += 1);
        let empirical = -(f64::from(*counts.iter().max().unwrap()) / s.len() as f64).log2();
        let h0 = p.min_entropy_without_side_information();
        assert!((empirical - h0).abs() < 0.05, "{empirical} vs {h0}");
        // Side information costs entropy: conditional below unconditional, both below 8 bits.
        let h = p.min_entropy();
        assert!(h < h0 && h0 < 8.0 && h > 4.0, "{h} {h0}");
        // A Gaussian of width sigma quantised into bins of width d: H ≈ log2(sigma·sqrt(2π)/d).
        let approx = (0.24 * 128.0 * (2.0 * std::f64::consts::PI).sqrt()).log2();
        assert!((h - approx).abs() < 0.01, "{h} vs {approx}");
    }

    #[test]
    fn correlation_and_faults() {
        let p = NoiseParams { rate: 1e6, bandwidth: 1e5, ..NoiseParams::default() };
        let rho = p.correlation();
        assert!((rho - (-0.2 * std::f64::consts::PI).exp()).abs() < 1e-12);
        let mut src = NoiseSource::new(p, 2).unwrap();
        let mut s = vec![0u16; 200_000];
        src.fill(&mut s);
        let x: Vec<f64> = s.iter().map(|&v| f64::from(v) - 127.5).collect();
        let lag1 = x.windows(2).map(|w| w[0] * w[1]).sum::<f64>() / x.iter().map(|v| v * v).sum::<f64>();
        // The quantum part carries rho; the classical part dilutes it by its share of the variance.
        let expect = rho * 0.24f64.powi(2) / (0.24f64.powi(2) + 0.048f64.powi(2));
        assert!((lag1 - expect).abs() < 0.02, "{lag1} vs {expect}");
        assert!(p.min_entropy() < NoiseParams::default().min_entropy());
        src.stuck_after = Some(src.produced + 10);
        let mut t = vec![0u16; 100];
        src.fill(&mut t);
        assert!(t[10..].iter().all(|&v| v == t[9]));
        assert!(NoiseParams { bits: 0, ..NoiseParams::default() }.validate().is_err());
        assert!(NoiseParams { gain: -1.0, ..NoiseParams::default() }.validate().is_err());
    }

    #[test]
    fn hostile_parameters_are_refused_by_name() {
        let d = NoiseParams::default();
        let cases = [
            ("rate", NoiseParams { rate: 1e300, ..d }),
            ("rate", NoiseParams { rate: 0.5, ..d }),
            ("rate", NoiseParams { rate: f64::NAN, ..d }),
            ("rate", NoiseParams { rate: -1.0, ..d }),
            ("gain", NoiseParams { gain: f64::INFINITY, ..d }),
            ("range", NoiseParams { range: 1e300, ..d }),
            ("sigma_quantum", NoiseParams { sigma_quantum: f64::NAN, ..d }),
            ("sigma_classical", NoiseParams { sigma_classical: 1e300, ..d }),
            ("offset", NoiseParams { offset: f64::NEG_INFINITY, ..d }),
            ("bandwidth", NoiseParams { bandwidth: f64::NAN, ..d }),
        ];
        for (name, p) in cases {
            let err = p.validate().unwrap_err().to_string();
            assert!(err.starts_with(name), "{name}: {err}");
        }
        // The extremes allowed still give finite entropies.
        let wide = NoiseParams { rate: MAX_RATE, gain: MAX_VOLTAGE, range: MAX_VOLTAGE, offset: -MAX_VOLTAGE, ..d };
        assert!(wide.validate().is_ok() && wide.min_entropy().is_finite());
    }
}
