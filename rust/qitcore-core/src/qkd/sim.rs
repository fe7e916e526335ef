//! A decoy-state BB84 link: Alice's weak coherent pulses over a fibre to Bob's two detectors.
//!
//! Each pulse gets an intensity (by [`Decoys::p`]), a Poisson photon number of that mean, a basis
//! on each side (the key basis with probability `key_basis_probability`) and a bit. Each photon
//! survives the fibre (`10^(−α·L/10)`) and Bob's detector efficiency independently; a surviving
//! photon clicks the detector of Alice's bit when the bases agree, the other one with probability
//! `misalignment`, and either at random when they differ. Each detector also clicks in the dark
//! with probability `dark_count` per pulse; a double click becomes a random bit (squashing).
//! Only pulses with a click are recorded, with the photon number as ground truth for tests.

use rayon::prelude::*;

use super::finite_key::Decoys;
use crate::maths::xoshiro::Xoshiro256;
use crate::{Error, Result};

/// The link's physics.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LinkModel {
    pub distance_km: f64,
    pub attenuation_db_per_km: f64,
    /// Bob's detection efficiency, his optics included.
    pub detector_efficiency: f64,
    /// Probability of a dark click per detector and pulse.
    pub dark_count: f64,
    /// Probability that a photon clicks the wrong detector when the bases agree.
    pub misalignment: f64,
    pub decoys: Decoys,
    /// Probability of choosing the key basis, on each side.
    pub key_basis_probability: f64,
}

impl LinkModel {
    /// Probability that one photon sent is detected.
    pub fn transmittance(&self) -> f64 {
        self.detector_efficiency * 10f64.powf(-self.attenuation_db_per_km * self.distance_km / 10.0)
    }

    /// Checks every parameter's domain.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] naming the parameter.
    pub fn validate(&self) -> Result<()> {
        self.decoys.validate()?;
        let finite = |v: f64| v >= 0.0 && v.is_finite();
        // (name, value, accepted, the range as the message states it)
        let checks = [
            ("distance_km", self.distance_km, finite(self.distance_km), "at least 0 (finite)"),
            (
                "attenuation_db_per_km",
                self.attenuation_db_per_km,
                finite(self.attenuation_db_per_km),
                "at least 0 (finite)",
            ),
            (
                "detector_efficiency",
                self.detector_efficiency,
                self.detector_efficiency > 0.0 && self.detector_efficiency <= 1.0,
                "more than 0 and at most 1",
            ),
            ("dark_count", self.dark_count, (0.0..0.5).contains(&self.dark_count), "at least 0 and below 0.5"),
            ("misalignment", self.misalignment, (0.0..0.5).contains(&self.misalignment), "at least 0 and below 0.5"),
            (
                "key_basis_probability",
                self.key_basis_probability,
                self.key_basis_probability > 0.0 && self.key_basis_probability < 1.0,
                "strictly between 0 and 1",
            ),
        ];
        for (name, value, ok, range) in checks {
            if !ok {
                return Err(Error::argument(name, format!("expected a number {range}, got {value}")));
            }
        }
        Ok(())
    }
}

/// Pulse numbers, increasing. Python reads them as little-endian u64 bytes, for numpy to view:
/// a list of millions of ints would take longer than the simulation.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "python", derive(serde::Serialize, serde::Deserialize))]
pub struct PulseNumbers(pub Vec<u64>);

/// Detected pulses, one column per field (in Python, bytes of one byte a pulse); bases are 0
/// (key) or 1 (test).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[cfg_attr(
    feature = "python",
    pyo3::pyclass(frozen, get_all, eq, module = "qitcore.qkd", name = "Detections"),
    derive(serde::Serialize, serde::Deserialize)
)]
pub struct Detections {
    pub index: PulseNumbers,
    #[cfg_attr(feature = "python", serde(with = "serde_bytes"))]
    pub alice_basis: Vec<u8>,
    #[cfg_attr(feature = "python", serde(with = "serde_bytes"))]
    pub alice_bit: Vec<u8>,
    /// Which intensity Alice sent: 0, 1 or 2.
    #[cfg_attr(feature = "python", serde(with = "serde_bytes"))]
    pub intensity: Vec<u8>,
    /// Photons in the pulse (the ground truth a real link does not know).
    #[cfg_attr(feature = "python", serde(with = "serde_bytes"))]
    pub photons: Vec<u8>,
    #[cfg_attr(feature = "python", serde(with = "serde_bytes"))]
    pub bob_basis: Vec<u8>,
    #[cfg_attr(feature = "python", serde(with = "serde_bytes"))]
    pub bob_bit: Vec<u8>,
}

