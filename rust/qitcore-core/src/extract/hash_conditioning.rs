//! Conditioning with the vetted hash functions of NIST SP 800-90B §3.1.5.1.1: each block of the
//! input is replaced by its SHA-256 or SHA3-256 digest (256 bits).

use rayon::prelude::*;
use sha2::{Digest, Sha256};
use sha3::Sha3_256;

use crate::error::{Error, Result};

/// A vetted conditioning hash.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HashFunction {
    /// SHA-256 (FIPS 180-4).
    Sha256,
    /// SHA3-256 (FIPS 202).
    Sha3_256,
}

/// Digest length in bytes of both functions.
pub const DIGEST_BYTES: usize = 32;

crate::choice::named_choices!(HashFunction, "function", [Sha256 = "sha256", Sha3_256 = "sha3-256"]);

impl HashFunction {
    fn digest(self, block: &[u8], out: &mut [u8]) {
        match self {
            HashFunction::Sha256 => out.copy_from_slice(&Sha256::digest(block)),
            HashFunction::Sha3_256 => out.copy_from_slice(&Sha3_256::digest(block)),
        }
    }
}

/// Hashes each `block_bytes`-byte block of `input` into 32 bytes of `output`, in parallel.
/// Returns the number of blocks.
///
/// # Errors
/// [`Error::InvalidArgument`] naming `block_bytes` when it is 0; [`Error::InvalidLength`] naming
/// `data` for a partial block or `out` for an output of the wrong size. Nothing is written then.
pub fn condition(function: HashFunction, input: &[u8], block_bytes: usize, output: &mut [u8]) -> Result<usize> {
    if block_bytes == 0 {
        return Err(Error::argument("block_bytes", "must be at least 1 byte, got 0"));
    }
    if !input.len().is_multiple_of(block_bytes) {
        return Err(Error::length(
            "data",
            format!("expected a whole number of {block_bytes}-byte blocks, got {} bytes", input.len()),
        ));
    }
    let blocks = input.len() / block_bytes;
    if output.len() != blocks * DIGEST_BYTES {
        return Err(Error::length(
            "out",
            format!("expected a buffer of {} bytes, got {} bytes", blocks * DIGEST_BYTES, output.len()),
        ));
    }
    output
        .par_chunks_mut(DIGEST_BYTES)
        .zip(input.par_chunks(block_bytes))
        .with_min_len((1 << 16) / block_bytes + 1)
        .for_each(|(out, block)| function.digest(block, out));
    Ok(blocks)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn fips_test_vectors_for_abc() {
        // FIPS 180-2 and FIPS 202 example digests of "abc".
        let mut out = [0u8; 32];
        condition(HashFunction::Sha256, b"abc", 3, &mut out).unwrap();
        assert_eq!(hex(&out), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        condition(HashFunction::Sha3_256, b"abc", 3, &mut out).unwrap();
        assert_eq!(hex(&out), "3a985da74fe225b2045c172d6bd390bd855f086e3e9d525b46bfe24511431532");
    }

    #[test]
    fn blocks_are_hashed_separately_and_in_order() {
        let input: Vec<u8> = (0..64 * 5).map(|i: u32| (i * 37 % 256) as u8).collect();
        let mut out = vec![0u8; 5 * 32];
        assert_eq!(condition(HashFunction::Sha256, &input, 64, &mut out).unwrap(), 5);
        for (k, chunk) in out.chunks(32).enumerate() {
            assert_eq!(chunk, Sha256::digest(&input[64 * k..64 * (k + 1)]).as_slice());
        }
    }

    #[test]
    fn partial_blocks_are_refused() {
        let mut out = [0u8; 32];
        assert!(matches!(
            condition(HashFunction::Sha256, &[0; 65], 64, &mut out),
            Err(Error::InvalidLength { name: "data", .. })
        ));
        assert!(matches!(
            condition(HashFunction::Sha256, &[0; 64], 0, &mut out),
            Err(Error::InvalidArgument { name: "block_bytes", .. })
        ));
        assert!(matches!("md5".parse::<HashFunction>(), Err(Error::InvalidArgument { name: "function", .. })));
    }
}
