//! Prints the restart sanity-check cutoff for an initial entropy: `-- H_I`.

fn main() {
    let h: f64 = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(7.0);
    let alpha = 1.0 - (0.99f64.ln() / 2000.0).exp();
    println!("ALPHA: {alpha:.17}, X_cutoff: {}", qitcore_core::entropy::restart::sanity_cutoff(h, alpha));
}
