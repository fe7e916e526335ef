//! The QRNG pipeline in Python: the noise model, and streams fed by the in-process simulator,
//! a file or FIFO (reader threads in Rust), or by Python (`feed`, for pyserial transports). All
//! waiting and all work happen with the GIL released.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};
use qitcore_core::frame::SampleFormat;
use qitcore_core::pipeline::framer::Framer;
use qitcore_core::pipeline::{Conditioner, Extraction, GapPolicy, ReadError, Stats, Stream, StreamError};
use qitcore_core::sim::{LinkFaults, NoiseParams, NoiseSource, SimCounters, SimDevice};

use crate::buffers::{Input, Output};
use crate::errors::{
    DeviceDisconnected, DeviceTimeout, HealthTestFailure, IntoPy, InvalidArgumentError, ProtocolError,
    ReplayedFrameError, SequenceGapError, StreamClosedError,
};
use crate::health::failure_error;
use crate::protocol::{format_from, reply_dict, status_dict};

fn stream_error(e: &StreamError) -> PyErr {
    let message = e.to_string();
    match e {
        StreamError::Health(f) => failure_error(f),
        StreamError::DeviceHealth => HealthTestFailure::new_err(message),
        StreamError::Gap { expected, received, lost } => {
            SequenceGapError::new_err((message, *expected, *received, *lost))
        }
        StreamError::Replay { last, received } => ReplayedFrameError::new_err((message, *last, *received)),
        StreamError::Protocol(_) => ProtocolError::new_err(message),
        StreamError::Disconnected(_) => DeviceDisconnected::new_err(message),
    }
}

pub(crate) fn read_error(e: ReadError) -> PyErr {
    match e {
        ReadError::Failed(e) => stream_error(&e),
        ReadError::Closed => StreamClosedError::new_err("stream: read from a closed stream"),
        ReadError::Timeout => DeviceTimeout::new_err("stream: no output within the timeout; nothing was consumed"),
    }
}

/// The homodyne noise model of the simulator, as a sample generator.
#[pyclass(module = "qitcore._core", name = "NoiseModel")]
pub struct PyNoiseModel {
    source: NoiseSource,
}

#[pymethods]
impl PyNoiseModel {
    #[new]
    #[pyo3(signature = (bits=8, rate=0.0, sigma_quantum=0.24, sigma_classical=0.048, gain=1.0, offset=0.0,
                        bandwidth=f64::INFINITY, range=1.0, seed=None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        bits: u8,
        rate: f64,
        sigma_quantum: f64,
        sigma_classical: f64,
        gain: f64,
        offset: f64,
        bandwidth: f64,
        range: f64,
        seed: Option<u64>,
    ) -> PyResult<Self> {
        let params = NoiseParams { bits, rate, sigma_quantum, sigma_classical, gain, offset, bandwidth, range };
        let seed = match seed {
            Some(s) => s,
            None => u64::from_le_bytes(
                qitcore_core::secret::SecretBytes::random(8).py_err()?.expose().try_into().expect("8"),
            ),
        };
        Ok(PyNoiseModel { source: NoiseSource::new(params, seed).py_err()? })
    }

    /// Min-entropy per sample against side information on the classical noise and the past.
    #[getter]
    fn min_entropy(&self) -> f64 {
        self.source.params().min_entropy()
    }

    /// Min-entropy per sample of the samples' own distribution.
    #[getter]
    fn min_entropy_without_side_information(&self) -> f64 {
        self.source.params().min_entropy_without_side_information()
    }

    /// Correlation between successive samples of the quantum noise.
    #[getter]
    fn correlation(&self) -> f64 {
        self.source.params().correlation()
    }

    #[getter]
    fn bits(&self) -> u8 {
        self.source.params().bits
    }

    #[getter]
    fn rate(&self) -> f64 {
        self.source.params().rate
    }

    /// From this many more samples on, the output sticks at its last value (a stuck source).
    fn stick_after(&mut self, samples: u64) {
        self.source.stuck_after = Some(self.source.produced + samples);
    }

    /// Adds `per_sample` to the offset at every sample (slow bias drift).
    fn drift(&mut self, per_sample: f64) -> PyResult<()> {
        if !per_sample.is_finite() {
            return Err(InvalidArgumentError::new_err(format!("drift: must be finite, got {per_sample}")));
        }
        self.source.drift_per_sample = per_sample;
        Ok(())
    }

    /// The next `n` samples: one byte each up to 8 bits, two little-endian bytes above.
    fn read<'py>(&mut self, py: Python<'py>, n: usize) -> PyResult<Bound<'py, PyBytes>> {
        let source = &mut self.source;
        let out = py.detach(|| {
            let mut s = vec![0u16; n];
            source.fill(&mut s);
            if source.params().bits <= 8 {
                s.iter().map(|&v| v as u8).collect::<Vec<u8>>()
            } else {
                s.iter().flat_map(|v| v.to_le_bytes()).collect()
            }
        });
        Ok(PyBytes::new(py, &out))
    }
}

