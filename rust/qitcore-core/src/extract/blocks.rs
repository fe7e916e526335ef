//! Batches of fixed-size blocks: validating the input's length, and running a per-block function
//! over every block in parallel, from packed bytes to packed bytes.
//!
//! Tasks take a multiple of eight blocks, so that each task's input and output start on a byte
//! boundary whatever the block sizes and no two tasks write the same byte.

use rayon::prelude::*;
use zeroize::Zeroizing;

use crate::bits::{bytes_for, load_bits, store_bits, words_for, BitOrder};
use crate::error::{Error, Result};

/// The largest block, seed or input this crate accepts, in bits (8 GiB).
pub const MAX_BITS: usize = 1 << 36;

/// Checks a size argument: `1 <= value <= MAX_BITS`.
pub(crate) fn check_size(name: &'static str, value: usize) -> Result<()> {
    if value == 0 {
        return Err(Error::argument(name, "must be at least 1 bit, got 0"));
    }
    if value > MAX_BITS {
        return Err(Error::argument(name, format!("must be at most 2^36 bits, got {value}")));
    }
    Ok(())
}

/// The number of `n`-bit blocks in `input`, of which `nbits` bits are used (all of it when
/// `None`).
///
/// # Errors
/// [`Error::InvalidLength`] naming `data` when the bits are not a whole number of blocks or do not
/// match the buffer's length; [`Error::InvalidArgument`] naming `nbits` when it exceeds the buffer.
pub fn count_blocks(input: &[u8], nbits: Option<usize>, n: usize) -> Result<usize> {
    let available = input.len().checked_mul(8).ok_or_else(|| Error::length("data", "buffer too large"))?;
    let nbits = match nbits {
        None => available,
        Some(bits) if bits > available => {
            return Err(Error::argument("nbits", format!("{bits} bits asked of a buffer of {available} bits")));
        }
        Some(bits) if bytes_for(bits) != input.len() => {
            return Err(Error::length(
                "data",
                format!("{bits} bits fill {} bytes, but the buffer has {} bytes", bytes_for(bits), input.len()),
            ));
        }
        Some(bits) => bits,
    };
    if nbits % n != 0 {
        return Err(Error::length(
            "data",
            format!(
                "expected a whole number of {n}-bit blocks, got {nbits} bits ({} blocks and {} bits)",
                nbits / n,
                nbits % n
            ),
        ));
    }
    Ok(nbits / n)
}

/// Blocks per parallel task: a multiple of 8, about 64 KiB of input.
fn blocks_per_task(n: usize) -> usize {
    8 * ((1usize << 19) / (8 * n)).max(1)
}

/// Runs `f(x, y, scratch)` for each of `blocks` blocks: `x` holds the block's `n` input bits as a
/// polynomial, `f` writes the `m` output bits into `y` (zeroed beforehand), `scratch` is the task's
/// own buffer for `f` to use. The outputs are packed one after another into `output`, which must
/// be `bytes_for(blocks * m)` bytes long and is overwritten.
pub(crate) fn for_each_block<F>(
    input: &[u8],
    n: usize,
    m: usize,
    blocks: usize,
    order: BitOrder,
    output: &mut [u8],
    f: F,
) where
    F: Fn(&[u64], &mut [u64], &mut Vec<u64>) + Sync,
{
    debug_assert_eq!(output.len(), bytes_for(blocks * m));
    let per_task = blocks_per_task(n);
    let out_bytes_per_task = per_task * m / 8;
    let in_bytes_per_task = per_task * n / 8;
    let run_task = |task: usize, out: &mut [u8]| {
        out.fill(0);
        let first = task * per_task;
        let count = per_task.min(blocks - first);
        let inp = &input[task * in_bytes_per_task..];
        let mut x = Zeroizing::new(vec![0u64; words_for(n)]);
        let mut y = Zeroizing::new(vec![0u64; words_for(m)]);
        let mut scratch = Zeroizing::new(Vec::new());
        for k in 0..count {
            load_bits(inp, k * n, n, order, &mut x);
            y.fill(0);
            f(&x, &mut y, &mut scratch);
            store_bits(&y, m, order, out, k * m);
        }
    };
    if blocks <= per_task {
        run_task(0, output);
    } else {
        output.par_chunks_mut(out_bytes_per_task).enumerate().for_each(|(task, out)| run_task(task, out));
    }
}
