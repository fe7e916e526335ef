//! QKD post-processing: Cascade's two sides, the verification tag, the finite-key length and the
//! simulated link. Keys cross the boundary one byte per bit (numpy uint8 arrays of 0 and 1);
//! Cascade's queries and answers cross as the wire bytes the channel carries.

use std::borrow::Cow;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::thread::JoinHandle;

use pyo3::prelude::*;
use pyo3::types::PyBytes;
use qitcore_core::gf2::backend;
use qitcore_core::qkd::bitvec::Bits;
use qitcore_core::qkd::cascade::{Corrector, Layout, Query, Responder, Shuffles, Variant};
use qitcore_core::qkd::finite_key::{self, Counts, Decoys, SecureLength};
use qitcore_core::qkd::sim::Detections;
use qitcore_core::qkd::{sift, sim, verify};
use qitcore_core::Error as CoreError;

use crate::args::{self, int, real, Array, Int, List, Real};
use crate::buffers::Input;
use crate::errors::{detach, guard, until, Error, Result};

/// One byte per bit, each 0 or 1, as `Bits`.
fn key_bits(py: Python<'_>, name: &'static str, key: &Bound<'_, PyAny>) -> Result<Bits> {
    let input = Input::get(py, name, key)?;
    let bytes = input.bytes();
    // ORed a chunk at a time (a loop the compiler vectorises); only a bad chunk is searched.
    if let Some(chunk) = bytes.chunks(256).position(|c| c.iter().fold(0, |acc, &b| acc | b) > 1) {
        let at = 256 * chunk + bytes[256 * chunk..].iter().position(|&b| b > 1).expect("a byte above 1");
        return Err(Error::argument(name, format!("bits must be 0 or 1, found {} at {at}", bytes[at])));
    }
    Ok(Bits::from_bytes(bytes))
}

/// Alice's side of Cascade: answers Bob's parity queries about her key.
///
/// Built on a thread of its own: the constructor checks its arguments and returns, and the first
/// answer waits for the layout (a shuffle of the whole key) and the key in each pass's order.
/// Alice answers CASCADE_START at once and builds while Bob builds his side (in one process,
/// the same layout: see `Layout::shared`), with no Python thread and no GIL between them.
#[pyclass(frozen, module = "qitcore._core", name = "CascadeResponder")]
pub struct PyCascadeResponder {
    n: usize,
    built: OnceLock<Responder>,
    building: Mutex<Option<JoinHandle<qitcore_core::Result<Option<Responder>>>>>,
    /// Set when the responder is dropped: a build nobody will use stops.
    stop: Arc<AtomicBool>,
    disclosed: AtomicU64,
}

impl PyCascadeResponder {
    /// The responder, once built: waits for the build without the GIL, answering Ctrl-C (the
    /// build goes on, and a later call waits again).
    fn responder(&self, py: Python<'_>) -> Result<&Responder> {
        if let Some(responder) = self.built.get() {
            return Ok(responder);
        }
        let finished =
            || self.building.lock().unwrap_or_else(PoisonError::into_inner).as_ref().is_none_or(|h| h.is_finished());
        if !finished() {
            until(py, |stop| {
                while !finished() {
                    if stop.load(Ordering::Relaxed) {
                        return Ok(None);
                    }
                    std::thread::sleep(std::time::Duration::from_millis(1));
                }
                Ok(Some(()))
            })?;
        }
        detach(py, || -> Result<()> {
            let mut building = self.building.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(handle) = building.take() {
                let responder = handle
                    .join()
                    .map_err(|_| Error::Internal("internal error in qitcore: the Cascade build panicked".into()))??
                    .ok_or_else(|| Error::Internal("the Cascade responder's build was stopped".into()))?;
                // Only the holder of the lock sets it, once.
                let _ = self.built.set(responder);
            }
            Ok(())
        })??;
        // Unset only when the build failed (its error went to the first caller).
        self.built.get().ok_or_else(|| Error::Internal("the Cascade responder could not be built".into()))
    }
}

impl Drop for PyCascadeResponder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

