//! Which carry-less multiplier the arithmetic uses: chosen at run time from the CPU's features,
//! overridable through the `QITCORE_CLMUL` environment variable (`portable`, `pclmul`,
//! `vpclmul`, `auto`) so that the tests can cover every path on one machine.

use std::sync::atomic::{AtomicU8, Ordering};

use crate::error::{Error, Result};

/// A carry-less multiplication engine.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Backend {
    /// Plain integer arithmetic, on every CPU; constant time (no table lookups).
    Portable = 1,
    /// x86-64 PCLMULQDQ on 128-bit registers.
    Pclmul = 2,
    /// x86-64 VPCLMULQDQ on 512-bit registers (AVX-512F).
    Vpclmul = 3,
}

/// The environment variable that forces a backend.
pub const ENV_VAR: &str = "QITCORE_CLMUL";

static ACTIVE: AtomicU8 = AtomicU8::new(0);

impl Backend {
    /// All backends, slowest first.
    pub const ALL: [Backend; 3] = [Backend::Portable, Backend::Pclmul, Backend::Vpclmul];

    /// The backend's name as the environment variable spells it.
    pub fn name(self) -> &'static str {
        match self {
            Backend::Portable => "portable",
            Backend::Pclmul => "pclmul",
            Backend::Vpclmul => "vpclmul",
        }
    }

    /// Parses a backend name.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for a name that is not a backend.
    pub fn parse(name: &str) -> Result<Self> {
        Backend::ALL.into_iter().find(|b| b.name() == name).ok_or_else(|| {
            Error::argument("backend", format!("expected one of portable, pclmul, vpclmul; got {name:?}"))
        })
    }

    /// Whether this CPU can run the backend.
    pub fn is_available(self) -> bool {
        match self {
            Backend::Portable => true,
            #[cfg(target_arch = "x86_64")]
            Backend::Pclmul => std::arch::is_x86_feature_detected!("pclmulqdq"),
            #[cfg(target_arch = "x86_64")]
            Backend::Vpclmul => {
                std::arch::is_x86_feature_detected!("avx512f") && std::arch::is_x86_feature_detected!("vpclmulqdq")
            }
            #[cfg(not(target_arch = "x86_64"))]
            _ => false,
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
    match std::env::var(ENV_VAR).ok().as_deref().map(Backend::parse) {
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
/// [`Error::InvalidArgument`] when this CPU lacks the backend.
pub fn set_active(backend: Backend) -> Result<()> {
    if !backend.is_available() {
        return Err(Error::argument("backend", format!("this CPU cannot run the {} backend", backend.name())));
    }
    ACTIVE.store(backend as u8, Ordering::Relaxed);
    Ok(())
}

/// The backends this CPU can run, slowest first.
pub fn available() -> Vec<Backend> {
    Backend::ALL.into_iter().filter(|b| b.is_available()).collect()
}
