//! The loopback simulator: a physical model of a homodyne QRNG ([`noise`]) and an in-process
//! device that frames its samples as QDP/1 with injectable link faults ([`device`]).

pub mod device;
pub mod noise;

pub use device::{LinkFaults, SimCounters, SimDevice};
pub use noise::{NoiseParams, NoiseSource};
