//! The ten estimators of SP 800-90B §6.3, each written from the standard and checked against
//! NIST's own results on NIST's sample data.

pub mod collision;
pub mod compression;
pub mod lag;
pub mod lz78y;
pub mod markov;
pub mod most_common;
pub mod multi_mcw;
pub mod multi_mmc;
pub mod postfix;
pub mod prediction;
pub mod sorted_windows;
pub mod tuples;
