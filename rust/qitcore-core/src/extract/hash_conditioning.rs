//! Conditioning with the vetted hash functions of NIST SP 800-90B §3.1.5.1.1: each block of the
//! input is replaced by its SHA-256 or SHA3-256 digest (256 bits).

use std::sync::atomic::{AtomicBool, Ordering};

use rayon::prelude::*;
use sha2::{Digest, Sha256};
use sha3::Sha3_256;

use crate::error::{unstopped, Error, Result};

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

/// Bytes a digest takes in between looks at its stop flag (a millisecond or so).
const STOP_BYTES: usize = 1 << 20;

impl HashFunction {
    /// The digest of `block` into `out`, unless `stop` is set before it is done (false then).
    fn digest_until(self, block: &[u8], out: &mut [u8], stop: &AtomicBool) -> bool {
        fn run<D: Digest>(block: &[u8], out: &mut [u8], stop: &AtomicBool) -> bool {
            let mut state = D::new();
            for chunk in block.chunks(STOP_BYTES) {
                if stop.load(Ordering::Relaxed) {
                    return false;
                }
                state.update(chunk);
            }
            out.copy_from_slice(&state.finalize());
            true
        }
        match self {
            HashFunction::Sha256 => run::<Sha256>(block, out, stop),
            HashFunction::Sha3_256 => run::<Sha3_256>(block, out, stop),
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
    unstopped(|stop| condition_until(function, input, block_bytes, output, stop))
}

/// As [`condition`], giving up (`None`) soon after `stop` is set: each block's digest looks at it
/// every megabyte. What was written of `output` by then is left there for the caller to wipe.
///
/// # Errors
/// As [`condition`].
pub fn condition_until(
    function: HashFunction,
    input: &[u8],
    block_bytes: usize,
    output: &mut [u8],
    stop: &AtomicBool,
) -> Result<Option<usize>> {
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
        .for_each(|(out, block)| {
            function.digest_until(block, out, stop);
        });
    Ok((!stop.load(Ordering::Relaxed)).then_some(blocks))
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

    /// `condition_until` with its flag never set is `condition` (a block of several stop
    /// chunks included); with it set, it gives up, after its argument checks.
    #[test]
    fn a_stopped_condition_gives_up_and_an_unstopped_one_is_condition() {
        let input: Vec<u8> = (0..3 * STOP_BYTES + 17).map(|i| (i * 37 % 256) as u8).collect();
        for function in [HashFunction::Sha256, HashFunction::Sha3_256] {
            for block in [input.len(), 17] {
                let blocks = input.len() / block;
                let (mut plain, mut until) = (vec![0u8; blocks * 32], vec![0u8; blocks * 32]);
                condition(function, &input[..blocks * block], block, &mut plain).unwrap();
                let never = AtomicBool::new(false);
                let got = condition_until(function, &input[..blocks * block], block, &mut until, &never).unwrap();
                assert_eq!((got, &until), (Some(blocks), &plain));
                let stopped = AtomicBool::new(true);
                assert_eq!(
                    condition_until(function, &input[..blocks * block], block, &mut until, &stopped).unwrap(),
                    None
                );
            }
            let stopped = AtomicBool::new(true);
            assert!(condition_until(function, &input, 0, &mut [], &stopped).is_err());
        }
        // The whole input as one block digests as the hash crates do it in one call.
        let mut one = [0u8; 32];
        condition(HashFunction::Sha256, &input, input.len(), &mut one).unwrap();
        assert_eq!(one.as_slice(), Sha256::digest(&input).as_slice());
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
