//! The QRNG pipeline in Python: the noise model, and streams fed by the in-process simulator,
//! a file or FIFO (reader threads in Rust), or by Python (`feed`, for pyserial transports). All
//! waiting and all work happen with the GIL released.

use std::fs::File;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pyo3::prelude::*;
use pyo3::types::PyBytes;
use qitcore_core::frame::messages::{Reply, Status};
use qitcore_core::frame::{BitOrder, Packing, SampleFormat};
use qitcore_core::gf2::alloc::try_zeroed;
use qitcore_core::pipeline::framer::Framer;
use qitcore_core::pipeline::stream::{Shape, DEFAULT_CAPACITY, DEFAULT_FRAME_TIMEOUT};
use qitcore_core::pipeline::{Conditioner, Extraction, GapPolicy, ReadError, Stats, Stream, StreamError};
use qitcore_core::sim::device::DEFAULT_SAMPLES_PER_FRAME;
use qitcore_core::sim::{LinkFaults, NoiseParams, NoiseSource, SimCounters, SimDevice};

use crate::args::{self, choice, flag, int, real, seconds, text, FsPath, Int, Real, Seconds};
use crate::buffers::{Input, Output};
use crate::errors::{detach, guard, stream_exception, waited, Error, Result};

/// The check made between slices of every wait: Python's signal handlers run (Ctrl-C raises
/// KeyboardInterrupt in the main thread); what they raise is kept in `raised` and stops the wait.
fn signals(raised: &mut Option<PyErr>) -> impl FnMut() -> bool + Send + '_ {
    move || match Python::attach(|py| py.check_signals()) {
        Ok(()) => false,
        Err(e) => {
            *raised = Some(e);
            true
        }
    }
}

/// A wait with the GIL released, answering Ctrl-C between its slices (`interrupt`).
pub(crate) fn wait<T: Send>(
    py: Python<'_>,
    work: impl FnOnce(&mut dyn FnMut() -> bool) -> std::result::Result<T, ReadError> + Send,
) -> Result<T> {
    let mut raised = None;
    let result = detach(py, || work(&mut signals(&mut raised)))?;
    result.map_err(|e| waited(e, raised))
}

/// The homodyne noise model of the simulator, as a sample generator. Its parameters are fixed;
/// the source's state is locked only with the GIL released (a read may hold it for long).
#[pyclass(frozen, module = "qitcore._core", name = "NoiseModel")]
pub struct PyNoiseModel {
    params: NoiseParams,
    source: Mutex<NoiseSource>,
}

impl PyNoiseModel {
    /// Runs `work` on the source, its lock taken and released with the GIL released.
    fn with_source<T: Send>(&self, py: Python<'_>, work: impl FnOnce(&mut NoiseSource) -> T + Send) -> Result<T> {
        detach(py, || work(&mut self.source.lock().unwrap_or_else(|p| p.into_inner())))
    }
}

