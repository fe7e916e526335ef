//! Buffer-protocol arguments: any bytes-like object of unsigned bytes as input (zero-copy when
//! C-contiguous), and writable C-contiguous buffers as output. `str` and other element types are
//! refused with an `InvalidTypeError` that names the argument.

use pyo3::buffer::PyBuffer;
use pyo3::prelude::*;
use pyo3::types::PyString;

use crate::errors::{Error, Result};

const EXPECTED: &str = "a bytes-like object of unsigned bytes (bytes, bytearray, memoryview, numpy uint8 array)";

fn type_name(obj: &Bound<'_, PyAny>) -> String {
    obj.get_type().name().map(|n| n.to_string()).unwrap_or_else(|_| "object".into())
}

fn acquire(name: &str, obj: &Bound<'_, PyAny>) -> Result<PyBuffer<u8>> {
    if obj.is_instance_of::<PyString>() {
        return Err(Error::Type(format!("{name}: expected {EXPECTED}, got str (encode it first)")));
    }
    PyBuffer::<u8>::get(obj).map_err(|_| {
        let detail = match obj.getattr("dtype") {
            Ok(dtype) => format!("{} of dtype {}", type_name(obj), dtype),
            Err(_) => type_name(obj),
        };
        Error::Type(format!("{name}: expected {EXPECTED}, got {detail}"))
    })
}

/// A read-only view of an input buffer; strided buffers are copied once.
pub struct Input {
    buffer: PyBuffer<u8>,
    copy: Option<Vec<u8>>,
}

impl Input {
    /// Acquires `obj`'s buffer.
    pub fn get(py: Python<'_>, name: &str, obj: &Bound<'_, PyAny>) -> Result<Self> {
        let buffer = acquire(name, obj)?;
        let copy = if buffer.is_c_contiguous() {
            None
        } else {
            // A strided view may span far more than it holds (numpy's broadcast_to: one byte seen
            // as 2^40): the copy's allocation is tried, never assumed (a failed one would abort).
            let n = buffer.item_count();
            let mut copy = Vec::new();
            copy.try_reserve_exact(n).map_err(|_| Error::out_of_memory("a strided input's copy", n))?;
            copy.resize(n, 0);
            buffer.copy_to_slice(py, &mut copy)?;
            Some(copy)
        };
        Ok(Input { buffer, copy })
    }

    /// The bytes.
    pub fn bytes(&self) -> &[u8] {
        if let Some(copy) = &self.copy {
            return copy;
        }
        match self.buffer.as_slice_ptr() {
            // SAFETY: the exporter keeps the memory alive and unmoved while `self.buffer` holds the
            // export; the bytes are only read, and every value is a valid u8. As with hashlib, a
            // mutable exporter written to by another thread meanwhile yields unspecified bytes.
            Some(ptr) => unsafe { ptr.as_ref() },
            None => &[],
        }
    }
}

/// A writable, C-contiguous output buffer.
pub struct Output {
    buffer: PyBuffer<u8>,
}

impl Output {
    /// Acquires `obj`'s buffer and checks that it is writable and C-contiguous.
    pub fn get(name: &str, obj: &Bound<'_, PyAny>) -> Result<Self> {
        let buffer = acquire(name, obj)?;
        if buffer.readonly() {
            return Err(Error::Type(format!(
                "{name}: expected a writable buffer (bytearray, numpy array), got read-only {}",
                type_name(obj)
            )));
        }
        if !buffer.is_c_contiguous() {
            return Err(Error::Type(format!(
                "{name}: expected a C-contiguous buffer, got a strided {}",
                type_name(obj)
            )));
        }
        Ok(Output { buffer })
    }

    /// The bytes, to be overwritten.
    pub fn bytes_mut(&mut self) -> &mut [u8] {
        match self.buffer.as_slice_ptr() {
            // SAFETY: the buffer is writable and C-contiguous (checked in `get`), the exporter keeps
            // it alive while the export is held, and `&mut self` makes this the only Rust view.
            Some(mut ptr) => unsafe { ptr.as_mut() },
            None => &mut [],
        }
    }
}

/// Work on at least this many bytes runs with the GIL released (as hashlib does from 2 KiB).
pub const DETACH_BYTES: usize = 2048;

/// Refuses an output that shares memory with an input (the result would depend on the order of
/// the work, and Rust may not alias them).
pub fn check_disjoint(input: &[u8], output: &[u8]) -> Result<()> {
    let (a, b) = (input.as_ptr_range(), output.as_ptr_range());
    if !input.is_empty() && !output.is_empty() && a.start < b.end && b.start < a.end {
        return Err(Error::argument("out", "must not share memory with data"));
    }
    Ok(())
}
