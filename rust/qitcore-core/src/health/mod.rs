//! Health tests for noise sources: the SP 800-90B continuous tests (Repetition Count, Adaptive
//! Proportion) with their start-up test and on-demand self-test, and the block tests QRNG users
//! still ask for (FIPS 140-2 and BSI AIS 31 procedure A).

pub mod block_tests;
pub mod buffered;
pub mod cutoffs;
pub mod monitor;
pub mod scan;
pub mod self_test;
pub mod state;

pub use buffered::BufferedMonitor;
pub use cutoffs::AptFormula;
pub use monitor::{Config, Failure, HealthTest, Monitor, Release, State};
pub use scan::{scan, Scan, Scanner};
