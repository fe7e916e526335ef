//! QDP/1 in Python: CRC-32C, frame encoding, the decoder and the payload parsers, for device
//! drivers, tests and tools. Parsed payloads are the core's classes.

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList};
use qitcore_core::frame::messages::{Info, Reply, Status};
use qitcore_core::frame::{crc32c as crc, encode, BitOrder, Decoder, DecoderStats, Event, Packing, SampleFormat};

use std::sync::Mutex;

use crate::args::{self, int};
use crate::buffers::Input;
use crate::errors::Result;

/// A decoder event with its payload copied, to outlive the decoder's lock.
enum Owned {
    Frame(u8, u32, Vec<u8>),
    Gap(u32, u32, u32),
    Replay(u32, u32),
    Version(u8),
}

/// CRC-32C of `data`.
#[pyfunction]
pub fn crc32c(py: Python<'_>, data: &Bound<'_, PyAny>) -> Result<u32> {
    let input = Input::get(py, "data", data)?;
    Ok(crc::crc32c(input.bytes()))
}

/// The frame `(kind, sequence, payload)` as bytes.
#[pyfunction]
pub fn encode_frame<'py>(
    py: Python<'py>,
    #[pyo3(from_py_with = int::<u8>)] kind: u8,
    #[pyo3(from_py_with = int::<u32>)] sequence: u32,
    payload: &Bound<'py, PyAny>,
) -> Result<Bound<'py, PyBytes>> {
    let input = Input::get(py, "payload", payload)?;
    let mut out = Vec::new();
    encode(kind, sequence, input.bytes(), &mut out)?;
    Ok(PyBytes::new(py, &out))
}

/// The 8-byte sample format descriptor.
#[pyfunction]
#[pyo3(signature = (bits_per_sample, packing=Packing::Aligned, bitorder=BitOrder::MsbFirst, rate=0))]
pub fn format_descriptor<'py>(
    py: Python<'py>,
    #[pyo3(from_py_with = int::<u8>)] bits_per_sample: u8,
    #[pyo3(from_py_with = args::choice)] packing: Packing,
    #[pyo3(from_py_with = args::choice)] bitorder: BitOrder,
    #[pyo3(from_py_with = int::<u32>)] rate: u32,
) -> Result<Bound<'py, PyBytes>> {
    Ok(PyBytes::new(py, &SampleFormat::new(bits_per_sample, packing, bitorder, rate)?.to_bytes()))
}

/// A sample format descriptor.
#[pyfunction]
pub fn parse_format(py: Python<'_>, data: &Bound<'_, PyAny>) -> Result<SampleFormat> {
    let input = Input::get(py, "data", data)?;
    Ok(SampleFormat::from_bytes(input.bytes())?)
}

/// A status block.
#[pyfunction]
pub fn parse_status(py: Python<'_>, data: &Bound<'_, PyAny>) -> Result<Status> {
    let input = Input::get(py, "data", data)?;
    Ok(Status::parse(input.bytes())?)
}

/// An info block.
#[pyfunction]
pub fn parse_info(py: Python<'_>, data: &Bound<'_, PyAny>) -> Result<Info> {
    let input = Input::get(py, "data", data)?;
    Ok(Info::parse(input.bytes())?)
}

/// A REPLY payload (`code`, `tag`, `result`, `data`).
#[pyfunction]
pub fn parse_reply(py: Python<'_>, data: &Bound<'_, PyAny>) -> Result<Reply> {
    let input = Input::get(py, "data", data)?;
    Ok(Reply::parse(input.bytes())?)
}

/// The resynchronising QDP/1 frame decoder. Its lock is only ever taken with the GIL held and
/// never kept across a release of it, so threads sharing a decoder cannot deadlock.
#[pyclass(frozen, module = "qitcore._core", name = "FrameDecoder")]
pub struct PyFrameDecoder {
    decoder: Mutex<Decoder>,
}

#[pymethods]
impl PyFrameDecoder {
    #[new]
    fn new() -> Self {
        PyFrameDecoder { decoder: Mutex::new(Decoder::new()) }
    }

    /// Feeds bytes; returns the events they complete, in order: `("frame", kind, sequence,
    /// payload)`, `("gap", expected, received, lost)`, `("replay", last, received)` (a frame whose
    /// number does not advance: its payload is withheld) or `("version", version)`.
    fn feed<'py>(&self, py: Python<'py>, data: &Bound<'py, PyAny>) -> Result<Bound<'py, PyList>> {
        let input = Input::get(py, "data", data)?;
        // The events are copied out under the lock and made Python objects after it is released:
        // making objects can run Python code (a collection, a finalizer) that feeds this decoder
        // again or waits on another thread that does.
        let mut owned = Vec::new();
        self.decoder.lock().unwrap_or_else(|p| p.into_inner()).feed(input.bytes(), |e| {
            owned.push(match e {
                Event::Frame { kind, sequence, payload } => Owned::Frame(kind, sequence, payload.to_vec()),
                Event::Gap { expected, received, lost } => Owned::Gap(expected, received, lost),
                Event::Replay { last, received } => Owned::Replay(last, received),
                Event::Version { version } => Owned::Version(version),
            })
        });
        let events = PyList::empty(py);
        for e in owned {
            let item = match e {
                Owned::Frame(kind, sequence, payload) => {
                    ("frame", kind, sequence, PyBytes::new(py, &payload)).into_pyobject(py)?.into_any()
                }
                Owned::Gap(expected, received, lost) => ("gap", expected, received, lost).into_pyobject(py)?.into_any(),
                Owned::Replay(last, received) => ("replay", last, received).into_pyobject(py)?.into_any(),
                Owned::Version(version) => ("version", version).into_pyobject(py)?.into_any(),
            };
            events.append(item)?;
        }
        Ok(events)
    }

    /// Counts: bytes, frames, crc_errors, garbage_bytes, gaps, frames_lost, replays.
    fn stats(&self) -> DecoderStats {
        self.decoder.lock().unwrap_or_else(|p| p.into_inner()).stats()
    }

    /// Bytes held back as the possible start of a frame.
    #[getter]
    fn buffered(&self) -> usize {
        self.decoder.lock().unwrap_or_else(|p| p.into_inner()).buffered()
    }
}
