//! Secret material: seeds and keys that come from the OS CSPRNG, never show in `Debug`, and are
//! zeroized when dropped.

use std::fmt;

use zeroize::Zeroizing;

use crate::error::{Error, Result};

/// Bytes that must not leak: wiped on drop, hidden from `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretBytes(Zeroizing<Vec<u8>>);

impl SecretBytes {
    /// Wraps bytes (taking ownership, so the only copy is wiped on drop).
    pub fn new(bytes: Vec<u8>) -> Self {
        SecretBytes(Zeroizing::new(bytes))
    }

    /// `len` bytes from the operating system's CSPRNG (`getrandom`).
    ///
    /// # Errors
    /// [`Error::Os`] when the operating system cannot supply them.
    pub fn random(len: usize) -> Result<Self> {
        let mut bytes = Zeroizing::new(vec![0u8; len]);
        getrandom::fill(&mut bytes).map_err(|e| Error::Os(e.to_string()))?;
        Ok(SecretBytes(bytes))
    }

    /// The secret bytes.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    /// Number of bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are no bytes.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for SecretBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretBytes(<{} bytes hidden>)", self.0.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_the_bytes() {
        let s = SecretBytes::new(vec![0xAB; 4]);
        let shown = format!("{s:?}");
        assert!(!shown.contains("171") && !shown.to_lowercase().contains("ab,"), "{shown}");
        assert!(shown.contains("4 bytes hidden"));
    }

    #[test]
    fn random_bytes_differ_between_calls() {
        // Two 32-byte draws from the OS CSPRNG collide with probability 2^-256.
        let a = SecretBytes::random(32).unwrap();
        let b = SecretBytes::random(32).unwrap();
        assert_eq!(a.len(), 32);
        assert_ne!(a.expose(), b.expose());
    }
}
