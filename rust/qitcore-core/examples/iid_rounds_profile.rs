//! The permutation tests' loop run on one thread with each statistic timed apart: where a run's
//! time goes (fixed costs, the arrangements, each statistic over the rounds it stays undecided)
//! and when each statistic is decided.
//! `cargo run --release --example iid_rounds_profile -- FILE BITS SEED`.

use std::time::Instant;

use qitcore_core::entropy::iid::chi_square::chi_square_tests;
use qitcore_core::entropy::iid::lrs::lrs_test;
use qitcore_core::entropy::iid::permutation::{statistics, tally, Context};
use qitcore_core::entropy::Samples;
use qitcore_core::maths::arrangement::{Composition, Scratch};
use qitcore_core::maths::xoshiro::Xoshiro256;

fn ms<T>(f: impl FnOnce() -> T) -> (T, f64) {
    let t = Instant::now();
    let r = f();
    (r, t.elapsed().as_secs_f64() * 1e3)
}

/// Statistics computed together: timing one member times the group.
const GROUPS: [&[usize]; 7] = [&[0], &[1, 2, 3], &[4, 5], &[6, 7], &[8, 9, 10, 11, 12], &[13, 14, 15, 16, 17], &[18]];

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let data = std::fs::read(&args[0]).expect("readable file");
    let bits: u32 = args[1].parse().expect("bits");
    let seed: u64 = args[2].parse().expect("seed");
    let samples = Samples::new(&data, Some(bits)).expect("samples");
    let k = samples.alphabet_size;
    let (_, chi) = ms(|| chi_square_tests(samples.symbols(), k));
    let (_, lrs) = ms(|| lrs_test(samples.symbols(), k, qitcore_core::entropy::Stop::NEVER));
    let n = samples.len() as f64;
    let mean = samples.raw().iter().map(|&v| f64::from(v)).sum::<f64>() / n;
    let mut sorted = samples.symbols().to_vec();
    sorted.sort_unstable();
    let median = if k == 2 {
        0.5
    } else {
        (f64::from(sorted[sorted.len() / 2]) + f64::from(sorted[(sorted.len() - 1) / 2])) / 2.0
    };
    let ctx = Context { k, raw_mean: mean, median };
    let (initial, init_ms) = ms(|| statistics(samples.symbols(), samples.raw(), &ctx, &[true; 19]));
    let symbol_of = {
        let mut t = [0u8; 256];
        for (&d, &r) in samples.symbols().iter().zip(samples.raw()) {
            t[usize::from(r)] = d;
        }
        t
    };
    let comp = Composition::of(samples.raw());
    let (mut w, mut d) = (vec![0u8; samples.len()], vec![0u8; samples.len()]);
    let mut scratch = Scratch::default();
    let mut active = [true; 19];
    let mut counts = [[0u64; 3]; 19];
    let mut decided = [0usize; 19];
    let mut group_ms = [0.0f64; 7];
    let mut arrange_ms = 0.0;
    let mut rounds = 0;
    while rounds < 10_000 && active.iter().any(|&a| a) {
        let mut rng = Xoshiro256::from_seed(seed ^ (rounds as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15));
        let (_, t) = ms(|| {
            comp.arrange_into(samples.raw(), &mut w, &mut rng, &mut scratch);
            for (o, &v) in d.iter_mut().zip(&w) {
                *o = symbol_of[usize::from(v)];
            }
        });
        arrange_ms += t;
        let mut tp = [f64::NAN; 19];
        for (g, members) in GROUPS.iter().enumerate() {
            let mut wanted = [false; 19];
            for &j in *members {
                wanted[j] = active[j];
            }
            if wanted.iter().any(|&x| x) {
                let (r, t) = ms(|| statistics(&d, &w, &ctx, &wanted));
                group_ms[g] += t;
                for &j in *members {
                    if wanted[j] {
                        tp[j] = r[j];
                    }
                }
            }
        }
        rounds += 1;
        for j in tally(&mut counts, &mut active, &initial, &tp) {
            decided[j] = rounds;
        }
    }
    println!("fixed: chi-square {chi:.0} ms, LRS {lrs:.0} ms, statistics of the samples {init_ms:.0} ms");
    println!("rounds {rounds}; arrangements {arrange_ms:.0} ms ({:.2} ms each)", arrange_ms / rounds as f64);
    let names = [
        "excursion",
        "directional runs",
        "runs about the median",
        "collisions",
        "periodicity",
        "covariance",
        "compression",
    ];
    for (g, members) in GROUPS.iter().enumerate() {
        println!(
            "  {:>22}: {:6.0} ms, decided after {:?} rounds",
            names[g],
            group_ms[g],
            members.iter().map(|&j| decided[j]).collect::<Vec<_>>()
        );
    }
    let total = chi + lrs + init_ms + arrange_ms + group_ms.iter().sum::<f64>();
    println!("total one thread: {total:.0} ms");
}
