//! Which carry-less multiplier the arithmetic uses: chosen at run time from the CPU's features
//! (as [`crate::cpu`] reports them), overridable through the `QITCORE_CLMUL` environment variable
//! (`portable`, `pclmul`, `vpclmul`, `auto`) or [`set_active`] so that the tests can cover every
//! path on one machine. `QITCORE_SIMD=portable`, which forces the portable path of every SIMD
//! site, leaves only [`Backend::Portable`] available here.

use std::sync::atomic::{AtomicU8, Ordering};

use crate::cpu::{self, Features};
use crate::error::{Error, Result};

/// A carry-less multiplication engine.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Backend {
    /// Plain integer arithmetic, on every CPU; constant time (no table lookups).
    Portable = 1,
    /// x86-64 PCLMULQDQ on 128-bit registers.
    Pclmul = 2,
    /// x86-64 VPCLMULQDQ on 512-bit registers (with AVX-512F and AVX-512BW).
    Vpclmul = 3,
}

/// The environment variable that forces a backend.
pub const ENV_VAR: &str = "QITCORE_CLMUL";

static ACTIVE: AtomicU8 = AtomicU8::new(0);

// The names as the environment variable and `set_clmul_backend` spell them.
crate::choice::named_choices!(Backend, "backend", [Portable = "portable", Pclmul = "pclmul", Vpclmul = "vpclmul"]);

impl Backend {
    /// All backends, slowest first.
    pub const ALL: [Backend; 3] = [Backend::Portable, Backend::Pclmul, Backend::Vpclmul];

    /// Whether this CPU can run the backend (and `QITCORE_SIMD` does not force the portable one).
    pub fn is_available(self) -> bool {
        cpu::has(self.features())
    }

    /// The CPU features the backend's kernels are compiled for.
    fn features(self) -> Features {
        match self {
            Backend::Portable => Features::NONE,
            Backend::Pclmul => Features::PCLMULQDQ,
            // The wide kernel is compiled with PCLMULQDQ enabled too (its target features).
            Backend::Vpclmul => Features::AVX512F | Features::AVX512BW | Features::VPCLMULQDQ | Features::PCLMULQDQ,
        }
    }

    /// The fastest backend this CPU can run.
    pub fn best() -> Backend {
        Backend::ALL.into_iter().rev().find(|b| b.is_available()).unwrap_or(Backend::Portable)
    }

    fn from_u8(v: u8) -> Option<Backend> {
        Backend::ALL.into_iter().find(|b| *b as u8 == v)
    }
}

/// Reads the environment variable: a named backend is used when the CPU has it, otherwise the
/// best one below it; `auto` or no variable means the best the CPU has.
fn from_environment() -> Backend {
    let best = Backend::best();
    match std::env::var(ENV_VAR).ok().as_deref().map(str::parse::<Backend>) {
        Some(Ok(wanted)) => Backend::ALL.into_iter().rev().find(|b| *b <= wanted && b.is_available()).unwrap_or(best),
        _ => best,
    }
}

/// The backend in use (decided once, at first use).
pub fn active() -> Backend {
    match Backend::from_u8(ACTIVE.load(Ordering::Relaxed)) {
        Some(b) => b,
        None => {
            let b = from_environment();
            ACTIVE.store(b as u8, Ordering::Relaxed);
            b
        }
    }
}

/// Switches the backend for the whole process (tests and benchmarks).
///
/// # Errors
/// [`Error::InvalidArgument`] when this CPU lacks the backend, or `QITCORE_SIMD=portable`
/// forces the portable one.
pub fn set_active(backend: Backend) -> Result<()> {
    if !backend.is_available() {
        let why = if cpu::portable_forced() { format!("{}=portable", cpu::ENV_VAR) } else { "this CPU".into() };
        return Err(Error::argument("backend", format!("{why} cannot run the {} backend", backend.name())));
    }
    ACTIVE.store(backend as u8, Ordering::Relaxed);
    Ok(())
}

/// The backends this CPU can run, slowest first.
pub fn available() -> Vec<Backend> {
    Backend::ALL.into_iter().filter(|b| b.is_available()).collect()
}
