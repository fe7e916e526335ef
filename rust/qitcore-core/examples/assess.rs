//! Runs the non-IID track on a file and prints every value in the form of NIST's
//! `ea_non_iid -vv`: `cargo run --release --example assess -- FILE [BITS]`.

use std::time::Instant;

use qitcore_core::entropy::{non_iid, Samples, Stop, Value};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let data = std::fs::read(&args[0]).expect("readable file");
    let bits = args.get(1).map(|b| b.parse().expect("bits per symbol"));
    let start = Instant::now();
    let samples = Samples::new(&data, bits).expect("valid samples");
    let report = non_iid::assess(&samples, Stop::NEVER).expect("memory").expect("not interrupted");
    let elapsed = start.elapsed();
    for e in report.bitstring.iter().chain(&report.literal) {
        for (key, value) in &e.fields.0 {
            match value {
                Value::Int(v) => println!("{} {} Estimate: {key} = {v}", e.view.label(), e.name),
                Value::Real(v) => println!("{} {} Estimate: {key} = {v:.17e}", e.view.label(), e.name),
            }
        }
        if let Some(h) = e.min_entropy {
            println!("{} {} Estimate: min entropy = {h:.17e}", e.view.label(), e.name);
        }
    }
    if let Some(hb) = report.h_bitstring {
        println!("H_bitstring = {hb:.17e}");
    }
    println!("H_original: {:.17e}", report.h_original);
    println!("Assessed min entropy: {:.17e}", report.h_assessed);
    eprintln!("{:.3} s", elapsed.as_secs_f64());
}