#[pymethods]
impl PyCascadeResponder {
    #[new]
    #[pyo3(signature = (key, qber, seed, variant = Variant::default()))]
    fn new(
        py: Python<'_>,
        key: &Bound<'_, PyAny>,
        #[pyo3(from_py_with = real)] qber: f64,
        #[pyo3(from_py_with = int::<u64>)] seed: u64,
        #[pyo3(from_py_with = args::choice::<Variant>)] variant: Variant,
    ) -> Result<Self> {
        let key = key_bits(py, "key", key)?;
        let n = key.len;
        Layout::check(n, qber)?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let build = move || match Layout::shared_until(n, qber, seed, variant, &flag)? {
            Some(layout) => Responder::new(layout, key).map(Some),
            None => Ok(None),
        };
        let handle = std::thread::Builder::new()
            .name("qitcore-cascade".into())
            .spawn(build)
            .map_err(|e| Error::Internal(format!("cannot start the Cascade responder's thread: {e}")))?;
        Ok(PyCascadeResponder {
            n,
            built: OnceLock::new(),
            building: Mutex::new(Some(handle)),
            stop,
            disclosed: AtomicU64::new(0),
        })
    }

    /// Alice's packed answers to the encoded queries (refused if any is malformed).
    fn answer<'py>(&self, py: Python<'py>, queries: &Bound<'py, PyAny>) -> Result<Bound<'py, PyBytes>> {
        let queries = Input::get(py, "queries", queries)?;
        let responder = self.responder(py)?;
        let queries = guard(|| Query::decode(queries.bytes(), responder.layout()))??;
        // A batch of a few ranges (most round trips) is answered without releasing the GIL: the
        // release and the reacquisition would cost more than the answer.
        let work = || responder.answer(&queries);
        let small = queries.len() <= 64 && queries.iter().all(|q| matches!(q, Query::Range { .. }));
        let answer = if small { guard(work)? } else { detach(py, work)? };
        self.disclosed.fetch_add(answer.len as u64, Ordering::Relaxed);
        Ok(PyBytes::new(py, &answer.to_packed()))
    }

    /// Parity bits disclosed so far: Alice's own count of the leakage.
    #[getter]
    fn disclosed(&self) -> u64 {
        self.disclosed.load(Ordering::Relaxed)
    }

    /// Bits in the key.
    #[getter]
    fn n(&self) -> usize {
        self.n
    }
}

/// Bob's Cascade shuffles for a key of `n` bits from `seed`, drawn on a thread of their own.
///
/// They depend on the key's length, the seed and the variant, not on the error rate: Bob makes
/// this once he knows the length (after sifting, with the sample drawn) and holds it through
/// `cascade_correct`, which then finds them built (or waits for the build) instead of drawing
/// them on its critical path. Dropping it stops a build still running (a session that ends
/// before Cascade wastes no more of a core on it); the shuffles, once built, are freed then,
/// unless a Cascade run with the same parameters holds them.
#[pyclass(frozen, module = "qitcore._core", name = "CascadePreparation")]
pub struct PyCascadePreparation {
    /// The build; its result (the shuffles, kept alive) stays in the handle until this is dropped.
    _building: Mutex<JoinHandle<qitcore_core::Result<Option<Arc<Shuffles>>>>>,
    stop: Arc<AtomicBool>,
}

