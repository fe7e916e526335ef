//! SP 800-90B §6.3.4: the compression estimate (binary data only): Maurer's universal statistic
//! over 6-bit blocks, inverted for the most likely symbol probability.

use crate::entropy::estimate::{Estimate, View};
use crate::entropy::stats::{bisect_decreasing, Kahan, OnFailure, Z_ALPHA};

const BLOCK_BITS: usize = 6;
const DICTIONARY_BLOCKS: usize = 1000;

/// `G(z)` of SP 800-90B §6.3.4 step 7, summed with compensation until the terms underflow.
fn g(z: f64, d: usize, blocks: usize) -> f64 {
    let v = (blocks - d) as f64;
    let b_term = 1.0 - z;
    let mut b = b_term;
    let mut a = Kahan::default();
    for i in 2..=d {
        a.add((i as f64).log2() * b);
        b *= b_term;
    }
    let a_d1 = a.value();
    let mut first = Kahan::default();
    let mut truncated = false;
    for i in d + 1..blocks {
        let ai = (i as f64).log2() * b;
        a.add(ai);
        let scaled = (blocks - i) as f64 * ai;
        // NIST keeps B_i in extended precision and stops when a term rounds to zero as a double;
        // in f64, B_i would stick at the smallest subnormal instead, so stop when it turns
        // subnormal (the terms left are below 1e-300 of the sum).
        if scaled > 0.0 && b >= f64::MIN_POSITIVE {
            first.add(scaled);
        } else {
            truncated = true;
            break;
        }
        b *= b_term;
    }
    first.add((blocks - d) as f64 * a_d1);
    if !truncated {
        a.add((blocks as f64).log2() * b);
    }
    1.0 / v * z * (z * first.value() + (a.value() - a_d1))
}

/// The expected statistic for most likely probability `p` and the rest spread evenly.
fn expected(p: f64, alphabet: usize, d: usize, blocks: usize) -> f64 {
    let q = (1.0 - p) / (alphabet as f64 - 1.0);
    g(p, d, blocks) + (alphabet as f64 - 1.0) * g(q, d, blocks)
}

/// The compression estimate on a bit string.
pub fn compression(s: &[u8], view: View) -> Estimate {
    let mut e = Estimate::new("Compression", view);
    let alphabet = 1usize << BLOCK_BITS;
    let d = DICTIONARY_BLOCKS;
    let blocks = s.len() / BLOCK_BITS;
    if blocks <= d {
        return e.skipped(format!("not enough samples to run the compression estimate (need more than {d} blocks)"));
    }
    let block =
        |i: usize| s[i * BLOCK_BITS..(i + 1) * BLOCK_BITS].iter().fold(0usize, |acc, &b| (acc << 1) | (b & 1) as usize);
    let mut dict = vec![0usize; alphabet];
    for i in 0..d {
        dict[block(i)] = i + 1;
    }
    let v = (blocks - d) as f64;
    let (mut x, mut sq) = (Kahan::default(), Kahan::default());
    for i in d..blocks {
        let b = block(i);
        let l = ((i + 1 - dict[b]) as f64).log2();
        x.add(l);
        sq.add(l * l);
        dict[b] = i + 1;
    }
    let x_bar = x.value() / v;
    let sigma = 0.5907 * (sq.value() / (v - 1.0) - x_bar * x_bar).sqrt();
    let x_prime = x_bar - Z_ALPHA * sigma / v.sqrt();
    e.real("X-bar", x_bar).real("sigma-hat", sigma).real("X-bar'", x_prime);
    let low = 1.0 / alphabet as f64;
    let p = if expected(low, alphabet, d, blocks) > x_prime {
        bisect_decreasing(|p| expected(p, alphabet, d, blocks), x_prime, low, 1.0, OnFailure::Low)
    } else {
        -1.0
    };
    if p > low {
        e.real("p", p);
        e.finish(-p.log2() / BLOCK_BITS as f64)
    } else {
        e.real("p", low);
        e.note = Some("could not find p; proceeding with the lower bound for p".into());
        e.finish(1.0)
    }
}
