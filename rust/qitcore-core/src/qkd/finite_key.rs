//! Finite-key secure length of decoy-state BB84 with three intensities, after Lim, Curty,
//! Walenta, Xu and Zbinden, "Concise security bounds for practical decoy-state quantum key
//! distribution", Phys. Rev. A 89, 022307 (2014), Eqs. (1)–(5) and Appendix A.
//!
//! The paper draws the key from basis X and estimates the phase errors from basis Z; here the
//! *key basis* plays X and the *test basis* Z. With intensities `μ1 > μ2 + μ3`, `μ2 > μ3 ≥ 0`,
//! sent with probabilities `p_k`, and `n_k` detections at intensity `k` in a basis (`n = Σ n_k`):
//!
//! - Hoeffding bounds on the counts as if every pulse were sent at intensity `k`:
//!   `n_k^± = e^(μ_k)/p_k · (n_k ± sqrt(n/2 · ln(21/ε_sec)))`, likewise `m_k^±` for the errors
//!   (with `m = Σ m_k`).
//! - `τ_j = Σ_k p_k e^(−μ_k) μ_k^j / j!`, the probability that a pulse holds `j` photons.
//! - Vacuum events: `s_0 ≥ τ_0 (μ2 n_3^− − μ3 n_2^+) / (μ2 − μ3)`.
//! - Single-photon events: `s_1 ≥ μ1 τ_1 (n_2^− − n_3^+ − (μ2² − μ3²)/μ1² · (n_1^+ − s_0/τ_0))
//!   / (μ1(μ2 − μ3) − μ2² + μ3²)`.
//! - Single-photon errors in the test basis: `v_1 ≤ τ_1 (m_2^+ − m_3^−) / (μ2 − μ3)`.
//! - Phase error rate of the key basis' single-photon events, by sampling without replacement:
//!   `φ ≤ v_1/s_1^test + γ(ε_sec, v_1/s_1^test, s_1^test, s_1^key)` with
//!   `γ(a, b, c, d) = sqrt((c + d)(1 − b) b / (c d ln 2) · log2((c + d)/(c d (1 − b) b) · 21²/a²))`.
//! - The secure length: `ℓ = ⌊s_0 + s_1 − s_1 h(φ) − λ_EC − 6 log2(21/ε_sec) − log2(2/ε_cor)⌋`,
//!   where `λ_EC` counts every bit disclosed in reconciliation; the key is ε_sec-secret and
//!   ε_cor-correct, (ε_sec + ε_cor)-secure in all.

use crate::maths::entropy::h2;
use crate::{Error, Result};

/// Intensities and how often each is sent.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Decoys {
    /// `μ1 > μ2 + μ3`, `μ2 > μ3 ≥ 0`: mean photon numbers of signal, decoy, weak decoy.
    pub mu: [f64; 3],
    /// Probabilities of sending each intensity; they sum to 1.
    pub p: [f64; 3],
}

impl Decoys {
    /// Checks the paper's conditions on the intensities and that `p` is a distribution.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] naming the violated condition.
    pub fn validate(&self) -> Result<()> {
        let [m1, m2, m3] = self.mu;
        if !(m3 >= 0.0 && m2 > m3 && m1 > m2 + m3 && m1.is_finite()) {
            return Err(Error::argument("mu", format!("need mu1 > mu2 + mu3 and mu2 > mu3 >= 0, got {:?}", self.mu)));
        }
        let sum: f64 = self.p.iter().sum();
        if self.p.iter().any(|&q| !(q > 0.0 && q < 1.0)) || (sum - 1.0).abs() > 1e-9 {
            return Err(Error::argument(
                "p",
                format!("need three probabilities in (0, 1) summing to 1, got {:?}", self.p),
            ));
        }
        Ok(())
    }

    /// `τ_j`: the probability that a pulse holds `j` photons.
    pub fn tau(&self, j: i32) -> f64 {
        let factorial: f64 = (1..=j).map(f64::from).product();
        (0..3).map(|k| self.p[k] * (-self.mu[k]).exp() * self.mu[k].powi(j) / factorial).sum()
    }

    /// `(n_k^−, n_k^+)` for the counts `n` and failure probability `ε_sec`.
    fn bounds(&self, n: [u64; 3], eps_sec: f64) -> [(f64, f64); 3] {
        let total: u64 = n.iter().sum();
        let delta = (total as f64 / 2.0 * (21.0 / eps_sec).ln()).sqrt();
        std::array::from_fn(|k| {
            let scale = self.mu[k].exp() / self.p[k];
            (scale * (n[k] as f64 - delta), scale * (n[k] as f64 + delta))
        })
    }

