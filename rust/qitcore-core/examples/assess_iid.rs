//! Runs the IID track on a file and prints its values in the form of NIST's `ea_iid -vvv`:
//! `cargo run --release --example assess_iid -- FILE [BITS]`; `PERMS` caps the permutations and
//! `SEED` picks the generator streams.

use std::ops::ControlFlow;
use std::time::Instant;

use qitcore_core::entropy::iid;
use qitcore_core::entropy::Samples;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let data = std::fs::read(&args[0]).expect("readable file");
    let start = Instant::now();
    let samples = Samples::new(&data, args.get(1).map(|b| b.parse().expect("bits"))).expect("samples");
    let r = iid::assess(
        &samples,
        std::env::var("PERMS").map(|v| v.parse().unwrap()).unwrap_or(iid::DEFAULT_PERMUTATIONS),
        std::env::var("SEED").map(|v| v.parse().unwrap()).unwrap_or(20261126),
        &|_, _| ControlFlow::Continue(()),
    )
    .expect("memory for the LRS test")
    .expect("not interrupted");
    let elapsed = start.elapsed();
    println!("Raw Mean = {:.17}", r.mean);
    println!("Median = {}", r.median);
    println!("H_original = {:.17}", r.h_original);
    println!("Assessed min entropy: {:.17}", r.h_assessed);
    let (i, g) = (r.independence, r.goodness_of_fit);
    println!("Chi square independence: T = {:.17}, df = {}, P-value = {:.17}", i.score, i.df, i.p_value);
    println!("Chi square goodness of fit: T = {:.17}, df = {}, P-value = {:.17}", g.score, g.df, g.p_value);
    println!(
        "LRS: P_col = {:.17}, W = {}, Pr = {}, passed {}",
        r.lrs.p_col, r.lrs.length, r.lrs.probability, r.lrs.passed
    );
    for t in &r.permutation {
        let (above, equal, below) = t.counts;
        println!("Unpermuted result {} = {} ({above} {equal} {below})", t.name, t.value);
    }
    let passed = r.permutation.iter().all(|t| t.passed);
    println!("rounds {} permutation passed {passed} all passed {}", r.permutation_rounds, r.passed);
    eprintln!("{:.3} s", elapsed.as_secs_f64());
}