#[pymethods]
impl PyNoiseModel {
    #[new]
    #[pyo3(signature = (bits=NoiseParams::DEFAULT.bits, rate=NoiseParams::DEFAULT.rate,
                        sigma_quantum=NoiseParams::DEFAULT.sigma_quantum,
                        sigma_classical=NoiseParams::DEFAULT.sigma_classical, gain=NoiseParams::DEFAULT.gain,
                        offset=NoiseParams::DEFAULT.offset, bandwidth=NoiseParams::DEFAULT.bandwidth,
                        range=NoiseParams::DEFAULT.range, seed=None))]
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
        Ok(PyNoiseModel { params, source: Mutex::new(source) })
    }

    /// Min-entropy per sample against side information on the classical noise and the past.
    #[getter]
    fn min_entropy(&self) -> f64 {
        self.params.min_entropy()
    }

    /// Min-entropy per sample of the samples' own distribution.
    #[getter]
    fn min_entropy_without_side_information(&self) -> f64 {
        self.params.min_entropy_without_side_information()
    }

    /// Correlation between successive samples of the quantum noise.
    #[getter]
    fn correlation(&self) -> f64 {
        self.params.correlation()
    }

    #[getter]
    fn bits(&self) -> u8 {
        self.params.bits
    }

    #[getter]
    fn rate(&self) -> f64 {
        self.params.rate
    }

    /// From this many more samples on, the output sticks at its last value (a stuck source).
    fn stick_after(&self, py: Python<'_>, #[pyo3(from_py_with = int::<u64>)] samples: u64) -> Result<()> {
        self.with_source(py, |source| source.stuck_after = Some(source.produced.saturating_add(samples)))
    }

    /// Adds `per_sample` to the offset at every sample (slow bias drift).
    fn drift(&self, py: Python<'_>, #[pyo3(from_py_with = real)] per_sample: f64) -> Result<()> {
        if !per_sample.is_finite() {
            return Err(Error::argument("drift", format!("must be finite, got {per_sample}")));
        }
        self.with_source(py, |source| source.drift_per_sample = per_sample)
    }

    /// The next `n` samples: one byte each up to 8 bits, two little-endian bytes above. Made a
    /// slice at a time straight into the result (its one allocation, fallible), answering Ctrl-C
    /// between slices. The source's lock is held for the whole read, so that reads from several
    /// threads are each an unbroken run of the sequence; holding it while the signal handlers run
    /// is safe because every other use of it takes it detached (never waiting for it attached).
    fn read<'py>(&self, py: Python<'py>, #[pyo3(from_py_with = int::<usize>)] n: usize) -> Result<Bound<'py, PyBytes>> {
        /// Samples a slice.
        const SLICE: usize = 1 << 16;
        let width = if self.params.bits > 8 { 2 } else { 1 };
        let mut raised = None;
        let out = detach(py, || -> Result<Option<Vec<u8>>> {
            let mut out = try_zeroed::<u8>("n", n.saturating_mul(width))?;
            let mut slice = vec![0u16; SLICE.min(n)];
            let mut interrupt = signals(&mut raised);
            let mut source = self.source.lock().unwrap_or_else(|p| p.into_inner());
            for (i, piece) in out.chunks_mut(SLICE * width).enumerate() {
                if i > 0 && interrupt() {
                    return Ok(None);
                }
                let samples = &mut slice[..piece.len() / width];
                source.fill(samples);
                if width == 2 {
                    for (o, v) in piece.chunks_exact_mut(2).zip(samples.iter()) {
                        o.copy_from_slice(&v.to_le_bytes());
                    }
                } else {
                    for (o, v) in piece.iter_mut().zip(samples.iter()) {
                        *o = *v as u8;
                    }
                }
            }
            Ok(Some(out))
        })??;
        match (out, raised) {
            (Some(out), _) => Ok(PyBytes::new(py, &out)),
            (None, Some(err)) => Err(Error::Python(err)),
            (None, None) => Err(Error::Internal("NoiseModel.read: stopped without a reason".into())),
        }
    }
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
}

impl PyStream {
    /// The stream itself, for other views of it (numpy's bit generator).
    pub(crate) fn shared(&self) -> Arc<Stream> {
        Arc::clone(&self.stream)
    }
}

#[pymethods]
impl PyStream {
    // A stream's defaults, defined in the core: `qitcore.open`'s options read them here.
    #[classattr]
    const DEFAULT_ALPHA: f64 = Extraction::DEFAULT_ALPHA;
    #[classattr]
    const DEFAULT_EPSILON: f64 = Extraction::DEFAULT_EPSILON;
    #[classattr]
    const DEFAULT_STARTUP_SAMPLES: u64 = Extraction::DEFAULT_STARTUP_SAMPLES;
    #[classattr]
    const DEFAULT_BLOCK_BITS: usize = Extraction::DEFAULT_BLOCK_BITS;
    #[classattr]
    const DEFAULT_CAPACITY: usize = DEFAULT_CAPACITY;
    #[classattr]
    const DEFAULT_FRAME_TIMEOUT: f64 = DEFAULT_FRAME_TIMEOUT.as_secs_f64();
    #[classattr]
    const DEFAULT_SAMPLES_PER_FRAME: usize = DEFAULT_SAMPLES_PER_FRAME;

    #[classattr]
    #[pyo3(name = "DEFAULT_GAP_POLICY")]
    fn default_gap_policy() -> GapPolicy {
        GapPolicy::default()
    }

