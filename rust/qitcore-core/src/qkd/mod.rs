//! QKD post-processing: HMAC-SHA256 and Wegman–Carter authentication, Cascade and LDPC reconciliation,
//! verification, the finite-key secure length, and a simulated decoy-state BB84 link.

pub mod auth;
pub mod bitvec;
pub mod cascade;
pub mod finite_key;
pub mod hmac;
pub mod ldpc;
pub mod sift;
pub mod sim;
pub mod verify;

use crate::error::unstopped;
