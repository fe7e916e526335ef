//! Bindings of the extractors: argument conversion, then the work with the GIL released.

use pyo3::prelude::*;
use pyo3::types::PyBytes;
use qitcore_core::bits::BitOrder;
use qitcore_core::extract::Toeplitz;

use crate::buffers::{check_disjoint, Input, Output, DETACH_BYTES};
use crate::errors::IntoPy;

fn order_name(order: BitOrder) -> &'static str {
    match order {
        BitOrder::Big => "big",
        BitOrder::Little => "little",
    }
}

/// Toeplitz hashing from `n` to `m` bits with a fixed seed, over any number of blocks.
#[pyclass(frozen, module = "qitcore._core", name = "Toeplitz")]
pub struct PyToeplitz {
    inner: Toeplitz,
}

#[pymethods]
impl PyToeplitz {
    #[new]
    #[pyo3(signature = (n, m, seed=None, bitorder="big"))]
    fn new(py: Python<'_>, n: usize, m: usize, seed: Option<&Bound<'_, PyAny>>, bitorder: &str) -> PyResult<Self> {
        let order = BitOrder::parse(bitorder).py_err()?;
        let inner = match seed {
            Some(obj) => {
                let seed = Input::get(py, "seed", obj)?;
                let bytes = seed.bytes();
                py.detach(|| Toeplitz::new(n, m, bytes, order)).py_err()?
            }
            None => py.detach(|| Toeplitz::random(n, m, order)).py_err()?,
        };
        Ok(PyToeplitz { inner })
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
        Toeplitz::seed_bits(self.inner.n(), self.inner.m())
    }

    #[getter]
    fn bitorder(&self) -> &'static str {
        order_name(self.inner.order())
    }

    fn seed_bytes<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, self.inner.seed_bytes().expose())
    }

    fn output_bytes(&self, blocks: usize) -> usize {
        self.inner.output_bytes(blocks)
    }

    #[pyo3(signature = (data, nbits=None, out=None))]
    fn hash<'py>(
        &self,
        py: Python<'py>,
        data: &Bound<'py, PyAny>,
        nbits: Option<usize>,
        out: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let input = Input::get(py, "data", data)?;
        let bytes = input.bytes();
        let blocks = self.inner.count_blocks(bytes, nbits).py_err()?;
        let work = |output: &mut [u8]| -> PyResult<()> {
            if bytes.len() >= DETACH_BYTES || self.inner.n() >= 8 * DETACH_BYTES {
                py.detach(|| self.inner.hash(bytes, nbits, output)).py_err()?;
            } else {
                self.inner.hash(bytes, nbits, output).py_err()?;
            }
            Ok(())
        };
        match out {
            Some(obj) => {
                let mut output = Output::get("out", obj)?;
                let target = output.bytes_mut();
                check_disjoint(bytes, target)?;
                work(target)?;
                Ok(obj.clone())
            }
            None => {
                let mut result = zeroize::Zeroizing::new(vec![0u8; self.inner.output_bytes(blocks)]);
                work(&mut result)?;
                Ok(PyBytes::new(py, &result).into_any())
            }
        }
    }

    fn __repr__(&self) -> String {
        format!("Toeplitz(n={}, m={}, bitorder='{}', seed=<hidden>)", self.inner.n(), self.inner.m(), self.bitorder())
    }
}