impl Drop for PyCascadePreparation {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

#[pymethods]
impl PyCascadePreparation {
    #[new]
    #[pyo3(signature = (n, seed, variant = Variant::default()))]
    fn new(
        #[pyo3(from_py_with = int::<usize>)] n: usize,
        #[pyo3(from_py_with = int::<u64>)] seed: u64,
        #[pyo3(from_py_with = args::choice::<Variant>)] variant: Variant,
    ) -> Result<Self> {
        Layout::check_length(n)?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let build = move || {
            let shuffles = Shuffles::shared_until(n, seed, variant, &flag)?;
            if let Some(shuffles) = &shuffles {
                shuffles.prepare_corrections();
            }
            Ok(shuffles)
        };
        let handle = std::thread::Builder::new()
            .name("qitcore-cascade-prepare".into())
            .spawn(build)
            .map_err(|e| Error::Internal(format!("cannot start the Cascade preparation's thread: {e}")))?;
        Ok(PyCascadePreparation { _building: Mutex::new(handle), stop })
    }
}

/// Bob's side of Cascade: corrects `key` by sending encoded queries through `ask`, which returns
/// Alice's packed answers. Returns (corrected key, leaked bits, round trips, corrected bits).
#[pyfunction]
#[pyo3(signature = (key, qber, seed, ask, variant = Variant::default()))]
pub fn cascade_correct<'py>(
    py: Python<'py>,
    key: &Bound<'py, PyAny>,
    #[pyo3(from_py_with = real)] qber: f64,
    #[pyo3(from_py_with = int::<u64>)] seed: u64,
    ask: Py<PyAny>,
    #[pyo3(from_py_with = args::choice::<Variant>)] variant: Variant,
) -> Result<(Bound<'py, PyBytes>, u64, u64, u64)> {
    if !ask.bind(py).is_callable() {
        return Err(Error::Type("ask: expected a callable that returns Alice's answers as bytes".into()));
    }
    let key = key_bits(py, "key", key)?;
    // Built without the GIL (Alice's side may be building hers on a Python thread), answering
    // Ctrl-C: a key of 10^9 bits takes seconds to shuffle, before the first query goes out.
    let layout = until(py, |stop| Layout::shared_until(key.len, qber, seed, variant, stop))?;
    // The first Python exception `ask` raises is kept and re-raised as it was.
    let raised: Mutex<Option<PyErr>> = Mutex::new(None);
    let result = detach(py, || {
        let corrector = Corrector::new(&layout, key)?;
        let mut oracle = |queries: &[Query]| {
            let expected: usize = queries.iter().map(|q| q.answer_bits(&layout)).sum();
            let wire = Query::encode(queries, &layout);
            let reply = Python::attach(|py| -> PyResult<Vec<u8>> {
                let answer = ask.bind(py).call1((PyBytes::new(py, &wire),))?;
                // An answer of the wrong type is the channel's failure, not the caller's bug.
                Input::get(py, "ask", &answer)
                    .map(|a| a.bytes().to_vec())
                    .map_err(|e| Error::peer(format!("Cascade answer: {}", PyErr::from(e).value(py))).into())
            });
            match reply {
                Ok(bytes) => Bits::from_packed(&bytes, expected).ok_or_else(|| {
                    CoreError::Peer(format!("Cascade answer of {} bytes, expected {expected} bits", bytes.len()))
                }),
                Err(err) => {
                    *raised.lock().unwrap_or_else(PoisonError::into_inner) = Some(err);
                    Err(CoreError::Peer("the channel failed".into()))
                }
            }
        };
        corrector.run(&mut oracle)
    })?;
    if let Some(err) = raised.into_inner().unwrap_or_else(PoisonError::into_inner) {
        return Err(err.into());
    }
    let (fixed, stats) = result?;
    Ok((PyBytes::new(py, &fixed.to_bytes()), stats.leaked, stats.rounds, stats.corrected))
}

/// The polynomial verification tags of `key` (one byte per bit) at each point in GF(2^64).
#[pyfunction]
pub fn verification_tags(py: Python<'_>, key: &Bound<'_, PyAny>, points: List<Int<u64>>) -> Result<Vec<u64>> {
    let key = key_bits(py, "key", key)?;
    let backend = backend::active();
    detach(py, || points.0.iter().map(|p| verify::tag(backend, &key, p.0)).collect())
}

/// The probability that two different `n`-bit keys share a tag.
#[pyfunction]
pub fn verification_collision_bound(#[pyo3(from_py_with = int::<usize>)] n: usize) -> Result<f64> {
    guard(|| verify::collision_bound(n))
}

fn decoys(mu: [f64; 3], p: [f64; 3]) -> Decoys {
    Decoys { mu, p }
}

fn reals(a: Array<Real, 3>) -> [f64; 3] {
    a.0.map(|r| r.0)
}

fn ints(a: Array<Int<u64>, 3>) -> [u64; 3] {
    a.0.map(|i| i.0)
}

/// The finite-key secure length with every term of the bound.
#[pyfunction]
#[pyo3(signature = (mu, p, key_counts, test_counts, test_errors, leaked, eps_sec, eps_cor))]
#[allow(clippy::too_many_arguments)]
pub fn finite_key_length(
    mu: Array<Real, 3>,
    p: Array<Real, 3>,
    key_counts: Array<Int<u64>, 3>,
    test_counts: Array<Int<u64>, 3>,
    test_errors: Array<Int<u64>, 3>,
    #[pyo3(from_py_with = int::<u64>)] leaked: u64,
    #[pyo3(from_py_with = real)] eps_sec: f64,
    #[pyo3(from_py_with = real)] eps_cor: f64,
) -> Result<SecureLength> {
    let counts = Counts { key: ints(key_counts), test: ints(test_counts), test_errors: ints(test_errors) };
    let decoys = decoys(reals(mu), reals(p));
    Ok(guard(|| finite_key::secure_length(&decoys, &counts, leaked, eps_sec, eps_cor))??)
}