impl Detections {
    /// The count, not the columns (every byte of them would be printed otherwise, secrets too).
    pub fn summary(&self) -> String {
        format!("Detections(detected={})", self.index.0.len())
    }

    /// Room for `more` records in every column.
    fn reserve(&mut self, more: usize) -> Result<()> {
        let short = |what: &'static str| Error::OutOfMemory { what, bytes: more.saturating_mul(8) };
        self.index.0.try_reserve(more).map_err(|_| short("the simulated records"))?;
        for column in [
            &mut self.alice_basis,
            &mut self.alice_bit,
            &mut self.intensity,
            &mut self.photons,
            &mut self.bob_basis,
            &mut self.bob_bit,
        ] {
            column.try_reserve(more).map_err(|_| short("the simulated records"))?;
        }
        Ok(())
    }

    fn append(&mut self, other: Detections) {
        self.index.0.extend(other.index.0);
        self.alice_basis.extend(other.alice_basis);
        self.alice_bit.extend(other.alice_bit);
        self.intensity.extend(other.intensity);
        self.photons.extend(other.photons);
        self.bob_basis.extend(other.bob_basis);
        self.bob_bit.extend(other.bob_bit);
    }
}

/// Photon numbers tabulated per intensity: Poisson CDF and the probability that `j` photons
/// give a click.
struct Tables {
    cdf: [[f64; 24]; 3],
    click: [f64; 24],
}

impl Tables {
    fn new(model: &LinkModel) -> Self {
        let eta = model.transmittance();
        let mut cdf = [[1.0; 24]; 3];
        for (k, row) in cdf.iter_mut().enumerate() {
            let mu = model.decoys.mu[k];
            let (mut term, mut sum) = ((-mu).exp(), 0.0);
            for (j, slot) in row.iter_mut().enumerate().take(23) {
                sum += term;
                *slot = sum;
                term *= mu / (j + 1) as f64;
            }
        }
        let click = std::array::from_fn(|j| 1.0 - (1.0 - eta).powi(j as i32));
        Tables { cdf, click }
    }
}

