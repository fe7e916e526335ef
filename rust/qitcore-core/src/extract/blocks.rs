//! Batches of fixed-size blocks: validating the input's length, and running a per-block function
//! over every block in parallel, from packed bytes to packed bytes.
//!
//! Tasks take a multiple of eight blocks, so that each task's input and output start on a byte
//! boundary whatever the block sizes and no two tasks write the same byte.

use std::sync::atomic::{AtomicBool, Ordering};

use rayon::prelude::*;
use zeroize::Zeroizing;

use super::packing::{bytes_to_words, words_to_bytes};
use crate::bits::{bytes_for, load_bits, store_bits, words_for, BitOrder};
use crate::error::{unstopped, Error, Result};
// Word buffers as large as a block or a seed (up to 2^32 bits): on huge pages, where calloc's
// fresh 4 KiB pages cost a fault each (tens of milliseconds of a 2^27-bit hash).
use crate::gf2::wipe::{scratch as words_buffer, Wiped};
use crate::secret::SecretBytes;

/// What every seeded block hash has: its sizes, bit order and seed.
pub struct Shape {
    n: usize,
    m: usize,
    order: BitOrder,
    seed_bits: usize,
    /// The seed as given, as a polynomial of `seed_bits` coefficients.
    seed: Wiped,
}

impl Shape {
    /// Checks `1 <= m <= n <= MAX_BITS` and that `seed` packs `seed_bits` bits (`formula` names
    /// the length in the error), and loads it.
    pub(crate) fn load(
        n: usize,
        m: usize,
        order: BitOrder,
        seed: &[u8],
        seed_bits: usize,
        formula: &str,
    ) -> Result<Self> {
        check_sizes(n, m)?;
        if seed.len() != bytes_for(seed_bits) {
            return Err(Error::length(
                "seed",
                format!(
                    "expected {} bytes ({seed_bits} bits = {formula}), got {} bytes",
                    bytes_for(seed_bits),
                    seed.len()
                ),
            ));
        }
        let mut words = words_buffer(words_for(seed_bits));
        load_bits(seed, 0, seed_bits, order, &mut words);
        Ok(Shape { n, m, order, seed_bits, seed: words })
    }

    /// The seed as a polynomial.
    pub(crate) fn seed_words(&self) -> &[u64] {
        &self.seed
    }
}

/// Checks `1 <= m <= n <= MAX_BITS`.
///
/// # Errors
/// [`Error::InvalidArgument`] naming `n` or `m`.
pub fn check_sizes(n: usize, m: usize) -> Result<()> {
    check_size("n", n)?;
    check_size("m", m)?;
    if m > n {
        return Err(Error::argument(
            "m",
            format!("output length must not exceed the input length n = {n}, got m = {m}"),
        ));
    }
    Ok(())
}

/// A seeded hash from `n`-bit blocks to `m`-bit blocks, applied to any number of blocks.
pub trait BlockHash: Sync {
    /// The sizes, bit order and seed.
    fn shape(&self) -> &Shape;

    /// Hashes one block (a polynomial of `n` coefficients) into `y` (`m` coefficients, zeroed);
    /// `scratch` is the caller's buffer, reused between blocks.
    fn hash_words(&self, x: &[u64], y: &mut [u64], scratch: &mut Vec<u64>);

    /// Input bits per block.
    fn n(&self) -> usize {
        self.shape().n
    }

    /// Output bits per block.
    fn m(&self) -> usize {
        self.shape().m
    }

    /// The bit order of seed, input and output.
    fn order(&self) -> BitOrder {
        self.shape().order
    }

    /// The seed's length in bits.
    fn seed_bits(&self) -> usize {
        self.shape().seed_bits
    }

    /// The seed, packed as it was given (pad bits zero). It is the key to the hash.
    fn seed_bytes(&self) -> SecretBytes {
        let shape = self.shape();
        let mut out = vec![0u8; bytes_for(shape.seed_bits)];
        store_bits(&shape.seed, shape.seed_bits, shape.order, &mut out, 0);
        SecretBytes::new(out)
    }

    /// The number of output bytes for `blocks` blocks.
    fn output_bytes(&self, blocks: usize) -> usize {
        bytes_for(blocks * self.m())
    }

    /// The number of blocks in `input`, checked as for [`BlockHash::hash`].
    ///
    /// # Errors
    /// As [`count_blocks`].
    fn count_blocks(&self, input: &[u8], nbits: Option<usize>) -> Result<usize> {
        count_blocks(input, nbits, self.n())
    }

    /// Hashes every `n`-bit block of `input` (of which `nbits` bits are used; all when `None`) and
    /// packs the `m`-bit outputs one after another into `output`, which must be
    /// `output_bytes(blocks)` long. Blocks are hashed in parallel. Returns the number of blocks.
    ///
    /// # Errors
    /// [`Error::InvalidLength`] naming `data` for a partial block or `out` for an output buffer of
    /// the wrong size; nothing is written then.
    fn hash(&self, input: &[u8], nbits: Option<usize>, output: &mut [u8]) -> Result<usize> {
        unstopped(|stop| self.hash_until(input, nbits, output, stop))
    }

