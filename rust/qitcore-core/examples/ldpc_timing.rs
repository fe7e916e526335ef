//! Times Bob's LDPC decoding (blind rounds included, Alice's answers precomputed) of about 10^6
//! sifted bits over a simulated BSC, as `benches/bench_ldpc.py` does, without Python around it:
//! `cargo run --release -p qitcore-core --example ldpc_timing -- [rounds] [qber...]`. Prints the
//! median wall and CPU milliseconds per run and the fastest run; with `RAYON_NUM_THREADS=1` the
//! CPU time is the decoder's cost on one core, the steadiest figure on a shared machine.

use std::collections::HashMap;
#[path = "common/timing.rs"]
mod timing;

use zeroize::Zeroizing;

use qitcore_core::maths::xoshiro::Xoshiro256;
use qitcore_core::qkd::ldpc::adapt::Plan;
use qitcore_core::qkd::ldpc::blind::{Decoder, Encoder};
use qitcore_core::qkd::ldpc::decode::Settings;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let rounds: usize = args.first().and_then(|a| a.parse().ok()).unwrap_or(5);
    let qbers: Vec<f64> = if args.len() > 1 {
        args[1..].iter().map(|a| a.parse().expect("a QBER")).collect()
    } else {
        vec![0.01, 0.02, 0.03, 0.05, 0.08]
    };
    const N: usize = 1_000_000;
    for q in qbers {
        let mut rng = Xoshiro256::from_seed((q * 1000.0) as u64);
        let plan = Plan::new(N, q, 11).expect("plan");
        let alice: Vec<u8> = (0..N).map(|_| (rng.next_u64() & 1) as u8).collect();
        let bob: Vec<u8> =
            alice.iter().map(|&b| b ^ u8::from((rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64 <= q)).collect();
        let punctured: Vec<u8> = (0..plan.frames * plan.punctured).map(|_| (rng.next_u64() & 1) as u8).collect();
        let mut enc = Encoder::with_punctured(plan.clone(), &alice, Zeroizing::new(punctured)).expect("encoder");
        let syn = enc.syndromes();
        let mut reveals: HashMap<Vec<u8>, Vec<u8>> = HashMap::new();
        let mut run = || {
            let mut dec = Decoder::new(plan.clone(), &bob, q, Settings::default()).expect("decoder");
            let mut request = dec.decode(&syn).expect("decode");
            while let Some(r) = request {
                let answer = reveals.entry(r.clone()).or_insert_with(|| enc.reveal(&r).expect("reveal")).clone();
                request = dec.apply(&answer).expect("apply");
            }
            (dec.failed_frames().len(), dec.attempts())
        };
        let (failed, attempts) = run();
        let (wall, cpu) = timing::sorted_runs(rounds, || {
            run();
        });
        println!(
            "q {q:.3} {} frames {} failed {failed} attempts {attempts}: wall {:.1} ms (fastest {:.1}), cpu {:.1} ms (least {:.1})",
            plan.code.name,
            plan.frames,
            wall[rounds / 2] * 1e3,
            wall[0] * 1e3,
            cpu[rounds / 2] * 1e3,
            cpu[0] * 1e3
        );
    }
}