fn uniform(rng: &mut Xoshiro256) -> f64 {
    (rng.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
}

const CHUNK: u64 = 1 << 20;

/// Chunks simulated in parallel between two checks of the stop flag and two reservations.
const BATCH: u64 = 64;

/// The most pulses one simulation sends (its records would take terabytes beyond).
pub const MAX_PULSES: u64 = 1 << 40;

/// Simulates `pulses` pulses from `seed` (the same seed gives the same records).
///
/// # Errors
/// [`Error::InvalidArgument`] for a bad model or `pulses` of 0 or above [`MAX_PULSES`];
/// [`Error::OutOfMemory`] when the records do not fit in memory.
pub fn simulate(model: &LinkModel, pulses: u64, seed: u64) -> Result<Detections> {
    simulate_until(model, pulses, seed, &std::sync::atomic::AtomicBool::new(false)).map(|d| d.unwrap_or_default())
}

/// As [`simulate`], stopping (`Ok(None)`) once `stop` is set: it is checked every [`BATCH`]
/// million pulses.
///
/// # Errors
/// As [`simulate`].
pub fn simulate_until(
    model: &LinkModel,
    pulses: u64,
    seed: u64,
    stop: &std::sync::atomic::AtomicBool,
) -> Result<Option<Detections>> {
    model.validate()?;
    if pulses == 0 || pulses > MAX_PULSES {
        return Err(Error::argument("pulses", format!("expected 1 to {MAX_PULSES}, got {pulses}")));
    }
    let tables = Tables::new(model);
    let mut out = Detections::default();
    let chunks = pulses.div_ceil(CHUNK);
    for first in (0..chunks).step_by(BATCH as usize) {
        if stop.load(std::sync::atomic::Ordering::Relaxed) {
            return Ok(None);
        }
        let batch: Vec<Detections> = (first..(first + BATCH).min(chunks))
            .into_par_iter()
            .map(|c| {
                let mut rng = Xoshiro256::from_seed(seed ^ c.wrapping_mul(0x9E37_79B9_7F4A_7C15));
                let start = c * CHUNK;
                simulate_chunk(model, &tables, start..(start + CHUNK).min(pulses), &mut rng)
            })
            .collect();
        // The records grow a batch at a time, each growth tried (a failed allocation would abort).
        out.reserve(batch.iter().map(|c| c.index.0.len()).sum())?;
        for chunk in batch {
            out.append(chunk);
        }
    }
    Ok(Some(out))
}

fn simulate_chunk(model: &LinkModel, t: &Tables, range: std::ops::Range<u64>, rng: &mut Xoshiro256) -> Detections {
    let p = model.decoys.p;
    let dark_any = 1.0 - (1.0 - model.dark_count) * (1.0 - model.dark_count);
    let mut out = Detections::default();
    for index in range {
        let u = uniform(rng);
        let k = if u < p[0] {
            0
        } else if u < p[0] + p[1] {
            1
        } else {
            2
        };
        let v = uniform(rng);
        let photons = t.cdf[k].iter().position(|&c| v < c).unwrap_or(23);
        let signal = photons > 0 && uniform(rng) < t.click[photons];
        let dark = uniform(rng) < dark_any;
        if !signal && !dark {
            continue;
        }
        let alice_basis = u8::from(uniform(rng) >= model.key_basis_probability);
        let bob_basis = u8::from(uniform(rng) >= model.key_basis_probability);
        let alice_bit = (rng.next_u64() & 1) as u8;
        let mut clicks = [false; 2];
        if signal {
            let detector = if alice_basis == bob_basis {
                alice_bit ^ u8::from(uniform(rng) < model.misalignment)
            } else {
                (rng.next_u64() & 1) as u8
            };
            clicks[usize::from(detector)] = true;
        }
        if dark {
            // Given at least one dark click: both with probability pd/(2 − pd), else one of two.
            if uniform(rng) < model.dark_count / (2.0 - model.dark_count) {
                clicks = [true, true];
            } else {
                clicks[(rng.next_u64() & 1) as usize] = true;
            }
        }
        let bob_bit = match clicks {
            [true, true] => (rng.next_u64() & 1) as u8,
            [_, one] => u8::from(one),
        };
        out.index.0.push(index);
        out.alice_basis.push(alice_basis);
        out.alice_bit.push(alice_bit);
        out.intensity.push(k as u8);
        out.photons.push(photons as u8);
        out.bob_basis.push(bob_basis);
        out.bob_bit.push(bob_bit);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model() -> LinkModel {
        LinkModel {
            distance_km: 20.0,
            attenuation_db_per_km: 0.2,
            detector_efficiency: 0.25,
            dark_count: 1e-6,
            misalignment: 0.02,
            decoys: Decoys { mu: [0.5, 0.1, 0.0002], p: [0.7, 0.2, 0.1] },
            key_basis_probability: 0.9,
        }
    }

    /// Detection rate and QBER agree with the closed forms: yield `1 − (1 − pd)² e^(−ημ)` and
    /// error rate `(e_mis (1 − e^(−ημ)) + pd) / yield` (to first order in pd).
    #[test]
    fn rates_follow_the_closed_forms() {
        let m = model();
        let pulses = 20_000_000u64;
        let d = simulate(&m, pulses, 7).unwrap();
        let eta = m.transmittance();
        for k in 0..3 {
            let mu = m.decoys.mu[k];
            let yield_k = 1.0 - (1.0 - m.dark_count).powi(2) * (-eta * mu).exp();
            let sent = pulses as f64 * m.decoys.p[k];
            let got = d.intensity.iter().filter(|&&i| usize::from(i) == k).count() as f64;
            let sd = (sent * yield_k).sqrt();
            assert!((got - sent * yield_k).abs() < 5.0 * sd + 1.0, "k={k}: {got} vs {}", sent * yield_k);
        }
        let sifted: Vec<usize> =
            (0..d.index.0.len()).filter(|&i| d.alice_basis[i] == d.bob_basis[i] && d.intensity[i] == 0).collect();
        let errors = sifted.iter().filter(|&&i| d.alice_bit[i] != d.bob_bit[i]).count() as f64;
        let mu = m.decoys.mu[0];
        let yield_1 = 1.0 - (1.0 - m.dark_count).powi(2) * (-eta * mu).exp();
        let expected = (m.misalignment * (1.0 - (-eta * mu).exp()) + m.dark_count) / yield_1;
        let qber = errors / sifted.len() as f64;
        assert!((qber - expected).abs() < 0.002, "QBER {qber} vs {expected}");
        assert!(d.index.0.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(
            simulate(&m, 3_000_000, 7).unwrap().index.0.len(),
            simulate(&m, 3_000_000, 7).unwrap().index.0.len()
        );
    }

    #[test]
    fn bad_models_are_refused() {
        let m = model();
        assert!(simulate(&LinkModel { distance_km: -1.0, ..m }, 10, 1).is_err());
        assert!(simulate(&LinkModel { misalignment: 0.7, ..m }, 10, 1).is_err());
        assert!(simulate(&LinkModel { detector_efficiency: 0.0, ..m }, 10, 1).is_err());
        assert!(simulate(&m, 0, 1).is_err());
    }
}
