//! Extractor parameters: how many bits may be extracted, and how much entropy a conditioned
//! output carries.
//!
//! **Leftover hash lemma.** Two-universal hashing (Toeplitz, modified Toeplitz) of a source with
//! min-entropy `k` bits, conditioned on the adversary's side information `E`, to `ℓ` bits gives an
//! output ε-close to uniform and independent of `E`, where ε is the trace distance
//! `½‖ρ_{YSE} − ω_Y ⊗ ρ_{SE}‖₁` (`S` the seed), if
//! `ℓ ≤ k − 2·log2(1/ε) + 2` (Tomamichel, Schaffner, Smith, Renner, IEEE Trans. Inf. Theory 57(8),
//! 2011, arXiv:1002.2436, Eq. (1) and Lemma 1). The bound has the same form against classical and
//! against quantum side information; only the meaning of `k` changes (`H_min(X|E)` of a
//! classical-quantum state in the quantum case), so the two differ in the entropy the caller
//! supplies, not in the formula. This is randextract's `calculate_length`; cryptomite uses
//! `⌊k + 2·log2 ε⌋`, two bits fewer, which [`Convention::Cryptomite`] reproduces.
//!
//! **SP 800-90B §3.1.5.1.2.** [`output_entropy`] is the standard's `Output_Entropy(n_in, n_out,
//! nw, h_in)`; [`conditioned_entropy`] applies the caps for vetted and non-vetted conditioning.

use crate::error::{Error, Result};

/// Which published form of the leftover-hash-lemma length to use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Convention {
    /// `⌊k − 2·log2(1/ε) + 2⌋` (Tomamichel et al. 2011; randextract).
    Tssr,
    /// `⌊k + 2·log2 ε⌋` (cryptomite), two bits more conservative.
    Cryptomite,
}

crate::choice::named_choices!(Convention, "convention", [Tssr = "tssr", Cryptomite = "cryptomite"]);

fn check_epsilon(eps: f64) -> Result<()> {
    if !(eps > 0.0 && eps < 1.0) {
        return Err(Error::argument("eps", format!("must lie in the open interval (0, 1), got {eps}")));
    }
    Ok(())
}

/// The largest output length (bits) for `n` input bits carrying `entropy` bits of min-entropy,
/// at distance ε from uniform; never more than `⌊entropy⌋`, never negative.
///
/// # Errors
/// [`Error::InvalidArgument`] naming `n` (zero), `min_entropy` (outside `(0, n]`) or `eps`
/// (outside `(0, 1)`).
pub fn output_length(n: usize, entropy: f64, eps: f64, convention: Convention) -> Result<usize> {
    if n == 0 {
        return Err(Error::argument("n", "must be at least 1 bit, got 0"));
    }
    if !(entropy > 0.0 && entropy <= n as f64) {
        return Err(Error::argument("min_entropy", format!("must lie in (0, n] = (0, {n}] bits, got {entropy}")));
    }
    check_epsilon(eps)?;
    let length = match convention {
        Convention::Tssr => entropy - 2.0 * (1.0 / eps).log2() + 2.0,
        Convention::Cryptomite => entropy + 2.0 * eps.log2(),
    };
    // The same floating-point operations as randextract, so the two agree to the bit.
    Ok(length.floor().clamp(0.0, entropy.floor()) as usize)
}

/// `log2(2^a + 2^b)` without overflow.
fn log2_add(a: f64, b: f64) -> f64 {
    let (hi, lo) = if a >= b { (a, b) } else { (b, a) };
    if lo == f64::NEG_INFINITY {
        return hi;
    }
    hi + (1.0 + (lo - hi).exp2()).log2()
}

/// SP 800-90B §3.1.5.1.2 `Output_Entropy(n_in, n_out, nw, h_in)` in bits, computed in the log
/// domain so that inputs of thousands of bits do not overflow:
/// `P_high = 2^−h_in`, `P_low = (1 − P_high)/(2^n_in − 1)`, `n = min(n_out, nw)`,
/// `ψ = 2^(n_in − n)·P_low + P_high`, `U = 2^(n_in − n) + sqrt(2n·2^(n_in − n)·ln 2)`,
/// `ω = U·P_low`, result `−log2 max(ψ, ω)`.
///
/// # Errors
/// [`Error::InvalidArgument`] naming the argument: sizes of zero, or `h_in` outside `[0, n_in]`.
pub fn output_entropy(n_in: usize, n_out: usize, nw: usize, h_in: f64) -> Result<f64> {
    for (name, v) in [("n_in", n_in), ("n_out", n_out), ("nw", nw)] {
        if v == 0 {
            return Err(Error::argument(name, "must be at least 1 bit, got 0"));
        }
    }
    if !(0.0..=n_in as f64).contains(&h_in) {
        return Err(Error::argument("h_in", format!("must lie in [0, n_in] = [0, {n_in}] bits, got {h_in}")));
    }
    let n = n_out.min(nw) as f64;
    let n_in = n_in as f64;
    let log_p_high = -h_in;
    // log2(1 − 2^−h_in) and log2(2^n_in − 1), each exact for small and large arguments.
    let log_one_minus_p_high = if h_in == 0.0 { f64::NEG_INFINITY } else { (-(-h_in).exp2()).ln_1p() / 2f64.ln() };
    let log_range = n_in + (-(-n_in).exp2()).ln_1p() / 2f64.ln();
    let log_p_low = log_one_minus_p_high - log_range;
    let spread = n_in - n; // log2 of 2^(n_in − n)
    let log_psi = log2_add(spread + log_p_low, log_p_high);
    // log2 U = spread + log2(1 + sqrt(2n·ln2 / 2^spread))
    let log_u = spread + (1.0 + (2.0 * n * 2f64.ln() * (-spread).exp2()).sqrt()).log2();
    let log_omega = log_u + log_p_low;
    Ok(-log_psi.max(log_omega))
}