fn stats_dict<'py>(py: Python<'py>, s: &Stats, queued: usize, delivered: u64) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    for (k, v) in [
        ("bytes_in", s.bytes_in),
        ("frames", s.frames),
        ("crc_errors", s.crc_errors),
        ("garbage_bytes", s.garbage_bytes),
        ("gaps", s.gaps),
        ("frames_lost", s.frames_lost),
        ("replays", s.replays),
        ("malformed_frames", s.malformed),
        ("device_overruns", s.device_overruns),
        ("samples_in", s.samples_in),
        ("samples_startup", s.samples_startup),
        ("samples_healthy", s.samples_healthy),
        ("samples_withheld", s.samples_withheld),
        ("blocks", s.blocks),
        ("bytes_out", s.bytes_out),
        ("bytes_delivered", delivered),
    ] {
        d.set_item(k, v)?;
    }
    d.set_item("bytes_queued", queued)?;
    Ok(d)
}

fn sim_dict<'py>(py: Python<'py>, c: &SimCounters) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("frames", c.frames)?;
    d.set_item("frames_dropped", c.frames_dropped)?;
    d.set_item("bytes_corrupted", c.bytes_corrupted)?;
    d.set_item("garbage_bytes", c.garbage_bytes)?;
    d.set_item("bytes", c.bytes)?;
    d.set_item("samples", c.samples)?;
    Ok(d)
}

/// Shares the simulated device's counters with the stream's reader thread.
struct SharedSim(Arc<Mutex<SimDevice>>);

impl std::io::Read for SharedSim {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).read(buf)
    }
}

/// A QRNG stream: transport bytes in, health-tested extracted bytes (or, in raw mode, samples)
/// out.
#[pyclass(frozen, module = "qitcore._core", name = "Stream")]
pub struct PyStream {
    stream: Arc<Stream>,
    sim: Mutex<Option<Arc<Mutex<SimDevice>>>>,
    format: SampleFormat,
    /// For byte-stream devices fed from Python: next frame number and a partial sample.
    framing: Mutex<(u32, Vec<u8>)>,
}

impl PyStream {
    /// The stream itself, for other views of it (numpy's bit generator).
    pub(crate) fn shared(&self) -> Arc<Stream> {
        Arc::clone(&self.stream)
    }
}

