//! Entropy assessment after NIST SP 800-90B: the non-IID track (§6.3), the IID track (§5 and
//! §6.3.1), the restart tests (§3.1.4) and what they share.

pub mod estimate;
pub mod estimators;
pub mod iid;
pub mod non_iid;
pub mod restart;
pub mod samples;
pub mod stats;
pub mod stop;

pub use estimate::{Estimate, Fields, Value, View};
pub use samples::Samples;
pub use stop::Stop;
