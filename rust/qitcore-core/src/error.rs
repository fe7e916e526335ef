//! The one error type of the core crate; the binding maps each variant to a Python exception once.

use std::fmt;

/// Everything that can go wrong in the core crate. No function of the crate panics on user input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// An argument's value lies outside its domain (a size of zero, ε outside (0, 1), …).
    InvalidArgument {
        /// The argument's name as the user wrote it.
        name: &'static str,
        /// What was expected and what was given.
        message: String,
    },
    /// A buffer's length does not fit the operation (a seed of the wrong size, a partial block, …).
    InvalidLength {
        /// The argument's name as the user wrote it.
        name: &'static str,
        /// What was expected and what was given.
        message: String,
    },
    /// The operating system's random number generator could not be read.
    Os(String),
    /// A device broke the protocol: a malformed payload, an unsupported version or format.
    Protocol(String),
    /// A QKD peer's message broke the post-processing protocol: malformed, out of turn, or
    /// inconsistent with what the peer said before.
    Peer(String),
    /// A buffer of `bytes` bytes for `what` could not be allocated.
    OutOfMemory {
        /// What the buffer was for, as the user would name it.
        what: &'static str,
        /// Its size.
        bytes: usize,
    },
}

impl Error {
    pub(crate) fn argument(name: &'static str, message: impl Into<String>) -> Self {
        Error::InvalidArgument { name, message: message.into() }
    }

    /// A string naming none of `names`, the choices of argument `name`.
    pub(crate) fn choice(name: &'static str, names: &[&str], given: &str) -> Self {
        let names: Vec<String> = names.iter().map(|n| format!("{n:?}")).collect();
        // A user's string is echoed to 40 characters at most (it may be anything, of any size).
        let shown: String = given.chars().take(40).collect();
        let more = if shown.len() < given.len() { "..." } else { "" };
        Error::argument(name, format!("expected one of {}, got {shown:?}{more}", names.join(", ")))
    }

    pub(crate) fn protocol(message: impl Into<String>) -> Self {
        Error::Protocol(message.into())
    }

    pub(crate) fn peer(message: impl Into<String>) -> Self {
        Error::Peer(message.into())
    }

    pub(crate) fn length(name: &'static str, message: impl Into<String>) -> Self {
        Error::InvalidLength { name, message: message.into() }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::InvalidArgument { name, message } | Error::InvalidLength { name, message } => {
                write!(f, "{name}: {message}")
            }
            Error::Os(message) => write!(f, "operating system random number generator: {message}"),
            Error::Protocol(message) => write!(f, "device protocol: {message}"),
            Error::Peer(message) => f.write_str(message),
            Error::OutOfMemory { what, bytes } => write!(f, "{what}: could not allocate {bytes} bytes"),
        }
    }
}

impl std::error::Error for Error {}

/// The result type of the core crate.
pub type Result<T> = std::result::Result<T, Error>;

/// `work` run with a stop flag nobody sets: the plain form of the `…_until` functions (work that
/// gives up, `None`, once its flag is set), whose `None` then cannot come (and is an error, not a
/// panic, if it did).
pub(crate) fn unstopped<T>(work: impl FnOnce(&std::sync::atomic::AtomicBool) -> Result<Option<T>>) -> Result<T> {
    work(&std::sync::atomic::AtomicBool::new(false))?
        .ok_or_else(|| Error::argument("stop", "stopped with no stop asked"))
}
