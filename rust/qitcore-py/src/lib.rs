//! `qitcore._core`: the thin binding of qitcore-core. Arguments are converted here, the work runs
//! in the core crate with the GIL released, and core errors become `qitcore.errors` exceptions.
//!
//! Rules every entry point keeps:
//! - every number becomes a size, count, index or duration through [`args`], so a bad value of any
//!   type raises `InvalidArgumentError`/`InvalidTypeError`, never a builtin error or a panic;
//! - detached work runs through [`errors::detach`], which turns a panic (a bug) into
//!   `InternalError`;
//! - no thread waits for the GIL while it holds one of the binding's locks, so no thread can
//!   wait for a lock while keeping the GIL its holder needs: a lock taken for detached work is
//!   taken and released inside `detach` (the monitor's, the noise model's, the stream's framing
//!   state), and a lock taken attached is never held across a release of the GIL (`FrameDecoder`);
//!   a monitor shared by threads is waited for detached too, so that the GIL is not kept idle;
//! - every wait is cut into slices that check for signals, so Ctrl-C interrupts it.

mod args;
mod auth;
mod bitgen;
mod buffers;
mod entropy;
mod errors;
mod extract;
mod health;
mod ldpc;
mod protocol;
mod qkd;
mod stream;

use pyo3::prelude::*;

#[pymodule]
mod _core {
    use pyo3::prelude::*;
    use qitcore_core::gf2::backend::{self, Backend};

    use crate::errors::Result;

    #[pymodule_export]
    use crate::auth::{wegman_carter_epsilon, wegman_carter_tag, PyChannelKey, PyChannelMac};
    #[pymodule_export]
    use crate::bitgen::{bitgen_capsule, PyBitGenLock};
    #[pymodule_export]
    use crate::entropy::{assess_iid, assess_non_iid, assess_restart};
    #[pymodule_export]
    use crate::extract::{
        conditioned_entropy, hash_condition, output_entropy, output_length, von_neumann, PyModifiedToeplitz, PyToeplitz,
    };
    #[pymodule_export]
    use crate::health::{ais31_procedure_a, fips140_2, health_scan, PyHealthMonitor, PyHealthScanner};
    #[pymodule_export]
    use crate::ldpc::{ldpc_keep, ldpc_plan, ldpc_start_efficiency, PyLdpcDecoder, PyLdpcEncoder};
    #[pymodule_export]
    use crate::protocol::{
        crc32c, encode_frame, format_descriptor, parse_format, parse_info, parse_reply, parse_status, PyFrameDecoder,
    };
    #[pymodule_export]
    use crate::qkd::{
        cascade_correct, check_decoys, check_link, decode_pulse_numbers, encode_pulse_numbers, finite_key_length,
        sift_announce, sift_answer, sift_conclude, sift_key_count, simulate_bb84, verification_collision_bound,
        verification_tags, PyCascadePreparation, PyCascadeResponder,
    };
    #[pymodule_export]
    use crate::stream::{PyNoiseModel, PyStream};
    #[pymodule_export]
    use qitcore_core::entropy::iid::{chi_square::ChiSquare, lrs::LrsTest, IidReport, PermutationStatistic};
    #[pymodule_export]
    use qitcore_core::entropy::{non_iid::NonIidReport, restart::RestartReport, Estimate};
    #[pymodule_export]
    use qitcore_core::frame::{messages::Info, messages::Reply, messages::Status, DecoderStats, SampleFormat};
    #[pymodule_export]
    use qitcore_core::health::{block_tests::Outcome, block_tests::ProcedureA, monitor::Counters, self_test::SelfTest};
    #[pymodule_export]
    use qitcore_core::health::{Failure, Scan};
    #[pymodule_export]
    use qitcore_core::qkd::{finite_key::SecureLength, sim::Detections};
    #[pymodule_export]
    use qitcore_core::{pipeline::Stats, sim::SimCounters};

    /// The carry-less multiplication backend in use: "portable", "pclmul" or "vpclmul".
    #[pyfunction]
    fn clmul_backend() -> &'static str {
        backend::active().name()
    }

    /// The backends this CPU can run, slowest first.
    #[pyfunction]
    fn available_clmul_backends() -> Vec<&'static str> {
        backend::available().into_iter().map(Backend::name).collect()
    }

    /// Switches the backend for the whole process.
    #[pyfunction]
    fn set_clmul_backend(#[pyo3(from_py_with = crate::args::choice)] backend: Backend) -> Result<()> {
        Ok(backend::set_active(backend)?)
    }

    #[pymodule_init]
    fn init(m: &Bound<'_, PyModule>) -> PyResult<()> {
        m.add("__version__", env!("CARGO_PKG_VERSION"))?;
        // Defaults and limits the Python layer shows its users, defined once in the core.
        m.add("DEFAULT_PERMUTATIONS", qitcore_core::entropy::iid::DEFAULT_PERMUTATIONS)?;
        m.add("MAX_SAMPLES", qitcore_core::entropy::samples::MAX_SAMPLES)?;
        m.add("DEFAULT_CASCADE", qitcore_core::qkd::cascade::Variant::default())?;
        m.add("LDPC_BLIND_STEP", qitcore_core::qkd::ldpc::adapt::BLIND_STEP)?;
        m.add("CASCADE_VARIANTS", pyo3::types::PyTuple::new(m.py(), qitcore_core::qkd::cascade::Variant::NAMES)?)?;
        m.add("HEALTH_DEFAULT_ALPHA", qitcore_core::health::Config::DEFAULT_ALPHA)?;
        m.add("HEALTH_DEFAULT_STARTUP_SAMPLES", qitcore_core::health::Config::DEFAULT_STARTUP_SAMPLES)
    }
}
