//! Measures the two limits a streaming Toeplitz kernel runs against on this machine: the
//! carry-less-multiply throughput of the CPU (64×64-bit products per second, with as many
//! independent products in flight as the kernel could have) and the memory bandwidth for reading
//! a buffer far larger than the caches. Both on one core and on every core rayon uses:
//! `cargo run --release --example machine_limits`.

use std::time::Instant;

use rayon::prelude::*;

/// Best of `rounds` timings (the limit is what the machine can do when left alone).
fn best_s(rounds: usize, mut run: impl FnMut()) -> f64 {
    run();
    (0..rounds)
        .map(|_| {
            let start = Instant::now();
            run();
            start.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min)
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    /// `iters` rounds of eight independent VPCLMULQDQ on 512-bit registers (32 products each
    /// round); returns a value that depends on every product, so nothing is optimised away.
    #[target_feature(enable = "avx512f,vpclmulqdq")]
    pub unsafe fn vpclmul_loop(iters: u64, seed: u64) -> u64 {
        let b = _mm512_set1_epi64(seed as i64 | 1);
        let mut acc = [_mm512_set1_epi64(seed.rotate_left(7) as i64); 8];
        for _ in 0..iters {
            for a in acc.iter_mut() {
                // The product of the running value keeps a dependency per register, with eight
                // registers in flight: more than latency × throughput on any current core.
                *a = _mm512_clmulepi64_epi128(*a, b, 0x00);
            }
        }
        let mut x = acc[0];
        for a in &acc[1..] {
            x = _mm512_xor_si512(x, *a);
        }
        let mut out = [0u64; 8];
        // SAFETY: out has room for one 512-bit store.
        unsafe { _mm512_storeu_si512(out.as_mut_ptr() as *mut __m512i, x) };
        out.iter().fold(0, |s, v| s ^ v)
    }

    /// As [`vpclmul_loop`] with 128-bit PCLMULQDQ (one product per instruction).
    #[target_feature(enable = "pclmulqdq,sse2")]
    pub unsafe fn pclmul_loop(iters: u64, seed: u64) -> u64 {
        let b = _mm_set1_epi64x(seed as i64 | 1);
        let mut acc = [_mm_set1_epi64x(seed.rotate_left(7) as i64); 8];
        for _ in 0..iters {
            for a in acc.iter_mut() {
                *a = _mm_clmulepi64_si128(*a, b, 0x00);
            }
        }
        acc.iter().fold(0u64, |s, a| s ^ _mm_cvtsi128_si64(*a) as u64)
    }
}

/// 64×64 products per second of `kernel` (rounds of 8 instructions of `per_instruction` products)
/// on `threads` threads at once.
fn products_per_s(threads: usize, per_instruction: u64, kernel: fn(u64, u64) -> u64) -> f64 {
    const ITERS: u64 = 20_000_000;
    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().expect("thread pool");
    let s = best_s(5, || {
        let sink: u64 = pool.install(|| (0..threads as u64).into_par_iter().map(|t| kernel(ITERS, t + 3)).sum());
        std::hint::black_box(sink);
    });
    (threads as u64 * ITERS * 8 * per_instruction) as f64 / s
}

/// Bytes per second read from a 1 GiB buffer by `threads` threads (each XORs its share with
/// 512-bit loads, which the compiler vectorises).
fn read_bytes_per_s(threads: usize, buffer: &[u64]) -> f64 {
    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().expect("thread pool");
    let s = best_s(5, || {
        let sink: u64 = pool.install(|| {
            buffer
                .par_chunks(buffer.len() / threads)
                .map(|part| {
                    let mut lanes = [0u64; 8];
                    for chunk in part.chunks_exact(8) {
                        for (l, v) in lanes.iter_mut().zip(chunk) {
                            *l ^= v;
                        }
                    }
                    lanes.iter().fold(0, |s, v| s ^ v)
                })
                .reduce(|| 0, |a, b| a ^ b)
        });
        std::hint::black_box(sink);
    });
    (buffer.len() * 8) as f64 / s
}

fn main() {
    let cores = rayon::current_num_threads();
    let mut thread_counts = vec![1];
    if cores > 1 {
        thread_counts.push(cores);
    }
    #[cfg(target_arch = "x86_64")]
    {
        for &threads in &thread_counts {
            if std::is_x86_feature_detected!("avx512f") && std::is_x86_feature_detected!("vpclmulqdq") {
                // SAFETY: the features were detected just above.
                let rate = products_per_s(threads, 4, |i, s| unsafe { x86::vpclmul_loop(i, s) });
                println!("VPCLMULQDQ zmm, {threads} thread(s): {:.2} G products/s", rate / 1e9);
            }
            if std::is_x86_feature_detected!("pclmulqdq") {
                // SAFETY: as above.
                let rate = products_per_s(threads, 1, |i, s| unsafe { x86::pclmul_loop(i, s) });
                println!("PCLMULQDQ xmm, {threads} thread(s): {:.2} G products/s", rate / 1e9);
            }
        }
    }
    let buffer: Vec<u64> = (0..(1u64 << 27)).map(|i| i.wrapping_mul(0x9e37_79b9_7f4a_7c15)).collect();
    for &threads in &thread_counts {
        println!("memory read, {threads} thread(s): {:.1} GB/s", read_bytes_per_s(threads, &buffer) / 1e9);
    }
}