/// The entropy credited to a conditioned output of `n_out` bits (SP 800-90B §3.1.5.1.2):
/// vetted: `min(Output_Entropy, 0.999·n_out)`; non-vetted (Toeplitz hashing is not on the vetted
/// list): `min(Output_Entropy, 0.999·n_out, h′·n_out)` with `h′` the per-bit entropy assessed on
/// the conditioned output.
///
/// # Errors
/// As [`output_entropy`]; [`Error::InvalidArgument`] naming `h_prime` when it is missing for a
/// non-vetted function or outside `[0, 1]`.
pub fn conditioned_entropy(
    n_in: usize,
    n_out: usize,
    nw: usize,
    h_in: f64,
    vetted: bool,
    h_prime: Option<f64>,
) -> Result<f64> {
    let base = output_entropy(n_in, n_out, nw, h_in)?.min(0.999 * n_out as f64);
    if vetted {
        return Ok(base);
    }
    match h_prime {
        Some(h) if (0.0..=1.0).contains(&h) => Ok(base.min(h * n_out as f64)),
        Some(h) => Err(Error::argument("h_prime", format!("must lie in [0, 1] bits per bit, got {h}"))),
        None => Err(Error::argument(
            "h_prime",
            "a non-vetted conditioner needs h_prime, the assessed entropy per output bit",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn randextract_documentation_examples() {
        // randextract's examples for n = 1000 at ε = 1e-9, 1e-6, 1e-3.
        for (k, expect) in [(0.5, [442, 462, 482]), (0.7, [642, 662, 682]), (0.9, [842, 862, 882])] {
            for (eps, want) in [1e-9, 1e-6, 1e-3].into_iter().zip(expect) {
                assert_eq!(output_length(1000, k * 1000.0, eps, Convention::Tssr).unwrap(), want, "k={k} ε={eps}");
                assert_eq!(output_length(1000, k * 1000.0, eps, Convention::Cryptomite).unwrap(), want - 2);
            }
        }
    }

    #[test]
    fn conventions_are_named_as_users_write_them() {
        assert_eq!("tssr".parse(), Ok(Convention::Tssr));
        assert_eq!("cryptomite".parse(), Ok(Convention::Cryptomite));
        let err = "TSSR".parse::<Convention>().unwrap_err();
        assert_eq!(err.to_string(), r#"convention: expected one of "tssr", "cryptomite", got "TSSR""#);
    }

    #[test]
    fn lengths_are_capped_and_never_negative() {
        assert_eq!(output_length(100, 1.0, 1e-9, Convention::Tssr).unwrap(), 0);
        assert_eq!(output_length(100, 100.0, 0.5, Convention::Tssr).unwrap(), 100);
        for (n, h, eps, name) in [
            (0, 1.0, 0.1, "n"),
            (10, 0.0, 0.1, "min_entropy"),
            (10, 11.0, 0.1, "min_entropy"),
            (10, 5.0, 1.0, "eps"),
            (10, 5.0, 0.0, "eps"),
            (10, f64::NAN, 0.1, "min_entropy"),
        ] {
            match output_length(n, h, eps, Convention::Tssr) {
                Err(Error::InvalidArgument { name: got, .. }) => assert_eq!(got, name),
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn nist_ea_conditioning_examples() {
        // NIST's ea_conditioning: `-v 256 256 256 256` prints 251.6898, `-n 1024 768 768 900 0.998`
        // prints 766.464.
        let vetted = conditioned_entropy(256, 256, 256, 256.0, true, None).unwrap();
        assert!((vetted - 251.6898).abs() < 5e-5, "{vetted}");
        let non_vetted = conditioned_entropy(1024, 768, 768, 900.0, false, Some(0.998)).unwrap();
        assert!((non_vetted - 766.464).abs() < 5e-4, "{non_vetted}");
    }

    #[test]
    fn output_entropy_matches_direct_evaluation_where_floats_suffice() {
        // The formula evaluated naively in f64 for small sizes.
        for (n_in, n_out, nw, h_in) in
            [(8usize, 4usize, 8usize, 3.5f64), (16, 16, 16, 12.0), (20, 8, 6, 19.0), (10, 10, 10, 0.5)]
        {
            let p_high = (-h_in).exp2();
            let p_low = (1.0 - p_high) / ((n_in as f64).exp2() - 1.0);
            let n = n_out.min(nw) as f64;
            let spread = (n_in as f64 - n).exp2();
            let psi = spread * p_low + p_high;
            let u = spread + (2.0 * n * spread * 2f64.ln()).sqrt();
            let direct = -(psi.max(u * p_low)).log2();
            let ours = output_entropy(n_in, n_out, nw, h_in).unwrap();
            assert!((ours - direct).abs() < 1e-9, "{n_in} {n_out} {nw} {h_in}: {ours} vs {direct}");
        }
        assert!(matches!(
            conditioned_entropy(8, 8, 8, 4.0, false, None),
            Err(Error::InvalidArgument { name: "h_prime", .. })
        ));
    }
}
