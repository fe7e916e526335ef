//! The syndrome `H·x` over GF(2) of a frame held one bit per byte: per base row, the XOR of each
//! circulant's rotated column block, which is two contiguous slices (a loop that vectorises).

use super::code::Code;

/// XORs column block `x` (z bytes) rotated by `shift` into `acc`: `acc[i] ^= x[(i + shift) % z]`.
#[inline]
pub(crate) fn xor_rotated(acc: &mut [u8], x: &[u8], shift: usize) {
    let z = acc.len();
    let (head, tail) = acc.split_at_mut(z - shift);
    for (a, b) in head.iter_mut().zip(&x[shift..]) {
        *a ^= b;
    }
    for (a, b) in tail.iter_mut().zip(&x[..shift]) {
        *a ^= b;
    }
}

/// Writes the syndrome of `x` (n bytes of 0/1) into `out` (m bytes of 0/1).
pub fn syndrome_into(code: &Code, x: &[u8], out: &mut [u8]) {
    debug_assert_eq!(x.len(), code.n());
    debug_assert_eq!(out.len(), code.m());
    let z = code.z;
    for (layer, acc) in code.layers.iter().zip(out.chunks_exact_mut(z)) {
        acc.fill(0);
        for b in layer {
            let col = b.col as usize * z;
            xor_rotated(acc, &x[col..col + z], b.shift as usize);
        }
    }
}

/// The syndrome of `x` (n bytes of 0/1), one byte per check.
pub fn syndrome(code: &Code, x: &[u8]) -> Vec<u8> {
    let mut out = vec![0; code.m()];
    syndrome_into(code, x, &mut out);
    out
}

/// The dense parity-check matrix, one byte per entry, row-major (tests and the GF(2) rank).
pub fn dense(code: &Code) -> Vec<Vec<u8>> {
    let (z, n) = (code.z, code.n());
    let mut h = vec![vec![0u8; n]; code.m()];
    for (r, layer) in code.layers.iter().enumerate() {
        for b in layer {
            for i in 0..z {
                h[r * z + i][b.col as usize * z + (i + b.shift as usize) % z] = 1;
            }
        }
    }
    h
}

#[cfg(test)]
mod tests {
    use super::super::code::{Code, Spec, SPECS};
    use super::*;
    use crate::maths::xoshiro::Xoshiro256;
    use proptest::prelude::*;

    fn naive(h: &[Vec<u8>], x: &[u8]) -> Vec<u8> {
        h.iter().map(|row| row.iter().zip(x).fold(0, |acc, (a, b)| acc ^ (a & b))).collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]
        #[test]
        fn syndrome_equals_the_dense_product(seed: u64, z in 16usize..40, rows in 3usize..6) {
            // One column of degree `rows`, the rest of degree 3 (the profile must be 'static).
            const PROFILES: [&[(usize, usize)]; 3] = [&[(3, 1)], &[(4, 1)], &[(5, 1)]];
            let spec = Spec { name: "t", cols: rows + 4, rows, z, profile: PROFILES[rows - 3], seed };
            let code = Code::build(&spec).unwrap();
            let mut rng = Xoshiro256::from_seed(seed);
            let x: Vec<u8> = (0..code.n()).map(|_| (rng.next_u64() & 1) as u8).collect();
            prop_assert_eq!(syndrome(&code, &x), naive(&dense(&code), &x));
        }
    }

    #[test]
    fn syndrome_of_a_shipped_code_equals_the_dense_product() {
        let code = Code::named(SPECS[SPECS.len() - 1].name).unwrap();
        let mut rng = Xoshiro256::from_seed(7);
        let x: Vec<u8> = (0..code.n()).map(|_| (rng.next_u64() & 1) as u8).collect();
        assert_eq!(syndrome(code, &x), naive(&dense(code), &x));
    }
}