    /// As [`BlockHash::hash`], giving up (`None`) soon after `stop` is set: each parallel task
    /// looks at it before each group of blocks. What was written of `output` by then is left
    /// there for the caller to wipe.
    ///
    /// # Errors
    /// As [`BlockHash::hash`].
    fn hash_until(
        &self,
        input: &[u8],
        nbits: Option<usize>,
        output: &mut [u8],
        stop: &AtomicBool,
    ) -> Result<Option<usize>> {
        let blocks = self.count_blocks(input, nbits)?;
        let expected = self.output_bytes(blocks);
        if output.len() != expected {
            return Err(Error::length(
                "out",
                format!("expected a buffer of {expected} bytes, got {} bytes", output.len()),
            ));
        }
        let done = for_each_block(input, self.n(), self.m(), blocks, self.order(), output, stop, |x, y, scratch| {
            self.hash_words(x, y, scratch)
        });
        Ok(done.then_some(blocks))
    }
}

/// The largest block this crate accepts, in bits (512 MiB; 16 times the largest privacy
/// amplification block in use, and small enough that its work fits in memory).
pub const MAX_BITS: usize = 1 << 32;

/// Checks a size argument: `1 <= value <= MAX_BITS`.
pub(crate) fn check_size(name: &'static str, value: usize) -> Result<()> {
    if value == 0 {
        return Err(Error::argument(name, "must be at least 1 bit, got 0"));
    }
    if value > MAX_BITS {
        return Err(Error::argument(name, format!("must be at most 2^32 bits, got {value}")));
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

/// Input bytes converted at once for whole-word blocks.
const GROUP_BYTES: usize = 8 << 10;

/// Blocks per parallel task: a multiple of 8, about 64 KiB of input.
fn blocks_per_task(n: usize) -> usize {
    8 * ((1usize << 19) / (8 * n)).max(1)
}

/// Runs `f(x, y, scratch)` for each of `blocks` blocks: `x` holds the block's `n` input bits as a
/// polynomial, `f` writes the `m` output bits into `y` (zeroed beforehand), `scratch` is the task's
/// own buffer for `f` to use. The outputs are packed one after another into `output`, which must
/// be `bytes_for(blocks * m)` bytes long and is overwritten. Each task looks at `stop` before each
/// group of blocks (whole-word blocks) or block and gives up once it is set; returns whether every
/// block was hashed.
#[allow(clippy::too_many_arguments)]
pub(crate) fn for_each_block<F>(
    input: &[u8],
    n: usize,
    m: usize,
    blocks: usize,
    order: BitOrder,
    output: &mut [u8],
    stop: &AtomicBool,
    f: F,
) -> bool
where
    F: Fn(&[u64], &mut [u64], &mut Vec<u64>) + Sync,
{
    debug_assert_eq!(output.len(), bytes_for(blocks * m));
    let per_task = blocks_per_task(n);
    let out_bytes_per_task = per_task * m / 8;
    let in_bytes_per_task = per_task * n / 8;
    let run_task = |task: usize, out: &mut [u8]| {
        let first = task * per_task;
        let count = per_task.min(blocks - first);
        let inp = &input[task * in_bytes_per_task..];
        let mut scratch = Zeroizing::new(Vec::new());
        if n.is_multiple_of(64) && m.is_multiple_of(64) {
            // Whole-word blocks: the bytes of a group of blocks convert in one wide pass each way
            // (no shifts, no tails, one call per group), groups small enough to stay in the
            // first-level cache between the conversion and the products.
            let (nw, mw) = (n / 64, m / 64);
            let group = (GROUP_BYTES / (n / 8)).max(1);
            let mut xs = words_buffer(group * nw);
            let mut ys = words_buffer(group * mw);
            for (src, dst) in inp[..count * n / 8].chunks(group * n / 8).zip(out.chunks_mut(group * m / 8)) {
                if stop.load(Ordering::Relaxed) {
                    return;
                }
                let (xs, ys) = (&mut xs[..src.len() / 8], &mut ys[..dst.len() / 8]);
                bytes_to_words(src, order, xs);
                ys.fill(0);
                for (x, y) in xs.chunks_exact(nw).zip(ys.chunks_exact_mut(mw)) {
                    f(x, y, &mut scratch);
                }
                words_to_bytes(ys, order, dst);
            }
            return;
        }
        out.fill(0);
        let mut x = words_buffer(words_for(n));
        let mut y = words_buffer(words_for(m));
        for k in 0..count {
            if stop.load(Ordering::Relaxed) {
                return;
            }
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
    !stop.load(Ordering::Relaxed)
}
