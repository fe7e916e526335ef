//! BP thresholds by density evolution (`qkd::ldpc::density`): of every shipped mother code, or of
//! candidate profiles given as a code spec would (`rows "deg:count,..."`, 160 columns or
//! `LDPC_COLS`, the staircase and degree-3 columns as `Code::build` adds them):
//! `cargo run --release -p qitcore-core --example ldpc_threshold [-- rows profile ...]`.

#[path = "common/profile.rs"]
mod profile;

use qitcore_core::qkd::ldpc::adapt::h2;
use qitcore_core::qkd::ldpc::code::{Code, SPECS};
use qitcore_core::qkd::ldpc::density::{converges, threshold, Ensemble};

fn report(name: &str, e: &Ensemble) {
    let rate = e.rate();
    // Bracket: the capacity's crossover above, 0.6 of it below (said when even that fails).
    let capacity = (1..50_000).map(|k| k as f64 / 100_000.0).find(|&q| h2(q) >= 1.0 - rate).unwrap_or(0.5);
    let start = std::time::Instant::now();
    if !converges(e, capacity * 0.6, 5000) {
        println!("{name}: rate {rate:.4}, does not converge at 0.6 of the capacity's crossover");
        return;
    }
    let p = threshold(e, capacity * 0.6, capacity, 11);
    println!(
        "{name}: rate {rate:.4}, capacity p {capacity:.5}, threshold p* {p:.5}, f* {:.4} ({:.1} s)",
        (1.0 - rate) / h2(p),
        start.elapsed().as_secs_f64()
    );
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.is_empty() {
        for spec in SPECS.iter().rev() {
            report(spec.name, &Ensemble::of(Code::named(spec.name).expect("shipped")).expect("degrees of 2 or more"));
        }
        return;
    }
    for pair in args.chunks(2) {
        let rows: usize = pair[0].parse().expect("rows");
        let profile = profile::parse(&pair[1]);
        let cols: usize = std::env::var("LDPC_COLS").ok().and_then(|v| v.parse().ok()).unwrap_or(160);
        let info = cols - (rows - 1);
        let mut columns: Vec<usize> = profile.iter().flat_map(|&(d, k)| std::iter::repeat_n(d, k)).collect();
        columns.resize(info, 3);
        columns.extend(std::iter::repeat_n(2, rows - 1));
        let edges: usize = columns.iter().sum();
        // Checks as even as the edges allow (Code::build's rows differ from these by one or so).
        let checks: Vec<usize> = (0..rows).map(|r| edges / rows + usize::from(r < edges % rows)).collect();
        report(
            &format!("{rows} rows, {}", pair[1]),
            &Ensemble::from_degrees(&columns, &checks).expect("degrees of 2 or more"),
        );
    }
}
