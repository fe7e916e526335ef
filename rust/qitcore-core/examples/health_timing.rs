//! Throughput of the continuous health tests (RCT + APT) on one core:
//! `cargo run --release --example health_timing -- [MEGABYTES]`.

use std::time::Instant;

use qitcore_core::health::{Config, Monitor};

fn main() {
    let mb: usize = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(256);
    let mut state = 0x1234_5678_9abc_def0u64;
    let data: Vec<u8> = (0..mb << 20)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect();
    let mut best = f64::MAX;
    for _ in 0..5 {
        // At α = 2^−20 a 256 MiB stream of ideal samples would see ~100 false alarms; 2^−40 none.
        let mut m = Monitor::new(Config { alpha: (-40f64).exp2(), ..Config::new(7.0, 8) }).expect("valid config");
        let start = Instant::now();
        let r = m.process(&data).expect("random data passes");
        best = best.min(start.elapsed().as_secs_f64());
        assert!(r.emit > 0);
    }
    println!("RCT + APT, 8-bit samples: {:.2} GB/s (best of 5 over {mb} MiB)", data.len() as f64 / best / 1e9);
}