    #[new]
    #[pyo3(signature = (bits_per_sample, packing=Packing::Aligned, bitorder=BitOrder::MsbFirst, rate=0, *,
                        min_entropy=None, alpha=Extraction::DEFAULT_ALPHA,
                        startup_samples=Extraction::DEFAULT_STARTUP_SAMPLES,
                        block_bits=Extraction::DEFAULT_BLOCK_BITS, epsilon=Extraction::DEFAULT_EPSILON,
                        gap_policy=GapPolicy::default(), raw=false, capacity=DEFAULT_CAPACITY, seed=None,
                        frame_timeout=DEFAULT_FRAME_TIMEOUT.as_secs_f64()))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        #[pyo3(from_py_with = int::<u8>)] bits_per_sample: u8,
        #[pyo3(from_py_with = choice)] packing: Packing,
        #[pyo3(from_py_with = choice)] bitorder: BitOrder,
        #[pyo3(from_py_with = int::<u32>)] rate: u32,
        min_entropy: Option<Real>,
        #[pyo3(from_py_with = real)] alpha: f64,
        #[pyo3(from_py_with = int::<u64>)] startup_samples: u64,
        #[pyo3(from_py_with = int::<usize>)] block_bits: usize,
        #[pyo3(from_py_with = real)] epsilon: f64,
        #[pyo3(from_py_with = choice)] gap_policy: GapPolicy,
        #[pyo3(from_py_with = flag)] raw: bool,
        #[pyo3(from_py_with = int::<usize>)] capacity: usize,
        seed: Option<&Bound<'_, PyAny>>,
        #[pyo3(from_py_with = args::seconds_f64)] frame_timeout: f64,
    ) -> Result<Self> {
        let format = SampleFormat::new(bits_per_sample, packing, bitorder, rate)?;
        let extraction = if raw {
            None
        } else {
            let min_entropy = min_entropy.ok_or_else(|| {
                Error::argument("min_entropy", "required to extract (bits of min-entropy per sample)")
            })?;
            Some(Extraction { min_entropy: min_entropy.0, alpha, startup_samples, block_bits, epsilon })
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
        Ok(PyStream { stream, sim: Mutex::new(None), format, shape })
    }

    /// Feeds the stream from an in-process simulated device around `model`'s samples.
    #[pyo3(signature = (model, samples_per_frame=DEFAULT_SAMPLES_PER_FRAME, drop=0.0, corrupt=0.0, garbage=0.0, disconnect_after=None, seed=0))]
    #[allow(clippy::too_many_arguments)]
    fn attach_sim(
        &self,
        py: Python<'_>,
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
        let source = model.get().with_source(py, |source| source.clone())?;
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
        wait(py, |interrupt| self.stream.feed_samples_with(bytes, interrupt)).map(drop)
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
        wait(py, |interrupt| self.stream.feed_with(bytes, interrupt)).map(drop)
    }

    /// The transport ended: readers get what is queued, then nothing.
    fn end(&self) {
        self.stream.end();
    }

    /// The transport broke: readers get what is queued, then `DeviceDisconnected(message)`.
    fn disconnect(&self, py: Python<'_>, #[pyo3(from_py_with = text)] message: String) -> Result<()> {
        // Detached: failing takes the conditioner's lock, which a feed holds for a whole chunk.
        detach(py, || self.stream.fail(StreamError::Disconnected(message)))
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

    /// Counts along the path (the stream's lock is held only to copy them).
    fn stats(&self) -> Stats {
        self.stream.stats()
    }

    /// What the simulated device did (in-process simulator only).
    fn sim_counters(&self, py: Python<'_>) -> Result<Option<SimCounters>> {
        // Held only to clone the handle.
        let sim = self.sim.lock().unwrap_or_else(|p| p.into_inner()).clone();
        // The device's lock is held by the reader thread while it makes frames: wait detached.
        sim.map(|d| detach(py, || d.lock().unwrap_or_else(|p| p.into_inner()).counters())).transpose()
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

    /// The last status block the device sent.
    fn device_status(&self) -> Option<Status> {
        self.stream.device_status()
    }

    /// Waits up to `timeout` seconds for the reply to command `code` with `tag`, answering Ctrl-C.
    fn reply(
        &self,
        py: Python<'_>,
        #[pyo3(from_py_with = int::<u8>)] code: u8,
        #[pyo3(from_py_with = int::<u8>)] tag: u8,
        #[pyo3(from_py_with = seconds)] timeout: Option<Duration>,
    ) -> Result<Option<Reply>> {
        let mut raised = None;
        let timeout = timeout.unwrap_or(Duration::MAX);
        let r = detach(py, || self.stream.reply_with(code, tag, timeout, &mut signals(&mut raised)))?;
        if let Some(e) = raised {
            return Err(e.into());
        }
        Ok(r)
    }

    /// The failure as an exception instance, or `None`.
    fn error(&self, py: Python<'_>) -> Option<Py<PyAny>> {
        self.stream.error().map(|e| stream_exception(py, &e))
    }
}

impl PyStream {
    /// A read of `n` bytes with the GIL released, answering Ctrl-C between slices of the wait.
    fn read_bytes(&self, py: Python<'_>, n: usize, timeout: Option<Seconds>) -> Result<Vec<u8>> {
        let timeout = timeout.and_then(|s| s.0);
        wait(py, |interrupt| self.stream.read_with(n, timeout, interrupt))
    }
}
