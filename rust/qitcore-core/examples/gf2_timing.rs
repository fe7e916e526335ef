//! Times each multiplication method on one size class, to tune the dispatch thresholds:
//! `cargo run --release --example gf2_timing -- WORDS_A WORDS_B [method ...]`.

use std::time::Instant;

use qitcore_core::gf2::{backend, fft, karatsuba};

fn median_ms(mut run: impl FnMut()) -> f64 {
    let mut times: Vec<f64> = (0..5)
        .map(|_| {
            let start = Instant::now();
            run();
            start.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times[2]
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let na: usize = args.first().and_then(|s| s.parse().ok()).unwrap_or(1 << 14);
    let nb: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(na);
    let methods: Vec<&str> =
        if args.len() > 2 { args[2..].iter().map(String::as_str).collect() } else { vec!["karatsuba", "fft"] };
    let a: Vec<u64> = (0..na as u64).map(|i| i.wrapping_mul(0x9e37_79b9_7f4a_7c15).rotate_left(7)).collect();
    let b: Vec<u64> = (0..nb as u64).map(|i| i.wrapping_mul(0xc2b2_ae3d_27d4_eb4f) ^ 0xABCD).collect();
    let be = backend::active();
    let mut out = vec![0u64; na + nb];
    for method in methods {
        let ms = match method {
            "karatsuba" => median_ms(|| karatsuba::karatsuba(be, &a, &b, &mut out)),
            "fft" => median_ms(|| fft::mul(be, &a, &b, &mut out)),
            "fft-fixed" => {
                let len = fft::len_for(na, nb);
                let ta = fft::Transformed::new(be, &a, len);
                median_ms(|| {
                    let mut sum = fft::Accumulator::new(len);
                    sum.add_product(be, &ta, &fft::Transformed::new(be, &b, len));
                    sum.finish(be, &mut out);
                })
            }
            other => panic!("unknown method {other}"),
        };
        println!("{na} x {nb} words, {method:>10} on {}: {ms:.3} ms", be.name());
    }
}
