//! Where the IID track's time goes on a file: the fixed costs (statistics of the samples, the
//! chi-square and LRS tests) and one permutation's cost per statistic, single-threaded medians.
//! `cargo run --release --example iid_profile -- FILE [BITS] [ROUNDS]`.

use std::time::Instant;

use qitcore_core::entropy::iid::chi_square::chi_square_tests;
use qitcore_core::entropy::iid::lrs::lrs_test;
use qitcore_core::entropy::iid::permutation::{statistics, Context, NAMES};
use qitcore_core::entropy::Samples;
use qitcore_core::maths::arrangement::{Composition, Scratch};
use qitcore_core::maths::xoshiro::Xoshiro256;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn time<T>(f: impl FnOnce() -> T) -> (T, f64) {
    let t = Instant::now();
    let r = f();
    (r, t.elapsed().as_secs_f64() * 1e3)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let data = std::fs::read(&args[0]).expect("readable file");
    let rounds: usize = args.get(2).map_or(15, |r| r.parse().expect("rounds"));
    let (samples, ms) = time(|| Samples::new(&data, args.get(1).map(|b| b.parse().expect("bits"))).expect("samples"));
    println!("samples: {ms:.1} ms");
    let k = samples.alphabet_size;
    let (_, ms) = time(|| chi_square_tests(samples.symbols(), k));
    println!("chi-square: {ms:.1} ms");
    let (_, ms) = time(|| lrs_test(samples.symbols(), k, qitcore_core::entropy::Stop::NEVER));
    println!("LRS: {ms:.1} ms");
    let n = samples.len() as f64;
    let mean = samples.raw().iter().map(|&v| f64::from(v)).sum::<f64>() / n;
    let mut sorted = samples.symbols().to_vec();
    sorted.sort_unstable();
    let median_sym = if k == 2 {
        0.5
    } else {
        (f64::from(sorted[sorted.len() / 2]) + f64::from(sorted[(sorted.len() - 1) / 2])) / 2.0
    };
    let ctx = Context { k, raw_mean: mean, median: median_sym };
    let (_, ms) = time(|| statistics(samples.symbols(), samples.raw(), &ctx, &[true; 19]));
    println!("initial statistics (all 19): {ms:.1} ms");
    let raw_comp = Composition::of(samples.raw());
    let mut symbol_of = [0u8; 256];
    for (&d, &r) in samples.symbols().iter().zip(samples.raw()) {
        symbol_of[usize::from(r)] = d;
    }
    let mut out = vec![0u8; samples.len()];
    let mut symbols = vec![0u8; samples.len()];
    let mut scratch = Scratch::default();
    let mut rng = Xoshiro256::from_seed(1);
    let mut arrange = Vec::new();
    let mut per = vec![Vec::new(); 19];
    for _ in 0..rounds {
        let (_, ms) = time(|| raw_comp.arrange_into(samples.raw(), &mut out, &mut rng, &mut scratch));
        arrange.push(ms);
        for (s, &v) in symbols.iter_mut().zip(&out) {
            *s = symbol_of[usize::from(v)];
        }
        for (j, p) in per.iter_mut().enumerate() {
            let mut wanted = [false; 19];
            wanted[j] = true;
            let (_, ms) = time(|| statistics(&symbols, &out, &ctx, &wanted));
            p.push(ms);
        }
    }
    println!("arrangement (raw): {:.2} ms (arranges: {})", median(arrange), raw_comp.arranges());
    for (j, p) in per.into_iter().enumerate() {
        println!("  {:>24}: {:.2} ms", NAMES[j], median(p));
    }
}
