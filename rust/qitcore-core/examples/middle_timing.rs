//! Times each middle-product algorithm (the Toeplitz hash of one block) on one size, to tune the
//! dispatch thresholds: `cargo run --release --example middle_timing -- N M [algorithm ...]` with
//! algorithms `window`, `karatsuba`, `fft` (parts chosen) or `fftS` (S parts).

use std::time::Instant;

use qitcore_core::bits::words_for;
use qitcore_core::gf2::backend;
use qitcore_core::gf2::middle::{Algorithm, MiddleProduct};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let n: usize = args.first().and_then(|s| s.parse().ok()).unwrap_or(1 << 16);
    let m: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(n / 2);
    let names: Vec<&str> = if args.len() > 2 {
        args[2..].iter().map(String::as_str).collect()
    } else {
        vec!["window", "karatsuba", "fft"]
    };
    let mut a: Vec<u64> = (0..words_for(n + m - 1) as u64).map(|i| i.wrapping_mul(0x9e37_79b9_7f4a_7c15)).collect();
    qitcore_core::bits::mask_tail(&mut a, n + m - 1);
    let mut x: Vec<u64> = (0..words_for(n) as u64).map(|i| i.wrapping_mul(0xc2b2_ae3d_27d4_eb4f)).collect();
    qitcore_core::bits::mask_tail(&mut x, n);
    let be = backend::active();
    for name in names {
        let algorithm = match name {
            "window" => Algorithm::Window,
            "karatsuba" => Algorithm::Karatsuba,
            "fft" => Algorithm::Fft(0),
            "auto" => Algorithm::Auto,
            other => Algorithm::Fft(other.trim_start_matches("fft").parse().expect("fftS with S a number")),
        };
        let start = Instant::now();
        let mp = MiddleProduct::new(be, &a, n, m, algorithm);
        let prepare = start.elapsed().as_secs_f64() * 1e3;
        let (mut y, mut scratch) = (vec![0u64; words_for(m)], Vec::new());
        let reps = (20_000_000 / n).clamp(3, 2000);
        let mut times: Vec<f64> = (0..reps)
            .map(|_| {
                let start = Instant::now();
                mp.apply(be, &x, &mut y, &mut scratch);
                start.elapsed().as_secs_f64() * 1e3
            })
            .collect();
        times.sort_by(f64::total_cmp);
        let median = times[times.len() / 2];
        println!(
            "n={n} m={m} {name:>9} on {}: prepare {prepare:.3} ms, apply median {median:.4} ms ({:.0} Mbit/s)",
            be.name(),
            n as f64 / median / 1e3
        );
    }
}
