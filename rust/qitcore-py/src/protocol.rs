//! QDP/1 in Python: CRC-32C, frame encoding, the decoder and the payload parsers, for device
//! drivers, tests and tools.

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList};
use qitcore_core::frame::messages::{Info, Reply, Status};
use qitcore_core::frame::{crc32c as crc, encode, BitOrder, Decoder, Event, Packing, SampleFormat};

use std::sync::Mutex;

use crate::args::{self, int};
use crate::buffers::Input;
use crate::errors::{Error, Result};

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

pub fn format_from(bits: u8, packing: &str, bitorder: &str, rate: u32) -> Result<SampleFormat> {
    let packing = match packing {
        "packed" => Packing::Packed,
        "aligned" => Packing::Aligned,
        other => {
            return Err(Error::argument("packing", format!("expected \"packed\" or \"aligned\", got {other:?}")))
        }
    };
    let order = match bitorder {
        "big" => BitOrder::MsbFirst,
        "little" => BitOrder::LsbFirst,
        other => {
            return Err(Error::argument("bitorder", format!("expected \"big\" or \"little\", got {other:?}")))
        }
    };
    Ok(SampleFormat::new(bits, packing, order, rate)?)
}

pub fn format_dict<'py>(py: Python<'py>, f: &SampleFormat) -> Result<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("bits_per_sample", f.bits)?;
    d.set_item("packing", if f.packing == Packing::Packed { "packed" } else { "aligned" })?;
    d.set_item("bitorder", if f.bit_order == BitOrder::MsbFirst { "big" } else { "little" })?;
    d.set_item("rate", f.rate)?;
    Ok(d)
}

/// The 8-byte sample format descriptor.
#[pyfunction]
#[pyo3(signature = (bits_per_sample, packing="aligned", bitorder="big", rate=0))]
pub fn format_descriptor<'py>(
    py: Python<'py>,
    #[pyo3(from_py_with = int::<u8>)] bits_per_sample: u8,
    #[pyo3(from_py_with = args::packing)] packing: &'static str,
    #[pyo3(from_py_with = args::bitorder)] bitorder: &'static str,
    #[pyo3(from_py_with = int::<u32>)] rate: u32,
) -> Result<Bound<'py, PyBytes>> {
    Ok(PyBytes::new(py, &format_from(bits_per_sample, packing, bitorder, rate)?.to_bytes()))
}

/// A sample format descriptor as a dictionary.
#[pyfunction]
pub fn parse_format<'py>(py: Python<'py>, data: &Bound<'py, PyAny>) -> Result<Bound<'py, PyDict>> {
    let input = Input::get(py, "data", data)?;
    format_dict(py, &SampleFormat::from_bytes(input.bytes())?)
}

pub fn status_dict<'py>(py: Python<'py>, s: &Status) -> Result<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    let state = s.state.name();
    d.set_item("state", state)?;
    d.set_item("rct_latched", s.rct_latched)?;
    d.set_item("apt_latched", s.apt_latched)?;
    d.set_item("overrun", s.overrun)?;
    d.set_item("samples_produced", s.samples_produced)?;
    d.set_item("frames_sent", s.frames_sent)?;
    d.set_item("samples_dropped", s.samples_dropped)?;
    d.set_item("rct_failures", s.rct_failures)?;
    d.set_item("apt_failures", s.apt_failures)?;
    d.set_item("rct_cutoff", s.rct_cutoff)?;
    d.set_item("apt_cutoff", s.apt_cutoff)?;
    d.set_item("apt_window", s.apt_window)?;
    d.set_item("temperature", s.temperature)?;
    Ok(d)
}

/// A status block as a dictionary.
#[pyfunction]
pub fn parse_status<'py>(py: Python<'py>, data: &Bound<'py, PyAny>) -> Result<Bound<'py, PyDict>> {
    let input = Input::get(py, "data", data)?;
    status_dict(py, &Status::parse(input.bytes())?)
}

/// An info block as a dictionary.
#[pyfunction]
pub fn parse_info<'py>(py: Python<'py>, data: &Bound<'py, PyAny>) -> Result<Bound<'py, PyDict>> {
    let input = Input::get(py, "data", data)?;
    let i = Info::parse(input.bytes())?;
    let d = PyDict::new(py);
    d.set_item("protocol_version", i.protocol_version)?;
    d.set_item("device_class", i.device_class.name())?;
    d.set_item("max_payload", i.max_payload)?;
    d.set_item("format", format_dict(py, &i.format)?)?;
    d.set_item("claimed_min_entropy", i.claimed_min_entropy)?;
    d.set_item("vendor", i.vendor)?;
    d.set_item("model", i.model)?;
    d.set_item("serial", i.serial)?;
    d.set_item("firmware", i.firmware)?;
    Ok(d)
}

pub fn reply_dict<'py>(py: Python<'py>, r: &Reply) -> Result<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("code", r.code)?;
    d.set_item("tag", r.tag)?;
    d.set_item("result", r.result)?;
    d.set_item("data", PyBytes::new(py, &r.data))?;
    Ok(d)
}

/// A REPLY payload as a dictionary (`code`, `tag`, `result`, `data`).
#[pyfunction]
pub fn parse_reply<'py>(py: Python<'py>, data: &Bound<'py, PyAny>) -> Result<Bound<'py, PyDict>> {
    let input = Input::get(py, "data", data)?;
    reply_dict(py, &Reply::parse(input.bytes())?)
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
        let events = PyList::empty(py);
        let mut err = None;
        self.decoder.lock().unwrap_or_else(|p| p.into_inner()).feed(input.bytes(), |e| {
            let item = match e {
                Event::Frame { kind, sequence, payload } => {
                    ("frame", kind, sequence, PyBytes::new(py, payload)).into_pyobject(py).map(|t| t.into_any())
                }
                Event::Gap { expected, received, lost } => {
                    ("gap", expected, received, lost).into_pyobject(py).map(|t| t.into_any())
                }
                Event::Replay { last, received } => ("replay", last, received).into_pyobject(py).map(|t| t.into_any()),
                Event::Version { version } => ("version", version).into_pyobject(py).map(|t| t.into_any()),
            };
            if let Err(e) = item.and_then(|i| events.append(i)) {
                err.get_or_insert(e);
            }
        });
        match err {
            Some(e) => Err(e.into()),
            None => Ok(events),
        }
    }

    /// Counts: bytes, frames, crc_errors, garbage_bytes, gaps, frames_lost, replays.
    fn stats<'py>(&self, py: Python<'py>) -> Result<Bound<'py, PyDict>> {
        let s = self.decoder.lock().unwrap_or_else(|p| p.into_inner()).stats();
        let d = PyDict::new(py);
        d.set_item("bytes", s.bytes)?;
        d.set_item("frames", s.frames)?;
        d.set_item("crc_errors", s.crc_errors)?;
        d.set_item("garbage_bytes", s.garbage_bytes)?;
        d.set_item("gaps", s.gaps)?;
        d.set_item("frames_lost", s.frames_lost)?;
        d.set_item("replays", s.replays)?;
        Ok(d)
    }

    /// Bytes held back as the possible start of a frame.
    #[getter]
    fn buffered(&self) -> usize {
        self.decoder.lock().unwrap_or_else(|p| p.into_inner()).buffered()
    }
}
