//! A slow, independent reference: flooding sum-product decoding in f64 over the dense parity-check
//! matrix (tanh rule), used by the tests to check the fast fixed-point decoder.

use super::code::Code;
use super::syndrome::dense;

/// Decodes channel LLRs `llr` (positive means 0) against syndrome `s`; `Some(word)` when a word
/// with that syndrome is found within `max_iterations`.
pub fn sum_product(code: &Code, llr: &[f64], s: &[u8], max_iterations: u32) -> Option<Vec<u8>> {
    let h = dense(code);
    let rows: Vec<Vec<usize>> = h.iter().map(|row| (0..row.len()).filter(|&v| row[v] == 1).collect()).collect();
    // Messages per (check, position in row).
    let mut c2v: Vec<Vec<f64>> = rows.iter().map(|r| vec![0.0; r.len()]).collect();
    for _ in 0..max_iterations {
        let mut total = llr.to_vec();
        for (r, vars) in rows.iter().enumerate() {
            for (k, &v) in vars.iter().enumerate() {
                total[v] += c2v[r][k];
            }
        }
        let word: Vec<u8> = total.iter().map(|&l| u8::from(l < 0.0)).collect();
        let ok = rows.iter().zip(s).all(|(vars, &sb)| vars.iter().fold(sb, |acc, &v| acc ^ word[v]) == 0);
        if ok {
            return Some(word);
        }
        for (r, vars) in rows.iter().enumerate() {
            let v2c: Vec<f64> = vars.iter().enumerate().map(|(k, &v)| total[v] - c2v[r][k]).collect();
            for (k, out) in c2v[r].iter_mut().enumerate() {
                let mut prod = if s[r] == 1 { -1.0 } else { 1.0 };
                for (k2, &m) in v2c.iter().enumerate() {
                    if k2 != k {
                        prod *= (m / 2.0).tanh();
                    }
                }
                let prod: f64 = prod.clamp(-0.999_999_999_999, 0.999_999_999_999);
                *out = 2.0 * prod.atanh();
            }
        }
    }
    None
}