    /// Lower bounds `(s_0, s_1)` on the vacuum and single-photon events among `n`.
    pub fn vacuum_and_single(&self, n: [u64; 3], eps_sec: f64) -> (f64, f64) {
        let [m1, m2, m3] = self.mu;
        let b = self.bounds(n, eps_sec);
        let (t0, t1) = (self.tau(0), self.tau(1));
        let s0 = (t0 * (m2 * b[2].0 - m3 * b[1].1) / (m2 - m3)).max(0.0);
        let s1 = m1 * t1 * (b[1].0 - b[2].1 - (m2 * m2 - m3 * m3) / (m1 * m1) * (b[0].1 - s0 / t0))
            / (m1 * (m2 - m3) - m2 * m2 + m3 * m3);
        (s0, s1.max(0.0))
    }

    /// Upper bound `v_1` on the single-photon errors among errors `m`.
    pub fn single_errors(&self, m: [u64; 3], eps_sec: f64) -> f64 {
        let b = self.bounds(m, eps_sec);
        (self.tau(1) * (b[1].1 - b[2].0) / (self.mu[1] - self.mu[2])).max(0.0)
    }
}

/// `γ(a, b, c, d)` of the sampling bound.
pub fn gamma(a: f64, b: f64, c: f64, d: f64) -> f64 {
    let inner = (c + d) / (c * d * (1.0 - b) * b) * (21.0 * 21.0) / (a * a);
    ((c + d) * (1.0 - b) * b / (c * d * std::f64::consts::LN_2) * inner.log2()).sqrt()
}

/// What a block's detections are: per intensity, key-basis events, test-basis events and
/// test-basis errors.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub key: [u64; 3],
    pub test: [u64; 3],
    pub test_errors: [u64; 3],
}

/// Every term of the bound, for the report.
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(
    feature = "python",
    pyo3::pyclass(frozen, get_all, eq, module = "qitcore.qkd", name = "SecureLength"),
    derive(serde::Serialize, serde::Deserialize)
)]
pub struct SecureLength {
    /// Lower bound on the vacuum events among the key-basis bits.
    pub s0: f64,
    /// Lower bound on the single-photon events among the key-basis bits.
    pub s1: f64,
    /// Lower bound on the single-photon events in the test basis.
    pub s1_test: f64,
    /// Upper bound on the single-photon errors in the test basis.
    pub v1_test: f64,
    /// Upper bound on the phase error rate of the key basis' single-photon events.
    pub phase_error: f64,
    /// `6 log2(21/ε_sec) + log2(2/ε_cor)`.
    pub penalty: f64,
    /// The secure length in bits (0 when the bound is not positive).
    pub length: u64,
}

/// The secure key length (Lim et al. Eq. (1)) from the counts and the reconciliation leakage.
///
/// # Errors
/// [`Error::InvalidArgument`] for bad intensities, or ε outside (0, 1).
pub fn secure_length(
    decoys: &Decoys,
    counts: &Counts,
    leaked: u64,
    eps_sec: f64,
    eps_cor: f64,
) -> Result<SecureLength> {
    decoys.validate()?;
    for (name, eps) in [("eps_sec", eps_sec), ("eps_cor", eps_cor)] {
        if !(eps > 0.0 && eps < 1.0) {
            return Err(Error::argument(name, format!("must lie in (0, 1), got {eps}")));
        }
    }
    let (s0, s1) = decoys.vacuum_and_single(counts.key, eps_sec);
    let (_, s1_test) = decoys.vacuum_and_single(counts.test, eps_sec);
    let v1_test = decoys.single_errors(counts.test_errors, eps_sec);
    let phase_error = if s1_test <= 0.0 || s1 <= 0.0 {
        0.5
    } else {
        let b = (v1_test / s1_test).min(0.5);
        if b <= 0.0 {
            // γ's formula needs 0 < b < 1; with no errors the bound at b → 0 is 0 (limit).
            0.0
        } else {
            (b + gamma(eps_sec, b, s1_test, s1)).min(0.5)
        }
    };
    let penalty = 6.0 * (21.0 / eps_sec).log2() + (2.0 / eps_cor).log2();
    let value = s0 + s1 - s1 * h2(phase_error) - leaked as f64 - penalty;
    let length = if value.is_finite() && value > 0.0 { value.floor() as u64 } else { 0 };
    Ok(SecureLength { s0, s1, s1_test, v1_test, phase_error, penalty, length })
}

