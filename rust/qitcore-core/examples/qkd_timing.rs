//! Times the Rust parts of one QKD distillation as `qkd.distill` runs them (a 10^6-bit block
//! at 2 % QBER, the link of `benches/bench_qkd.py`), without Python around them, for profiling:
//! `cargo run --release --example qkd_timing -- [rounds]`. Prints median wall and CPU times per
//! step; the in-process oracle encodes and decodes every Cascade batch as the wire does.

#[path = "common/timing.rs"]
mod timing;

use qitcore_core::qkd::bitvec::Bits;
use qitcore_core::qkd::cascade::{Corrector, Layout, Query, Responder, Variant};
use qitcore_core::qkd::finite_key::Decoys;
use qitcore_core::qkd::{sift, sim};

/// Prints the median wall and CPU milliseconds of `rounds` runs after one warm-up, and the
/// fastest run (the steadiest figure on a shared machine).
fn time<T>(name: &str, rounds: usize, mut run: impl FnMut() -> T) -> T {
    let mut out = run();
    let (wall, cpu) = timing::sorted_runs(rounds, || out = run());
    println!(
        "{name:<24} {:7.2} ms  [cpu {:7.2} ms, fastest {:7.2} ms]",
        wall[rounds / 2] * 1e3,
        cpu[rounds / 2] * 1e3,
        wall[0] * 1e3
    );
    out
}

fn main() {
    let rounds: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(9);
    let model = sim::LinkModel {
        distance_km: 20.0,
        attenuation_db_per_km: 0.2,
        detector_efficiency: 0.25,
        dark_count: 1e-6,
        misalignment: 0.02,
        decoys: Decoys { mu: [0.6, 0.2, 0.0002], p: [0.5, 0.3, 0.2] },
        key_basis_probability: 0.8,
    };
    let eta = 0.25 * 10f64.powf(-0.2 * 20.0 / 10.0);
    let detect: f64 = [(0.5, 0.6), (0.3, 0.2), (0.2, 0.0002)]
        .iter()
        .map(|&(p, mu): &(f64, f64)| p * (1.0 - (1.0 - 1e-6f64).powi(2) * (-eta * mu).exp()))
        .sum();
    let pulses = (1e6 / (detect * 0.64)).ceil() as u64;
    let d = sim::simulate(&model, pulses, 1).expect("valid model");
    let index = &d.index.0;
    println!("{} detections", index.len());

    let message = time("sift announce", rounds, || sift::announce(index, &d.bob_basis).expect("valid"));
    let alice = sift::AliceRecords { index, basis: &d.alice_basis, bit: &d.alice_bit, intensity: &d.intensity };
    let (reply, a, _) = time("sift answer", rounds, || sift::answer(&alice, &message).expect("valid"));
    let b = time("sift conclude", rounds, || sift::conclude(&d.bob_basis, &d.bob_bit, &reply, 3).expect("valid"));
    println!("{} sifted key bits", a.key.len());

    let (ka, kb) = (Bits::from_bytes(&a.key), Bits::from_bytes(&b.key));
    let errors = ka.distance(&kb);
    let qber = errors as f64 / ka.len as f64;
    let layout = time("layout", rounds, || Layout::new(ka.len, qber, 7, Variant::Modified).expect("valid"));
    let responder = time("responder", rounds, || {
        Responder::new(Layout::new(ka.len, qber, 7, Variant::Modified).expect("valid"), ka.clone()).expect("valid")
    });
    let (fixed, stats) = time("corrector (layout apart)", rounds, || {
        let mut oracle = |q: &[Query]| {
            let q = Query::decode(&Query::encode(q, responder.layout()), responder.layout())?;
            Ok(Bits::from_packed(&responder.answer(&q).to_packed(), q.iter().map(|q| q.answer_bits(&layout)).sum())
                .expect("whole answer"))
        };
        Corrector::new(&layout, kb.clone()).expect("valid").run(&mut oracle).expect("converges")
    });
    assert_eq!(fixed, ka);
    let f = stats.leaked as f64 / (ka.len as f64 * qitcore_core::maths::entropy::h2(qber));
    println!("rounds {}, leaked {}, corrected {}, f {f:.4}", stats.rounds, stats.leaked, stats.corrected);
}
