//! numpy's `bitgen_t` interface over a stream, so that `numpy.random.Generator` draws from a
//! QRNG stream. numpy calls these functions from C with no way to return an error: when the
//! stream fails, the Python exception is set (numpy's call then raises it, as a `SystemError`
//! caused by it) and the values returned are a fixed, never random, sequence that only serves to
//! let numpy's rejection loops end. They never reach Python.

use std::ffi::c_void;
use std::sync::Arc;

use pyo3::prelude::*;
use pyo3::types::PyCapsule;
use qitcore_core::pipeline::Stream;

use crate::stream::{read_error, PyStream};

/// numpy's `bitgen_t`, field for field.
#[repr(C)]
struct BitGen {
    state: *mut c_void,
    next_uint64: unsafe extern "C" fn(*mut c_void) -> u64,
    next_uint32: unsafe extern "C" fn(*mut c_void) -> u32,
    next_double: unsafe extern "C" fn(*mut c_void) -> f64,
    next_raw: unsafe extern "C" fn(*mut c_void) -> u64,
}

/// The capsule owns the state through `state`; numpy only reads the struct.
struct OwnedBitGen(BitGen);

// SAFETY: `state` points to a `State`, which is `Send`; numpy serialises calls with the bit
// generator's lock.
unsafe impl Send for OwnedBitGen {}

struct State {
    stream: Arc<Stream>,
    buf: Vec<u8>,
    pos: usize,
    spare: Option<u32>,
    failed: bool,
    filler: u64,
}

const CHUNK: usize = 4096;

impl State {
    fn next(&mut self) -> u64 {
        if self.pos + 8 > self.buf.len() && !self.refill() {
            // splitmix64 of a counter: varied, so rejection loops end; never returned to Python.
            self.filler = self.filler.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = self.filler;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            return z ^ (z >> 31);
        }
        let v = u64::from_le_bytes(self.buf[self.pos..self.pos + 8].try_into().expect("eight bytes"));
        self.pos += 8;
        v
    }

    /// Tops the buffer up to at least 8 bytes, reading with the GIL released; on failure sets
    /// the Python error once. A short read before a failure still delivers its bytes.
    fn refill(&mut self) -> bool {
        if self.failed {
            return false;
        }
        let mut buf = self.buf.split_off(self.pos);
        self.pos = 0;
        let stream = Arc::clone(&self.stream);
        while buf.len() < 8 {
            let result = Python::attach(|py| {
                let r = py.detach(|| stream.read(CHUNK, None));
                match r {
                    Ok(b) if !b.is_empty() => Ok(b),
                    Ok(_) => Err(crate::errors::DeviceDisconnected::new_err("stream ended while numpy drew from it")),
                    Err(e) => Err(read_error(e)),
                }
                .map_err(|e| e.restore(py))
            });
            match result {
                Ok(b) => buf.extend_from_slice(&b),
                Err(()) => {
                    self.failed = true;
                    return false;
                }
            }
        }
        self.buf = buf;
        true
    }
}

unsafe extern "C" fn next_uint64(st: *mut c_void) -> u64 {
    // SAFETY: numpy passes back the `state` pointer of the capsule, a live `State`.
    let state = unsafe { &mut *st.cast::<State>() };
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| state.next())).unwrap_or_else(|_| std::process::abort())
}

unsafe extern "C" fn next_uint32(st: *mut c_void) -> u32 {
    // SAFETY: as in `next_uint64`.
    let state = unsafe { &mut *st.cast::<State>() };
    if let Some(v) = state.spare.take() {
        return v;
    }
    let v = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| state.next()))
        .unwrap_or_else(|_| std::process::abort());
    state.spare = Some((v >> 32) as u32);
    v as u32
}

unsafe extern "C" fn next_double(st: *mut c_void) -> f64 {
    // SAFETY: as in `next_uint64`. 53 random bits scaled to [0, 1), as numpy's own generators do.
    (unsafe { next_uint64(st) } >> 11) as f64 * (1.0 / 9_007_199_254_740_992.0)
}

/// The `bitgen_t` capsule numpy's `Generator` needs, drawing from `stream`.
#[pyfunction]
pub fn bitgen_capsule<'py>(py: Python<'py>, stream: &Bound<'py, PyStream>) -> PyResult<Bound<'py, PyCapsule>> {
    let state = Box::new(State {
        stream: stream.get().shared(),
        buf: Vec::new(),
        pos: 0,
        spare: None,
        failed: false,
        filler: 0,
    });
    let bitgen = OwnedBitGen(BitGen {
        state: Box::into_raw(state).cast(),
        next_uint64,
        next_uint32,
        next_double,
        next_raw: next_uint64,
    });
    PyCapsule::new_with_value_and_destructor(py, bitgen, c"BitGenerator", |bitgen: OwnedBitGen, _| {
        // SAFETY: `state` came from `Box::into_raw` above and is freed once, here.
        drop(unsafe { Box::from_raw(bitgen.0.state.cast::<State>()) });
    })
}
