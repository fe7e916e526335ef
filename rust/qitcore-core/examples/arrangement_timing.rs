//! Times one permutation-test round's shuffle both ways on a file of samples: Fisher–Yates
//! (`shuffle_into`) against a random arrangement of the multiset (`Composition::arrange_into`).
//! `cargo run --release --example arrangement_timing -- FILE [ROUNDS]`; prints per-round medians.

use std::time::Instant;

use qitcore_core::maths::arrangement::{Composition, Scratch};
use qitcore_core::maths::xoshiro::{shuffle_into, Xoshiro256};

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let data = std::fs::read(&args[0]).expect("readable file");
    let rounds: usize = args.get(1).map_or(200, |r| r.parse().expect("rounds"));
    let composition = Composition::of(&data);
    let mut out = vec![0u8; data.len()];
    let mut scratch = Scratch::default();
    let mut rng = Xoshiro256::from_seed(1);
    let (mut fy, mut arr) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        let t = Instant::now();
        shuffle_into(&data, &mut out, &mut rng);
        fy.push(t.elapsed().as_secs_f64());
        let t = Instant::now();
        composition.arrange_into(&data, &mut out, &mut rng, &mut scratch);
        arr.push(t.elapsed().as_secs_f64());
    }
    let (fy, arr) = (median(fy), median(arr));
    println!("{}: Fisher-Yates {:.3} ms, arrangement {:.3} ms ({:.1}x)", args[0], fy * 1e3, arr * 1e3, fy / arr);
}