#[cfg(test)]
mod tests {
    use super::*;

    const DECOYS: Decoys = Decoys { mu: [0.5, 0.1, 0.0002], p: [0.7, 0.2, 0.1] };

    /// Expected counts for `pulses` pulses over a channel of transmittance `eta` with dark count
    /// probability `pd` and misalignment `em`, in a basis chosen with probability `q` on each side.
    fn expected(pulses: f64, eta: f64, pd: f64, em: f64, q: f64) -> ([u64; 3], [u64; 3]) {
        let mut n = [0; 3];
        let mut m = [0; 3];
        for k in 0..3 {
            let yield_k = 1.0 - (1.0 - pd) * (-eta * DECOYS.mu[k]).exp();
            let errors_k = em * (1.0 - (-eta * DECOYS.mu[k]).exp()) + pd / 2.0;
            n[k] = (pulses * DECOYS.p[k] * q * q * yield_k) as u64;
            m[k] = (pulses * DECOYS.p[k] * q * q * errors_k) as u64;
        }
        (n, m)
    }

    #[test]
    fn tau_is_the_photon_number_distribution() {
        let total: f64 = (0..30).map(|j| DECOYS.tau(j)).sum();
        assert!((total - 1.0).abs() < 1e-12);
    }

    /// With many pulses the single-photon bound approaches the expected single-photon count
    /// (the decoy method is nearly tight with a weak decoy near vacuum) and never exceeds it.
    #[test]
    fn single_photon_bound_is_below_and_near_the_truth() {
        let (pulses, eta, pd) = (1e12, 0.1, 1e-7);
        let (n, _) = expected(pulses, eta, pd, 0.01, 0.9);
        let (s0, s1) = DECOYS.vacuum_and_single(n, 1e-10);
        // Truth: τ_1 · Y_1 with Y_1 = 1 − (1 − pd)(1 − η); τ_0 · pd.
        let true_s1 = pulses * 0.81 * DECOYS.tau(1) * (1.0 - (1.0 - pd) * (1.0 - eta));
        let true_s0 = pulses * 0.81 * DECOYS.tau(0) * pd;
        assert!(s1 < true_s1 && s1 > 0.97 * true_s1, "s1 {s1} vs {true_s1}");
        // The vacuum bound is loose (μ3·η dwarfs the dark counts here) but stays below the truth.
        assert!((0.0..true_s0).contains(&s0), "s0 {s0} vs {true_s0}");
    }

    #[test]
    fn length_grows_with_pulses_and_falls_with_loss() {
        let length = |pulses: f64, eta: f64| {
            let (key, _) = expected(pulses, eta, 1e-7, 0.01, 0.9);
            let (test, test_errors) = expected(pulses, eta, 1e-7, 0.01, 0.3);
            let counts = Counts { key, test, test_errors };
            let n: u64 = key.iter().sum();
            let leaked = (1.1 * n as f64 * h2(0.012)) as u64;
            secure_length(&DECOYS, &counts, leaked, 1e-10, 1e-15).unwrap().length
        };
        assert_eq!(length(1e5, 0.1), 0);
        let (a, b, c) = (length(1e8, 0.1), length(1e9, 0.1), length(1e9, 0.01));
        assert!(a > 0 && b > 10 * a && c < b / 5, "{a} {b} {c}");
    }

    #[test]
    fn bad_parameters_are_refused() {
        let counts = Counts::default();
        for mu in [[0.3, 0.2, 0.15], [0.5, 0.1, 0.1], [0.5, 0.1, -0.1]] {
            assert!(secure_length(&Decoys { mu, ..DECOYS }, &counts, 0, 1e-10, 1e-15).is_err());
        }
        assert!(secure_length(&Decoys { p: [0.5, 0.5, 0.5], ..DECOYS }, &counts, 0, 1e-10, 1e-15).is_err());
        assert!(secure_length(&DECOYS, &counts, 0, 0.0, 1e-15).is_err());
        assert!(secure_length(&DECOYS, &counts, 0, 1e-10, 1.5).is_err());
        assert_eq!(secure_length(&DECOYS, &counts, 0, 1e-10, 1e-15).unwrap().length, 0);
    }
}
