//! Bindings of the extractors: argument conversion, then the work with the GIL released.

use std::sync::atomic::AtomicBool;

use pyo3::prelude::*;
use pyo3::types::PyBytes;
use qitcore_core::bits::BitOrder;
use qitcore_core::extract::blocks::BlockHash;
use qitcore_core::extract::{self, Convention, HashFunction, ModifiedToeplitz, Toeplitz};

use crate::args::{self, flag, int, real, Int, Real};
use crate::buffers::{check_disjoint, Input, Output, DETACH_BYTES};
use crate::errors::{detach, guard, until, Error, Result};

fn order_name(order: BitOrder) -> &'static str {
    match order {
        BitOrder::Big => "big",
        BitOrder::Little => "little",
    }
}

/// Runs `work` on `bytes.len()` bytes of input with the GIL released when it is large.
fn maybe_detach<T: Send>(py: Python<'_>, size: usize, work: impl FnOnce() -> T + Send) -> Result<T> {
    if size >= DETACH_BYTES {
        detach(py, work)
    } else {
        guard(work)
    }
}

/// Writes `len` bytes through `fill` into `out` (checked writable, contiguous, disjoint from
/// `input`) and returns `out`, or into new bytes.
fn emit<'py>(
    py: Python<'py>,
    input: &[u8],
    out: Option<&Bound<'py, PyAny>>,
    len: usize,
    fill: impl Fn(&mut [u8]) -> Result<()>,
) -> Result<Bound<'py, PyAny>> {
    match out {
        Some(obj) => {
            let mut output = Output::get("out", obj)?;
            let target = output.bytes_mut();
            check_disjoint(input, target)?;
            if let Err(e) = fill(target) {
                // Stopped part way (Ctrl-C): no partial output is left in the caller's buffer.
                zeroize::Zeroize::zeroize(target);
                return Err(e);
            }
            Ok(obj.clone())
        }
        None => {
            // Written in place in the new bytes object: a buffer beside it would cost its own page
            // faults, a copy and a zeroizing pass, as much as hashing a stream. A failed fill
            // zeroizes what it wrote (privacy amplification's output is a key) and drops it.
            let mut failure = None;
            let bytes = PyBytes::new_with(py, len, |target| {
                if let Err(e) = fill(target) {
                    zeroize::Zeroize::zeroize(target);
                    failure = Some(e);
                }
                Ok(())
            })
            .map_err(|_| Error::out_of_memory("out", len))?;
            match failure {
                Some(e) => Err(e),
                None => Ok(bytes.into_any()),
            }
        }
    }
}

/// Work at least this large (input bytes, or a block's) answers Ctrl-C (block hashes between
/// groups of blocks, conditioning hashes every megabyte, von Neumann every 4 Mbit): it takes
/// milliseconds or more, against the tens of microseconds of the thread that watches for signals
/// meanwhile.
const UNTIL_BYTES: usize = 1 << 20;

/// Runs `work` (a core `…_until` function) on `size` bytes: under [`until`] from
/// [`UNTIL_BYTES`], else as [`maybe_detach`] does with a flag nobody sets.
fn maybe_until<T: Send>(
    py: Python<'_>,
    size: usize,
    work: impl FnOnce(&AtomicBool) -> qitcore_core::Result<Option<T>> + Send,
) -> Result<T> {
    if size >= UNTIL_BYTES {
        return until(py, work);
    }
    maybe_detach(py, size, || work(&AtomicBool::new(false)))??
        .ok_or_else(|| Error::Internal("stopped with no stop asked".into()))
}

/// `hash(data, nbits=None, out=None)` of any block hash.
fn hash_blocks<'py, H: BlockHash>(
    py: Python<'py>,
    hash: &H,
    data: &Bound<'py, PyAny>,
    nbits: Option<Int<usize>>,
    out: Option<&Bound<'py, PyAny>>,
) -> Result<Bound<'py, PyAny>> {
    let nbits = nbits.map(|n| n.0);
    let input = Input::get(py, "data", data)?;
    let bytes = input.bytes();
    let blocks = hash.count_blocks(bytes, nbits)?;
    let size = bytes.len().max(hash.n() / 8);
    emit(py, bytes, out, hash.output_bytes(blocks), |target| {
        maybe_until(py, size, |stop| hash.hash_until(bytes, nbits, target, stop))?;
        Ok(())
    })
}

fn seed_input(py: Python<'_>, seed: Option<&Bound<'_, PyAny>>) -> Result<Option<Input>> {
    seed.map(|obj| Input::get(py, "seed", obj)).transpose()
}

