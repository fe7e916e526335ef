//! The binary entropy function (Cascade's efficiency, the finite-key length).

/// `h(p) = −p·log2 p − (1 − p)·log2(1 − p)`, in bits; 0 outside (0, 1).
pub fn h2(p: f64) -> f64 {
    if p <= 0.0 || p >= 1.0 {
        0.0
    } else {
        -p * p.log2() - (1.0 - p) * (1.0 - p).log2()
    }
}

#[cfg(test)]
mod tests {
    use super::h2;

    #[test]
    fn binary_entropy_at_known_points() {
        assert_eq!(h2(0.0), 0.0);
        assert_eq!(h2(1.0), 0.0);
        assert!((h2(0.5) - 1.0).abs() < 1e-15);
        assert!((h2(0.11) - 0.4999162).abs() < 1e-6);
        assert_eq!(h2(0.2), h2(0.8));
    }
}
