//! The QRNG pipeline in Python: the noise model, and streams fed by the in-process simulator,
//! a file or FIFO (reader threads in Rust), or by Python (`feed`, for pyserial transports). All
//! waiting and all work happen with the GIL released.

use std::fs::File;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};
use qitcore_core::frame::SampleFormat;
use qitcore_core::gf2::alloc::try_zeroed;
use qitcore_core::pipeline::framer::Framer;
use qitcore_core::pipeline::stream::Shape;
use qitcore_core::pipeline::{Conditioner, Extraction, GapPolicy, Stats, Stream, StreamError};
use qitcore_core::sim::{LinkFaults, NoiseParams, NoiseSource, SimCounters, SimDevice};

use crate::args::{self, flag, int, real, seconds, text, FsPath, Int, Real, Seconds};
use crate::buffers::{Input, Output};
use crate::errors::{detach, guard, stream_exception, waited, Error, Result};
use crate::protocol::{format_from, reply_dict, status_dict};

/// The check made between slices of every wait: Python's signal handlers run (Ctrl-C raises
/// KeyboardInterrupt in the main thread); what they raise is kept in `raised` and stops the wait.
pub(crate) fn signals(raised: &mut Option<PyErr>) -> impl FnMut() -> bool + Send + '_ {
    move || match Python::attach(|py| py.check_signals()) {
        Ok(()) => false,
        Err(e) => {
            *raised = Some(e);
            true
        }
    }
}

/// The homodyne noise model of the simulator, as a sample generator.
#[pyclass(frozen, module = "qitcore._core", name = "NoiseModel")]
pub struct PyNoiseModel {
    source: Mutex<NoiseSource>,
}

impl PyNoiseModel {
    fn source(&self) -> std::sync::MutexGuard<'_, NoiseSource> {
        self.source.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[pymethods]
impl PyNoiseModel {
    #[new]
    #[pyo3(signature = (bits=8, rate=0.0, sigma_quantum=0.24, sigma_classical=0.048, gain=1.0, offset=0.0,
                        bandwidth=f64::INFINITY, range=1.0, seed=None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        #[pyo3(from_py_with = int::<u8>)] bits: u8,
        #[pyo3(from_py_with = real)] rate: f64,
        #[pyo3(from_py_with = real)] sigma_quantum: f64,
        #[pyo3(from_py_with = real)] sigma_classical: f64,
        #[pyo3(from_py_with = real)] gain: f64,
        #[pyo3(from_py_with = real)] offset: f64,
        #[pyo3(from_py_with = real)] bandwidth: f64,
        #[pyo3(from_py_with = real)] range: f64,
        seed: Option<Int<u64>>,
    ) -> Result<Self> {
        let params = NoiseParams { bits, rate, sigma_quantum, sigma_classical, gain, offset, bandwidth, range };
        let seed = match seed {
            Some(s) => s.0,
            None => {
                let bytes = qitcore_core::secret::SecretBytes::random(8)?;
                let mut word = [0u8; 8];
                word.copy_from_slice(bytes.expose());
                u64::from_le_bytes(word)
            }
        };
        let source = guard(|| NoiseSource::new(params, seed))??;
        Ok(PyNoiseModel { source: Mutex::new(source) })
    }

    /// Min-entropy per sample against side information on the classical noise and the past.
    #[getter]
    fn min_entropy(&self) -> f64 {
        self.source().params().min_entropy()
    }

    /// Min-entropy per sample of the samples' own distribution.
    #[getter]
    fn min_entropy_without_side_information(&self) -> f64 {
        self.source().params().min_entropy_without_side_information()
    }

    /// Correlation between successive samples of the quantum noise.
    #[getter]
    fn correlation(&self) -> f64 {
        self.source().params().correlation()
    }

    #[getter]
    fn bits(&self) -> u8 {
        self.source().params().bits
    }

    #[getter]
    fn rate(&self) -> f64 {
        self.source().params().rate
    }

