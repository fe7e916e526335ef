//! SP 800-90B §6.3.3: the Markov estimate (binary data only): the most likely 128-bit sequence
//! under a first-order Markov model fitted to the data.

use crate::entropy::estimate::{Estimate, View};

/// Transition probabilities, then `H = min(−log2 P(most likely 128-bit path) / 128, 1)`.
pub fn markov(s: &[u8], view: View) -> Estimate {
    let mut e = Estimate::new("Markov", view);
    let len = s.len();
    if len < 2 {
        return e.skipped("too few samples for the Markov estimate");
    }
    let (mut c0, mut c00, mut c10) = (0u64, 0u64, 0u64);
    for w in s.windows(2) {
        if w[0] == 0 {
            c0 += 1;
            if w[1] == 0 {
                c00 += 1;
            }
        } else if w[1] == 0 {
            c10 += 1;
        }
    }
    let c1 = (len as u64 - 1) - c0;
    let (p00, p01) = if c0 > 0 { (c00 as f64 / c0 as f64, 1.0 - c00 as f64 / c0 as f64) } else { (0.0, 0.0) };
    let (p10, p11) = if c1 > 0 { (c10 as f64 / c1 as f64, 1.0 - c10 as f64 / c1 as f64) } else { (0.0, 0.0) };
    if s[len - 1] == 0 {
        c0 += 1;
    }
    let p0 = c0 as f64 / len as f64;
    let p1 = 1.0 - p0;
    e.real("P_0", p0)
        .real("P_1", p1)
        .real("P_{0,0}", p00)
        .real("P_{0,1}", p01)
        .real("P_{1,0}", p10)
        .real("P_{1,1}", p11);
    // The six candidate paths of SP 800-90B §6.3.3, each −log2 of its probability.
    let mut h_min = 128.0f64;
    let mut consider = |ok: bool, v: f64| {
        if ok && v < h_min {
            h_min = v;
        }
    };
    consider(p00 > 0.0, -p0.log2() - 127.0 * p00.log2());
    consider(p01 > 0.0 && p10 > 0.0, -p0.log2() - 64.0 * p01.log2() - 63.0 * p10.log2());
    consider(p01 > 0.0 && p11 > 0.0, -p0.log2() - p01.log2() - 126.0 * p11.log2());
    consider(p10 > 0.0 && p00 > 0.0, -p1.log2() - p10.log2() - 126.0 * p00.log2());
    consider(p10 > 0.0 && p01 > 0.0, -p1.log2() - 64.0 * p10.log2() - 63.0 * p01.log2());
    consider(p11 > 0.0, -p1.log2() - 127.0 * p11.log2());
    e.real("p-hat_max", (-h_min).exp2());
    e.finish((h_min / 128.0).min(1.0))
}