/// Simulates a decoy-state BB84 link; returns the detected pulses.
#[pyfunction]
#[pyo3(signature = (pulses, seed, distance_km, attenuation_db_per_km, detector_efficiency, dark_count, misalignment, mu, p, key_basis_probability))]
#[allow(clippy::too_many_arguments)]
pub fn simulate_bb84(
    py: Python<'_>,
    #[pyo3(from_py_with = int::<u64>)] pulses: u64,
    #[pyo3(from_py_with = int::<u64>)] seed: u64,
    #[pyo3(from_py_with = real)] distance_km: f64,
    #[pyo3(from_py_with = real)] attenuation_db_per_km: f64,
    #[pyo3(from_py_with = real)] detector_efficiency: f64,
    #[pyo3(from_py_with = real)] dark_count: f64,
    #[pyo3(from_py_with = real)] misalignment: f64,
    mu: Array<Real, 3>,
    p: Array<Real, 3>,
    #[pyo3(from_py_with = real)] key_basis_probability: f64,
) -> Result<Detections> {
    let model = link_model(
        [distance_km, attenuation_db_per_km, detector_efficiency, dark_count, misalignment, key_basis_probability],
        mu,
        p,
    );
    until(py, |stop| sim::simulate_until(&model, pulses, seed, stop))
}

/// Checks a link's parameters as `simulate_bb84` does, so that a bad one is refused before the
/// caller announces any work.
#[pyfunction]
#[pyo3(signature = (distance_km, attenuation_db_per_km, detector_efficiency, dark_count, misalignment, mu, p, key_basis_probability))]
#[allow(clippy::too_many_arguments)]
pub fn check_link(
    #[pyo3(from_py_with = real)] distance_km: f64,
    #[pyo3(from_py_with = real)] attenuation_db_per_km: f64,
    #[pyo3(from_py_with = real)] detector_efficiency: f64,
    #[pyo3(from_py_with = real)] dark_count: f64,
    #[pyo3(from_py_with = real)] misalignment: f64,
    mu: Array<Real, 3>,
    p: Array<Real, 3>,
    #[pyo3(from_py_with = real)] key_basis_probability: f64,
) -> Result<()> {
    let model = link_model(
        [distance_km, attenuation_db_per_km, detector_efficiency, dark_count, misalignment, key_basis_probability],
        mu,
        p,
    );
    Ok(guard(|| model.validate())??)
}

/// The core's link model from the binding's arguments, in `simulate_bb84`'s order (`mu` and `p`
/// apart).
fn link_model(values: [f64; 6], mu: Array<Real, 3>, p: Array<Real, 3>) -> sim::LinkModel {
    let [distance_km, attenuation_db_per_km, detector_efficiency, dark_count, misalignment, key_basis_probability] =
        values;
    sim::LinkModel {
        distance_km,
        attenuation_db_per_km,
        detector_efficiency,
        dark_count,
        misalignment,
        decoys: decoys(reals(mu), reals(p)),
        key_basis_probability,
    }
}

/// Little-endian u64 values from a buffer, borrowed when aligned (numpy's are), else copied.
fn u64_values<'a>(name: &'static str, bytes: &'a [u8]) -> Result<Cow<'a, [u64]>> {
    if !bytes.len().is_multiple_of(8) {
        return Err(Error::argument(name, "expected uint64 values"));
    }
    // SAFETY: every bit pattern is a valid u64; align_to only reinterprets the aligned middle.
    let (head, middle, tail) = unsafe { bytes.align_to::<u64>() };
    if cfg!(target_endian = "little") && head.is_empty() && tail.is_empty() {
        return Ok(Cow::Borrowed(middle));
    }
    Ok(Cow::Owned(bytes.chunks_exact(8).map(|c| u64::from_le_bytes(c.try_into().expect("eight bytes"))).collect()))
}

fn sifted_tuple<'py>(py: Python<'py>, s: &sift::Sifted) -> SiftedBytes<'py> {
    (
        PyBytes::new(py, &s.key),
        PyBytes::new(py, &s.key_intensity),
        PyBytes::new(py, &s.test),
        PyBytes::new(py, &s.test_intensity),
    )
}

type SiftedBytes<'py> = (Bound<'py, PyBytes>, Bound<'py, PyBytes>, Bound<'py, PyBytes>, Bound<'py, PyBytes>);

