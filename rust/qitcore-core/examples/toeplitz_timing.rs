//! Times Toeplitz hashing as the benchmarks use it, without Python around it, for profiling:
//! `cargo run --release --example toeplitz_timing -- [case ...]` with cases `stream1024`,
//! `stream4096` (64 MiB through one seed), `pa20`, `pa24`, `pa27` (one block of 2^k bits with a
//! fresh seed: preparation included), `pa20-hash` (the block alone, seed prepared beforehand),
//! and `onceK` / `oncefftK` (the one-shot Toeplitz-Karatsuba / split FFT alone, on 2^K bits).
//! `RAYON_NUM_THREADS=1` measures one core.

#[path = "common/timing.rs"]
mod timing;

use qitcore_core::bits::BitOrder;
use qitcore_core::extract::blocks::BlockHash;
use qitcore_core::extract::Toeplitz;

fn bytes(len: usize, salt: u64) -> Vec<u8> {
    let mut state = salt.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

/// Median wall seconds of `rounds` runs after one warm-up; also prints the median CPU seconds,
/// steadier than wall time on a shared machine.
fn median_s(rounds: usize, mut run: impl FnMut()) -> f64 {
    run();
    let (wall, cpu) = timing::sorted_runs(rounds, run);
    print!("[cpu {:.2} ms] ", cpu[rounds / 2] * 1e3);
    wall[rounds / 2]
}

fn stream(n: usize) {
    let m = n / 2;
    let seed = bytes((n + m - 1).div_ceil(8), 1);
    let data = bytes(64 << 20, 2);
    let t = Toeplitz::new(n, m, &seed, BitOrder::Big).expect("valid sizes");
    let mut out = vec![0u8; t.output_bytes(data.len() * 8 / n)];
    let s = median_s(5, || {
        t.hash(&data, None, &mut out).expect("whole blocks");
    });
    println!("stream n={n} m={m}: {:.1} ms, {:.2} Gbit/s", s * 1e3, data.len() as f64 * 8.0 / s / 1e9);
}

fn one_block(log2: u32, with_seed: bool) {
    let n = 1usize << log2;
    let m = n / 2;
    let seed = bytes((n + m - 1).div_ceil(8), 3);
    let x = bytes(n / 8, 4);
    let mut out = vec![0u8; m / 8];
    let rounds = if log2 >= 26 { 3 } else { 9 };
    let s = if with_seed {
        median_s(rounds, || {
            let t = Toeplitz::new(n, m, &seed, BitOrder::Big).expect("valid sizes");
            t.hash(&x, None, &mut out).expect("one block");
        })
    } else {
        let t = Toeplitz::new(n, m, &seed, BitOrder::Big).expect("valid sizes");
        median_s(rounds, || {
            t.hash(&x, None, &mut out).expect("one block");
        })
    };
    let what = if with_seed { "with seed preparation" } else { "hash only" };
    println!("one block n=2^{log2} m=n/2, {what}: {:.2} ms, {:.0} Mbit/s", s * 1e3, n as f64 / s / 1e6);
}

/// The one-shot Toeplitz-Karatsuba (`fft` false) or the one-shot split FFT on words (no
/// preparation at all), for calibrating the choice between them.
fn once(log2: u32, fft: bool) {
    use qitcore_core::gf2::{backend, toeplitz_karatsuba};
    let n = 1usize << log2;
    let m = n / 2;
    let a: Vec<u64> = (0..(n + m).div_ceil(64) as u64).map(|i| i.wrapping_mul(0x9e37_79b9_7f4a_7c15)).collect();
    let mut a = a;
    qitcore_core::bits::mask_tail(&mut a, n + m - 1);
    let x: Vec<u64> = (0..(n / 64) as u64).map(|i| i.wrapping_mul(0xc2b2_ae3d_27d4_eb4f)).collect();
    let mut y = vec![0u64; m / 64];
    let s = median_s(if log2 >= 24 { 3 } else { 9 }, || {
        if fft {
            qitcore_core::gf2::middle::apply_once_fft(backend::active(), &a, n, m, 0, &x, &mut y)
        } else {
            toeplitz_karatsuba::apply_once(backend::active(), &a, n, m, &x, &mut y)
        }
    });
    let what = if fft { "split FFT" } else { "Toeplitz-Karatsuba" };
    println!("one-shot {what} n=2^{log2}: {:.2} ms, {:.0} Mbit/s", s * 1e3, n as f64 / s / 1e6);
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let cases: Vec<&str> = if args.is_empty() {
        vec!["stream1024", "stream4096", "pa20", "pa20-hash", "pa24"]
    } else {
        args.iter().map(String::as_str).collect()
    };
    for case in cases {
        match case {
            "stream1024" => stream(1024),
            "stream4096" => stream(4096),
            other if other.starts_with("oncefft") => once(other[7..].parse().expect("oncefftK"), true),
            other if other.starts_with("once") => once(other[4..].parse().expect("onceK"), false),
            other => {
                let (k, hash_only) = match other.strip_suffix("-hash") {
                    Some(k) => (k, true),
                    None => (other, false),
                };
                let log2: u32 = k.strip_prefix("pa").and_then(|s| s.parse().ok()).expect("unknown case");
                one_block(log2, !hash_only);
            }
        }
    }
}