    /// From this many more samples on, the output sticks at its last value (a stuck source).
    fn stick_after(&self, #[pyo3(from_py_with = int::<u64>)] samples: u64) {
        let mut source = self.source();
        source.stuck_after = Some(source.produced.saturating_add(samples));
    }

    /// Adds `per_sample` to the offset at every sample (slow bias drift).
    fn drift(&self, #[pyo3(from_py_with = real)] per_sample: f64) -> Result<()> {
        if !per_sample.is_finite() {
            return Err(Error::argument("drift", format!("must be finite, got {per_sample}")));
        }
        self.source().drift_per_sample = per_sample;
        Ok(())
    }

    /// The next `n` samples: one byte each up to 8 bits, two little-endian bytes above.
    fn read<'py>(
        &self,
        py: Python<'py>,
        #[pyo3(from_py_with = int::<usize>)] n: usize,
    ) -> Result<Bound<'py, PyBytes>> {
        let out = detach(py, || -> Result<Vec<u8>> {
            let mut source = self.source.lock().unwrap_or_else(|p| p.into_inner());
            let mut s = try_zeroed::<u16>("n", n)?;
            source.fill(&mut s);
            let wide = source.params().bits > 8;
            let mut out = try_zeroed::<u8>("n", if wide { 2 * n } else { n })?;
            if wide {
                for (o, v) in out.chunks_exact_mut(2).zip(&s) {
                    o.copy_from_slice(&v.to_le_bytes());
                }
            } else {
                for (o, v) in out.iter_mut().zip(&s) {
                    *o = *v as u8;
                }
            }
            Ok(out)
        })??;
        Ok(PyBytes::new(py, &out))
    }
}

fn stats_dict<'py>(py: Python<'py>, s: &Stats, queued: usize, delivered: u64) -> Result<Bound<'py, PyDict>> {
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

fn sim_dict<'py>(py: Python<'py>, c: &SimCounters) -> Result<Bound<'py, PyDict>> {
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

#[cfg(unix)]
fn is_fifo(path: &std::path::Path) -> bool {
    use std::os::unix::fs::FileTypeExt;
    std::fs::metadata(path).is_ok_and(|m| m.file_type().is_fifo())
}

#[cfg(not(unix))]
fn is_fifo(_: &std::path::Path) -> bool {
    false
}

/// A file opened at its first read (a FIFO, whose opening waits for a writer).
enum LazyFile {
    Pending(std::path::PathBuf),
    Open(File),
}

impl std::io::Read for LazyFile {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if let LazyFile::Pending(path) = self {
            let file =
                File::open(&*path).map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
            *self = LazyFile::Open(file);
        }
        match self {
            LazyFile::Open(file) => file.read(buf),
            LazyFile::Pending(_) => Ok(0),
        }
    }
}

