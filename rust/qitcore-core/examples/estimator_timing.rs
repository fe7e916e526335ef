//! Times each estimator of the non-IID track on one file, with the process's peak resident set
//! after each (Linux): `cargo run --release --example estimator_timing -- FILE [BITS]`.

use std::time::Instant;

use qitcore_core::entropy::estimators::{
    collision, compression, lag, lz78y, markov, most_common, multi_mcw, multi_mmc, tuples,
};
use qitcore_core::entropy::{Samples, Stop, View};

fn time<T>(label: &str, f: impl FnOnce() -> T) -> T {
    let start = Instant::now();
    let out = f();
    println!("{label:<28} {:8.3} s  peak {:>6} MiB", start.elapsed().as_secs_f64(), peak_mib());
    out
}

/// The peak resident set so far (`VmHWM`), 0 where `/proc` does not say.
fn peak_mib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap_or("");
    line.split_whitespace().nth(1).and_then(|kib| kib.parse::<u64>().ok()).unwrap_or(0) / 1024
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let data = std::fs::read(&args[0]).expect("readable file");
    let samples = Samples::new(&data, args.get(1).map(|b| b.parse().expect("bits"))).expect("samples");
    let bits = samples.bitstring().expect("memory for the bit string");
    let views = [(View::Literal, samples.symbols(), samples.alphabet_size), (View::Bitstring, &bits[..], 2)];
    for (view, s, k) in views {
        let l = view.label();
        time(&format!("{l} most common"), || most_common::most_common_value(s, k, view));
        if k == 2 {
            time(&format!("{l} collision"), || collision::collision(s, view));
            time(&format!("{l} markov"), || markov::markov(s, view));
            time(&format!("{l} compression"), || compression::compression(s, view));
        }
        time(&format!("{l} tuples"), || {
            tuples::tuple_counts(s, Stop::NEVER).expect("memory").map(|c| tuples::tuple_estimates(&c, view))
        });
        time(&format!("{l} multi_mcw"), || multi_mcw::multi_mcw(s, k, view, Stop::NEVER));
        time(&format!("{l} lag"), || lag::lag(s, k, view, Stop::NEVER));
        time(&format!("{l} multi_mmc"), || multi_mmc::multi_mmc(s, k, view, Stop::NEVER));
        time(&format!("{l} lz78y"), || lz78y::lz78y(s, k, view, Stop::NEVER));
    }
}