/// Bob's sifting message from his pulse numbers (uint64 bytes) and bases.
#[pyfunction]
pub fn sift_announce<'py>(
    py: Python<'py>,
    index: &Bound<'py, PyAny>,
    basis: &Bound<'py, PyAny>,
) -> Result<Bound<'py, PyBytes>> {
    let (index, basis) = (Input::get(py, "index", index)?, Input::get(py, "basis", basis)?);
    let values = u64_values("index", index.bytes())?;
    let message = detach(py, || sift::announce(&values, basis.bytes()))??;
    Ok(PyBytes::new(py, &message))
}

/// Alice's reply to Bob's message, her sifted (key, key intensity, test, test intensity), and
/// the number of pulses Bob detected. The columns are checked equal in length by the caller.
#[pyfunction]
pub fn sift_answer<'py>(
    py: Python<'py>,
    index: &Bound<'py, PyAny>,
    basis: &Bound<'py, PyAny>,
    bit: &Bound<'py, PyAny>,
    intensity: &Bound<'py, PyAny>,
    message: &Bound<'py, PyAny>,
) -> Result<(Bound<'py, PyBytes>, SiftedBytes<'py>, usize)> {
    let message = Input::get(py, "message", message)?;
    let message = message.bytes();
    let index = Input::get(py, "index", index)?;
    let (basis, bit, intensity) =
        (Input::get(py, "basis", basis)?, Input::get(py, "bit", bit)?, Input::get(py, "intensity", intensity)?);
    let values = u64_values("index", index.bytes())?;
    let n = values.len();
    if [basis.bytes().len(), bit.bytes().len(), intensity.bytes().len()] != [n; 3] {
        return Err(Error::length("alice records", "columns differ in length"));
    }
    let alice =
        sift::AliceRecords { index: &values, basis: basis.bytes(), bit: bit.bytes(), intensity: intensity.bytes() };
    let (reply, sifted, count) = detach(py, || sift::answer(&alice, message))??;
    Ok((PyBytes::new(py, &reply), sifted_tuple(py, &sifted), count))
}

/// Bob's sifted (key, key intensity, test, test intensity) from Alice's reply.
#[pyfunction]
pub fn sift_conclude<'py>(
    py: Python<'py>,
    basis: &Bound<'py, PyAny>,
    bit: &Bound<'py, PyAny>,
    reply: &Bound<'py, PyAny>,
) -> Result<SiftedBytes<'py>> {
    let (basis, bit) = (Input::get(py, "basis", basis)?, Input::get(py, "bit", bit)?);
    let reply = Input::get(py, "reply", reply)?;
    let reply = reply.bytes();
    let sifted = detach(py, || sift::conclude(basis.bytes(), bit.bytes(), reply, 3))??;
    Ok(sifted_tuple(py, &sifted))
}

/// How many of Bob's pulses his sifting keeps in the key basis, from his bases and Alice's reply.
#[pyfunction]
pub fn sift_key_count(py: Python<'_>, basis: &Bound<'_, PyAny>, reply: &Bound<'_, PyAny>) -> Result<usize> {
    let (basis, reply) = (Input::get(py, "basis", basis)?, Input::get(py, "reply", reply)?);
    Ok(guard(|| sift::key_count(basis.bytes(), reply.bytes()))??)
}

/// Strictly increasing pulse numbers (uint64 bytes) as LEB128 varints of their gaps.
#[pyfunction]
pub fn encode_pulse_numbers<'py>(py: Python<'py>, index: &Bound<'py, PyAny>) -> Result<Bound<'py, PyBytes>> {
    let index = Input::get(py, "index", index)?;
    let values = u64_values("index", index.bytes())?;
    let wire = detach(py, || sift::encode_indices(&values))??;
    Ok(PyBytes::new(py, &wire))
}

/// The pulse numbers (uint64 little-endian bytes) back from their varint gaps.
#[pyfunction]
pub fn decode_pulse_numbers<'py>(py: Python<'py>, wire: &Bound<'py, PyAny>) -> Result<Bound<'py, PyBytes>> {
    let wire = Input::get(py, "wire", wire)?;
    let wire = wire.bytes();
    let values = detach(py, || sift::decode_indices(wire))??;
    let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    Ok(PyBytes::new(py, &bytes))
}

/// Checks decoy intensities and their probabilities (μ1 > μ2 + μ3, μ2 > μ3 ≥ 0; a distribution).
#[pyfunction]
pub fn check_decoys(mu: Array<Real, 3>, p: Array<Real, 3>) -> Result<()> {
    Ok(guard(|| decoys(reals(mu), reals(p)).validate())??)
}