#[pymethods]
impl PyStream {
    #[new]
    #[pyo3(signature = (bits_per_sample, packing="aligned", bitorder="big", rate=0, *, min_entropy=None,
                        alpha=None, startup_samples=1024, block_bits=4096, epsilon=None, gap_policy="count",
                        raw=false, capacity=1<<20, seed=None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        bits_per_sample: u8,
        packing: &str,
        bitorder: &str,
        rate: u32,
        min_entropy: Option<f64>,
        alpha: Option<f64>,
        startup_samples: u64,
        block_bits: usize,
        epsilon: Option<f64>,
        gap_policy: &str,
        raw: bool,
        capacity: usize,
        seed: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        let format = format_from(bits_per_sample, packing, bitorder, rate)?;
        let gap_policy = match gap_policy {
            "error" => GapPolicy::Error,
            "count" => GapPolicy::Count,
            other => {
                return Err(InvalidArgumentError::new_err(format!(
                    "gap_policy: expected \"error\" or \"count\", got {other:?}"
                )))
            }
        };
        let extraction = if raw {
            None
        } else {
            let min_entropy = min_entropy.ok_or_else(|| {
                InvalidArgumentError::new_err("min_entropy: required to extract (bits of min-entropy per sample)")
            })?;
            Some(Extraction {
                min_entropy,
                alpha: alpha.unwrap_or((-20f64).exp2()),
                startup_samples,
                block_bits,
                epsilon: epsilon.unwrap_or((-64f64).exp2()),
            })
        };
        let seed = seed.map(|s| Input::get(py, "seed", s)).transpose()?;
        let conditioner =
            Conditioner::new(format, extraction, gap_policy, seed.as_ref().map(|s| s.bytes())).py_err()?;
        if capacity == 0 {
            return Err(InvalidArgumentError::new_err("capacity: must be at least 1 byte"));
        }
        Ok(PyStream {
            stream: Stream::new(conditioner, capacity),
            sim: Mutex::new(None),
            format,
            framing: Mutex::new((0, Vec::new())),
        })
    }

    /// Feeds the stream from an in-process simulated device around `model`'s samples.
    #[pyo3(signature = (model, samples_per_frame=1024, drop=0.0, corrupt=0.0, garbage=0.0, disconnect_after=None, seed=0))]
    #[allow(clippy::too_many_arguments)]
    fn attach_sim(
        &self,
        model: &Bound<'_, PyNoiseModel>,
        samples_per_frame: usize,
        drop: f64,
        corrupt: f64,
        garbage: f64,
        disconnect_after: Option<u64>,
        seed: u64,
    ) -> PyResult<()> {
        let faults = LinkFaults { drop_frame: drop, corrupt_byte: corrupt, garbage, disconnect_after };
        let source = model.borrow().source.clone();
        let device = Arc::new(Mutex::new(SimDevice::new(source, samples_per_frame, faults, seed).py_err()?));
        *self.sim.lock().unwrap_or_else(|p| p.into_inner()) = Some(Arc::clone(&device));
        self.stream.spawn_reader(Box::new(SharedSim(device)), 1 << 16);
        Ok(())
    }

    /// Feeds the stream from a file or FIFO, read on a thread of its own: QDP/1 frames, or
    /// plain samples when `framed` is false (a character device such as /dev/hwrng).
    #[pyo3(signature = (path, framed=true))]
    fn attach_file(&self, path: std::path::PathBuf, framed: bool) -> PyResult<()> {
        let file =
            std::fs::File::open(&path).map_err(|e| DeviceDisconnected::new_err(format!("{}: {e}", path.display())))?;
        let source: Box<dyn std::io::Read + Send> =
            if framed { Box::new(file) } else { Box::new(Framer::new(file, self.format)) };
        self.stream.spawn_reader(source, 1 << 16);
        Ok(())
    }

    /// Processes plain sample bytes from a byte-stream device (no QDP/1 framing): they are
    /// framed here, in order, and fed as `feed` does.
    fn feed_samples(&self, py: Python<'_>, data: &Bound<'_, PyAny>) -> PyResult<()> {
        let input = Input::get(py, "data", data)?;
        let bytes = input.bytes();
        let framed = py.detach(|| {
            let mut framing = self.framing.lock().unwrap_or_else(|p| p.into_inner());
            let (sequence, carry) = &mut *framing;
            carry.extend_from_slice(bytes);
            let mut out = Vec::with_capacity(carry.len() + carry.len() / 256 + 64);
            let used = Framer::<&[u8]>::frame(&self.format, sequence, carry, &mut out);
            carry.drain(..used);
            out
        });
        py.detach(|| self.stream.feed(&framed)).map_err(read_error)
    }

    /// Feeds the stream from an open descriptor (a serial port or pty configured by pyserial),
    /// read on a Rust thread; the descriptor is duplicated, so the caller keeps its own.
    #[cfg(target_os = "linux")]
    #[pyo3(signature = (fd, framed=true))]
    fn attach_fd(&self, fd: i32, framed: bool) -> PyResult<()> {
        use std::os::fd::BorrowedFd;
        if fd < 0 {
            return Err(InvalidArgumentError::new_err(format!("fd: not a descriptor: {fd}")));
        }
        // SAFETY: the caller passes a descriptor it holds open for the duration of this call.
        let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
        let owned = borrowed.try_clone_to_owned().map_err(|e| DeviceDisconnected::new_err(format!("fd {fd}: {e}")))?;
        let reader = qitcore_core::pipeline::fd::FdReader::new(owned);
        let source: Box<dyn std::io::Read + Send> =
            if framed { Box::new(reader) } else { Box::new(Framer::new(reader, self.format)) };
        self.stream.spawn_reader(source, 1 << 16);
        Ok(())
    }

    /// Processes transport bytes (from a Python transport), waiting while the output queue is
    /// full; raises the stream's failure.
    fn feed(&self, py: Python<'_>, data: &Bound<'_, PyAny>) -> PyResult<()> {
        let input = Input::get(py, "data", data)?;
        let bytes = input.bytes();
        py.detach(|| self.stream.feed(bytes)).map_err(read_error)
    }

    /// The transport ended: readers get what is queued, then nothing.
    fn end(&self) {
        self.stream.end();
    }

    /// The transport broke: readers get what is queued, then `DeviceDisconnected(message)`.
    fn disconnect(&self, message: String) {
        self.stream.fail(StreamError::Disconnected(message));
    }

    /// Up to `n` output bytes: exactly `n` unless the stream ended or failed first.
    #[pyo3(signature = (n, timeout=None))]
    fn read<'py>(&self, py: Python<'py>, n: usize, timeout: Option<f64>) -> PyResult<Bound<'py, PyBytes>> {
        let timeout = timeout.map(Duration::from_secs_f64);
        let out = py.detach(|| self.stream.read(n, timeout)).map_err(read_error)?;
        Ok(PyBytes::new(py, &out))
    }

    /// Fills `buffer` (as [`read`] would); returns the bytes written.
    #[pyo3(signature = (buffer, timeout=None))]
    fn readinto(&self, py: Python<'_>, buffer: &Bound<'_, PyAny>, timeout: Option<f64>) -> PyResult<usize> {
        let mut out = Output::get("buffer", buffer)?;
        let dst = out.bytes_mut();
        let n = dst.len();
        let timeout = timeout.map(Duration::from_secs_f64);
        let data = py.detach(|| self.stream.read(n, timeout)).map_err(read_error)?;
        dst[..data.len()].copy_from_slice(&data);
        Ok(data.len())
    }

    /// Closes the stream; safe to call more than once.
    fn close(&self, py: Python<'_>) {
        py.detach(|| self.stream.close());
    }

    /// Counts along the path.
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let (s, queued, delivered) = self.stream.stats();
        stats_dict(py, &s, queued, delivered)
    }

    /// What the simulated device did (in-process simulator only).
    fn sim_counters<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyDict>>> {
        let sim = self.sim.lock().unwrap_or_else(|p| p.into_inner()).clone();
        sim.map(|d| sim_dict(py, &d.lock().unwrap_or_else(|p| p.into_inner()).counters())).transpose()
    }

    /// `(n, m)` of the Toeplitz blocks, or `None` in raw mode.
    #[getter]
    fn block_shape(&self) -> Option<(usize, usize)> {
        self.stream.shape().0
    }

    /// `(rct, apt, window)` health cutoffs, or `None` in raw mode.
    #[getter]
    fn cutoffs(&self) -> Option<(u64, u64, u64)> {
        self.stream.shape().1
    }

    /// The last status block the device sent, as a dictionary.
    fn device_status<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyDict>>> {
        self.stream.device_status().map(|s| status_dict(py, &s)).transpose()
    }

    /// Waits up to `timeout` seconds for the reply to command `code` with `tag`.
    fn reply<'py>(&self, py: Python<'py>, code: u8, tag: u8, timeout: f64) -> PyResult<Option<Bound<'py, PyDict>>> {
        let r = py.detach(|| self.stream.reply(code, tag, Duration::from_secs_f64(timeout.max(0.0))));
        r.map(|r| reply_dict(py, &r)).transpose()
    }

    /// The failure as an exception instance, or `None`.
    fn error(&self, py: Python<'_>) -> Option<Py<PyAny>> {
        self.stream.error().map(|e| stream_error(&e).into_value(py).into_any())
    }
}