/// A QRNG stream: transport bytes in, health-tested extracted bytes (or, in raw mode, samples)
/// out.
#[pyclass(frozen, module = "qitcore._core", name = "Stream")]
pub struct PyStream {
    stream: Arc<Stream>,
    sim: Mutex<Option<Arc<Mutex<SimDevice>>>>,
    format: SampleFormat,
    /// The conditioner's block shape and cutoffs, fixed at construction (read without waiting
    /// for the conditioner, which the reader thread holds while it works).
    shape: Shape,
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
                        raw=false, capacity=1<<20, seed=None, frame_timeout=10.0))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        #[pyo3(from_py_with = int::<u8>)] bits_per_sample: u8,
        #[pyo3(from_py_with = args::packing)] packing: &'static str,
        #[pyo3(from_py_with = args::bitorder)] bitorder: &'static str,
        #[pyo3(from_py_with = int::<u32>)] rate: u32,
        min_entropy: Option<Real>,
        alpha: Option<Real>,
        #[pyo3(from_py_with = int::<u64>)] startup_samples: u64,
        #[pyo3(from_py_with = int::<usize>)] block_bits: usize,
        epsilon: Option<Real>,
        #[pyo3(from_py_with = args::gap_policy)] gap_policy: &'static str,
        #[pyo3(from_py_with = flag)] raw: bool,
        #[pyo3(from_py_with = int::<usize>)] capacity: usize,
        seed: Option<&Bound<'_, PyAny>>,
        #[pyo3(from_py_with = args::seconds_f64)] frame_timeout: f64,
    ) -> Result<Self> {
        let format = format_from(bits_per_sample, packing, bitorder, rate)?;
        let gap_policy = if gap_policy == "error" { GapPolicy::Error } else { GapPolicy::Count };
        let extraction = if raw {
            None
        } else {
            let min_entropy = min_entropy.ok_or_else(|| {
                Error::argument("min_entropy", "required to extract (bits of min-entropy per sample)")
            })?;
            Some(Extraction {
                min_entropy: min_entropy.0,
                alpha: alpha.map_or((-20f64).exp2(), |a| a.0),
                startup_samples,
                block_bits,
                epsilon: epsilon.map_or((-64f64).exp2(), |e| e.0),
            })
        };
        let seed = seed.map(|s| Input::get(py, "seed", s)).transpose()?;
        let seed = seed.as_ref().map(|s| s.bytes());
        let conditioner = detach(py, || Conditioner::new(format, extraction, gap_policy, seed))??;
        if capacity == 0 {
            return Err(Error::argument("capacity", "must be at least 1 byte"));
        }
        let shape = (conditioner.block_shape(), conditioner.cutoffs());
        let stream = Stream::new(conditioner, capacity);
        stream.set_frame_timeout(Duration::try_from_secs_f64(frame_timeout).ok());
        Ok(PyStream { stream, sim: Mutex::new(None), format, shape, framing: Mutex::new((0, Vec::new())) })
    }

    /// Feeds the stream from an in-process simulated device around `model`'s samples.
    #[pyo3(signature = (model, samples_per_frame=1024, drop=0.0, corrupt=0.0, garbage=0.0, disconnect_after=None, seed=0))]
    #[allow(clippy::too_many_arguments)]
    fn attach_sim(
        &self,
        model: &Bound<'_, PyAny>,
        #[pyo3(from_py_with = int::<usize>)] samples_per_frame: usize,
        #[pyo3(from_py_with = real)] drop: f64,
        #[pyo3(from_py_with = real)] corrupt: f64,
        #[pyo3(from_py_with = real)] garbage: f64,
        disconnect_after: Option<Int<u64>>,
        #[pyo3(from_py_with = int::<u64>)] seed: u64,
    ) -> Result<()> {
        let model = model.cast::<PyNoiseModel>().map_err(|_| {
            let name = model.get_type().name().map(|n| n.to_string()).unwrap_or_default();
            Error::Type(format!("model: expected a NoiseModel, got {name}"))
        })?;
        let faults = LinkFaults {
            drop_frame: drop,
            corrupt_byte: corrupt,
            garbage,
            disconnect_after: disconnect_after.map(|d| d.0),
        };
        let source = model.get().source().clone();
        let device = Arc::new(Mutex::new(guard(|| SimDevice::new(source, samples_per_frame, faults, seed))??));
        *self.sim.lock().unwrap_or_else(|p| p.into_inner()) = Some(Arc::clone(&device));
        self.stream.spawn_reader(Box::new(SharedSim(device)), 1 << 16);
        Ok(())
    }

    /// Feeds the stream from a file or FIFO, read on a thread of its own: QDP/1 frames, or
    /// plain samples when `framed` is false (a character device such as /dev/hwrng).
    #[pyo3(signature = (path, framed=true))]
    fn attach_file(&self, path: FsPath, #[pyo3(from_py_with = flag)] framed: bool) -> Result<()> {
        let path = path.0;
        let fail = |e: std::io::Error| Error::Disconnected(format!("{}: {e}", path.display()));
        // Opening a FIFO waits for its writer, for ever: that wait happens on the reader thread,
        // so that this call returns and reads wait in slices that answer Ctrl-C.
        let file = if is_fifo(&path) {
            LazyFile::Pending(path.clone())
        } else {
            LazyFile::Open(File::open(&path).map_err(fail)?)
        };
        let source: Box<dyn std::io::Read + Send> =
            if framed { Box::new(file) } else { Box::new(Framer::new(file, self.format)) };
        self.stream.spawn_reader(source, 1 << 16);
        Ok(())
    }

    /// Processes plain sample bytes from a byte-stream device (no QDP/1 framing): they are
    /// framed here, in order, and fed as `feed` does.
    fn feed_samples(&self, py: Python<'_>, data: &Bound<'_, PyAny>) -> Result<()> {
        let input = Input::get(py, "data", data)?;
        let bytes = input.bytes();
        let mut raised = None;
        let result = detach(py, || {
            // The framing lock is taken detached: another feeder may hold it while it waits.
            let mut framing = self.framing.lock().unwrap_or_else(|p| p.into_inner());
            let (sequence, carry) = &mut *framing;
            carry.extend_from_slice(bytes);
            let mut out = Vec::with_capacity(carry.len() + carry.len() / 256 + 64);
            let used = Framer::<&[u8]>::frame(&self.format, sequence, carry, &mut out);
            carry.drain(..used);
            // Fed under the framing lock, so that frames enter the stream in their order.
            self.stream.feed_with(&out, &mut signals(&mut raised))
        })?;
        result.map(drop).map_err(|e| waited(e, raised))
    }

    /// Feeds the stream from an open descriptor (a serial port or pty configured by pyserial),
    /// read on a Rust thread; the descriptor is duplicated, so the caller keeps its own.
    #[cfg(target_os = "linux")]
    #[pyo3(signature = (fd, framed=true))]
    fn attach_fd(
        &self,
        #[pyo3(from_py_with = int::<i32>)] fd: i32,
        #[pyo3(from_py_with = flag)] framed: bool,
    ) -> Result<()> {
        use std::os::fd::BorrowedFd;
        if fd < 0 {
            return Err(Error::argument("fd", format!("not a descriptor: {fd}")));
        }
        // SAFETY: the caller passes a descriptor it holds open for the duration of this call.
        let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
        let owned = borrowed.try_clone_to_owned().map_err(|e| Error::Disconnected(format!("fd {fd}: {e}")))?;
        let reader = qitcore_core::pipeline::fd::FdReader::new(owned);
        let source: Box<dyn std::io::Read + Send> =
            if framed { Box::new(reader) } else { Box::new(Framer::new(reader, self.format)) };
        self.stream.spawn_reader(source, 1 << 16);
        Ok(())
    }

    /// Processes transport bytes (from a Python transport), waiting while the output queue is
    /// full; raises the stream's failure.
    fn feed(&self, py: Python<'_>, data: &Bound<'_, PyAny>) -> Result<()> {
        let input = Input::get(py, "data", data)?;
        let bytes = input.bytes();
        let mut raised = None;
        let result = detach(py, || self.stream.feed_with(bytes, &mut signals(&mut raised)))?;
        result.map(drop).map_err(|e| waited(e, raised))
    }

    /// The transport ended: readers get what is queued, then nothing.
    fn end(&self) {
        self.stream.end();
    }

    /// The transport broke: readers get what is queued, then `DeviceDisconnected(message)`.
    fn disconnect(&self, #[pyo3(from_py_with = text)] message: String) {
        self.stream.fail(StreamError::Disconnected(message));
    }

    /// Up to `n` output bytes: exactly `n` unless the stream ended or failed first. Waits at
    /// most `timeout` seconds (for ever when `None`), answering Ctrl-C.
    #[pyo3(signature = (n, timeout=None))]
    fn read<'py>(
        &self,
        py: Python<'py>,
        #[pyo3(from_py_with = int::<usize>)] n: usize,
        timeout: Option<Seconds>,
    ) -> Result<Bound<'py, PyBytes>> {
        let out = self.read_bytes(py, n, timeout)?;
        Ok(PyBytes::new(py, &out))
    }

    /// Fills `buffer` (as [`read`] would); returns the bytes written.
    #[pyo3(signature = (buffer, timeout=None))]
    fn readinto(&self, py: Python<'_>, buffer: &Bound<'_, PyAny>, timeout: Option<Seconds>) -> Result<usize> {
        let mut out = Output::get("buffer", buffer)?;
        let dst = out.bytes_mut();
        let data = self.read_bytes(py, dst.len(), timeout)?;
        dst[..data.len()].copy_from_slice(&data);
        Ok(data.len())
    }

    /// Closes the stream; safe to call more than once.
    fn close(&self, py: Python<'_>) -> Result<()> {
        detach(py, || self.stream.close())
    }

    /// Counts along the path.
    fn stats<'py>(&self, py: Python<'py>) -> Result<Bound<'py, PyDict>> {
        let (s, queued, delivered) = self.stream.stats();
        stats_dict(py, &s, queued, delivered)
    }

    /// What the simulated device did (in-process simulator only).
    fn sim_counters<'py>(&self, py: Python<'py>) -> Result<Option<Bound<'py, PyDict>>> {
        let sim = self.sim.lock().unwrap_or_else(|p| p.into_inner()).clone();
        // The device's lock is held by the reader thread while it makes frames: wait detached.
        let counters = match sim {
            Some(d) => Some(detach(py, || d.lock().unwrap_or_else(|p| p.into_inner()).counters())?),
            None => None,
        };
        counters.map(|c| sim_dict(py, &c)).transpose()
    }

    /// `(n, m)` of the Toeplitz blocks, or `None` in raw mode.
    #[getter]
    fn block_shape(&self) -> Option<(usize, usize)> {
        self.shape.0
    }

    /// `(rct, apt, window)` health cutoffs, or `None` in raw mode.
    #[getter]
    fn cutoffs(&self) -> Option<(u64, u64, u64)> {
        self.shape.1
    }

    /// The last status block the device sent, as a dictionary.
    fn device_status<'py>(&self, py: Python<'py>) -> Result<Option<Bound<'py, PyDict>>> {
        self.stream.device_status().map(|s| status_dict(py, &s)).transpose()
    }

    /// Waits up to `timeout` seconds for the reply to command `code` with `tag`, answering Ctrl-C.
    fn reply<'py>(
        &self,
        py: Python<'py>,
        #[pyo3(from_py_with = int::<u8>)] code: u8,
        #[pyo3(from_py_with = int::<u8>)] tag: u8,
        #[pyo3(from_py_with = seconds)] timeout: Option<Duration>,
    ) -> Result<Option<Bound<'py, PyDict>>> {
        let mut raised = None;
        let timeout = timeout.unwrap_or(Duration::MAX);
        let r = detach(py, || self.stream.reply_with(code, tag, timeout, &mut signals(&mut raised)))?;
        if let Some(e) = raised {
            return Err(e.into());
        }
        r.map(|r| reply_dict(py, &r)).transpose()
    }

    /// The failure as an exception instance, or `None`.
    fn error(&self, py: Python<'_>) -> Option<Py<PyAny>> {
        self.stream.error().map(|e| stream_exception(py, &e))
    }
}

impl PyStream {
    /// A read of `n` bytes with the GIL released, answering Ctrl-C between slices of the wait.
    fn read_bytes(&self, py: Python<'_>, n: usize, timeout: Option<Seconds>) -> Result<Vec<u8>> {
        let mut raised = None;
        let timeout = timeout.and_then(|s| s.0);
        let result = detach(py, || self.stream.read_with(n, timeout, &mut signals(&mut raised)))?;
        result.map_err(|e| waited(e, raised))
    }
}