/// Defines a Python class around a core [`BlockHash`] with the same methods for every kind.
macro_rules! block_hash_class {
    ($class:ident, $name:literal, $core:ty) => {
        #[doc = concat!("`", $name, "` hashing from `n` to `m` bits with a fixed seed, over any number of blocks.")]
        #[pyclass(frozen, module = "qitcore._core", name = $name)]
        pub struct $class {
            inner: $core,
        }

        #[pymethods]
        impl $class {
            #[new]
            #[pyo3(signature = (n, m, seed=None, bitorder=BitOrder::Big))]
            fn new(
                py: Python<'_>,
                #[pyo3(from_py_with = int::<usize>)] n: usize,
                #[pyo3(from_py_with = int::<usize>)] m: usize,
                seed: Option<&Bound<'_, PyAny>>,
                #[pyo3(from_py_with = args::choice)] bitorder: BitOrder,
            ) -> Result<Self> {
                let order = bitorder;
                let seed = seed_input(py, seed)?;
                let inner = match &seed {
                    Some(seed) => {
                        let bytes = seed.bytes();
                        maybe_detach(py, n / 8, || <$core>::new(n, m, bytes, order))??
                    }
                    None => maybe_detach(py, n / 8, || <$core>::random(n, m, order))??,
                };
                Ok($class { inner })
            }

            #[getter]
            fn n(&self) -> usize {
                self.inner.n()
            }

            #[getter]
            fn m(&self) -> usize {
                self.inner.m()
            }

            #[getter]
            fn seed_bits(&self) -> usize {
                BlockHash::seed_bits(&self.inner)
            }

            #[getter]
            fn bitorder(&self) -> &'static str {
                order_name(self.inner.order())
            }

            fn seed_bytes<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
                PyBytes::new(py, self.inner.seed_bytes().expose())
            }

            fn output_bytes(&self, #[pyo3(from_py_with = int::<usize>)] blocks: usize) -> Result<usize> {
                blocks
                    .checked_mul(self.inner.m())
                    .map(|_| self.inner.output_bytes(blocks))
                    .ok_or_else(|| Error::argument("blocks", format!("{blocks} blocks overflow a size")))
            }

            #[pyo3(signature = (data, nbits=None, out=None))]
            fn hash<'py>(
                &self,
                py: Python<'py>,
                data: &Bound<'py, PyAny>,
                nbits: Option<Int<usize>>,
                out: Option<&Bound<'py, PyAny>>,
            ) -> Result<Bound<'py, PyAny>> {
                hash_blocks(py, &self.inner, data, nbits, out)
            }

            fn __repr__(&self) -> String {
                format!(
                    "{}(n={}, m={}, bitorder='{}', seed=<hidden>)",
                    $name,
                    self.inner.n(),
                    self.inner.m(),
                    self.bitorder()
                )
            }
        }
    };
}

block_hash_class!(PyToeplitz, "Toeplitz", Toeplitz);
block_hash_class!(PyModifiedToeplitz, "ModifiedToeplitz", ModifiedToeplitz);

/// Von Neumann debiasing: `(packed output, output bits)`.
#[pyfunction]
#[pyo3(signature = (data, nbits=None, bitorder=BitOrder::Big))]
pub fn von_neumann<'py>(
    py: Python<'py>,
    data: &Bound<'py, PyAny>,
    nbits: Option<Int<usize>>,
    #[pyo3(from_py_with = args::choice)] bitorder: BitOrder,
) -> Result<(Bound<'py, PyBytes>, usize)> {
    let nbits = nbits.map(|n| n.0);
    let order = bitorder;
    let input = Input::get(py, "data", data)?;
    let bytes = input.bytes();
    let (out, count) = maybe_until(py, bytes.len(), |stop| extract::von_neumann_until(bytes, nbits, order, stop))?;
    Ok((PyBytes::new(py, &out), count))
}

/// SHA-256 or SHA3-256 of every `block_bytes`-byte block, concatenated.
#[pyfunction]
#[pyo3(signature = (function, data, block_bytes, out=None))]
pub fn hash_condition<'py>(
    py: Python<'py>,
    #[pyo3(from_py_with = args::choice)] function: HashFunction,
    data: &Bound<'py, PyAny>,
    #[pyo3(from_py_with = int::<usize>)] block_bytes: usize,
    out: Option<&Bound<'py, PyAny>>,
) -> Result<Bound<'py, PyAny>> {
    let input = Input::get(py, "data", data)?;
    let bytes = input.bytes();
    let len = bytes.len().checked_div(block_bytes).unwrap_or(0) * extract::hash_conditioning::DIGEST_BYTES;
    emit(py, bytes, out, len, |target| {
        maybe_until(py, bytes.len(), |stop| extract::condition_until(function, bytes, block_bytes, target, stop))?;
        Ok(())
    })
}

/// The leftover-hash-lemma output length in bits.
#[pyfunction]
#[pyo3(signature = (n, entropy, eps, convention=Convention::Tssr))]
pub fn output_length(
    #[pyo3(from_py_with = int::<usize>)] n: usize,
    #[pyo3(from_py_with = real)] entropy: f64,
    #[pyo3(from_py_with = real)] eps: f64,
    #[pyo3(from_py_with = args::choice)] convention: Convention,
) -> Result<usize> {
    Ok(guard(|| extract::output_length(n, entropy, eps, convention))??)
}

/// SP 800-90B §3.1.5.1.2 Output_Entropy.
#[pyfunction]
pub fn output_entropy(
    #[pyo3(from_py_with = int::<usize>)] n_in: usize,
    #[pyo3(from_py_with = int::<usize>)] n_out: usize,
    #[pyo3(from_py_with = int::<usize>)] nw: usize,
    #[pyo3(from_py_with = real)] h_in: f64,
) -> Result<f64> {
    Ok(guard(|| extract::output_entropy(n_in, n_out, nw, h_in))??)
}

/// SP 800-90B §3.1.5.1.2 entropy of a conditioned output (vetted or not).
#[pyfunction]
#[pyo3(signature = (n_in, n_out, nw, h_in, vetted, h_prime=None))]
pub fn conditioned_entropy(
    #[pyo3(from_py_with = int::<usize>)] n_in: usize,
    #[pyo3(from_py_with = int::<usize>)] n_out: usize,
    #[pyo3(from_py_with = int::<usize>)] nw: usize,
    #[pyo3(from_py_with = real)] h_in: f64,
    #[pyo3(from_py_with = flag)] vetted: bool,
    h_prime: Option<Real>,
) -> Result<f64> {
    let h_prime = h_prime.map(|h| h.0);
    Ok(guard(|| extract::conditioned_entropy(n_in, n_out, nw, h_in, vetted, h_prime))??)
}
