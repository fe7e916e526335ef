//! The QRNG data path (docs/architecture.md): transport bytes → frame decoder → unpacker → health monitor
//! → extractor → bounded output queue.

pub mod conditioner;
#[cfg(target_os = "linux")]
pub mod fd;
pub mod framer;
pub mod stream;

pub use conditioner::{Conditioner, Extraction, GapPolicy, Stats, StreamError};
pub use stream::{ReadError, Stream};
