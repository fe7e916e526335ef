//! Frame error rate, efficiency and decoding speed of LDPC reconciliation over a simulated BSC:
//! `cargo run --release -p qitcore-core --example ldpc_fer -- [frames] [qber...]`, with the
//! plan's efficiencies from `LDPC_START` and `LDPC_STEP` when set, and the decoder's
//! `LDPC_STALL` and `LDPC_PROGRESS` (see `decode::Settings`) when set.

use std::time::Instant;

use zeroize::Zeroizing;

use qitcore_core::maths::xoshiro::Xoshiro256;
use qitcore_core::qkd::ldpc::adapt::{h2, Plan, BLIND_STEP, START_EFFICIENCY};
use qitcore_core::qkd::ldpc::blind::{keep_frames, Decoder, Encoder};
use qitcore_core::qkd::ldpc::decode::Settings;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let frames: usize = args.first().and_then(|a| a.parse().ok()).unwrap_or(200);
    let qbers: Vec<f64> = if args.len() > 1 {
        args[1..].iter().map(|a| a.parse().expect("a QBER")).collect()
    } else {
        vec![0.01, 0.02, 0.03, 0.04, 0.05, 0.06, 0.08]
    };
    let mut rng = Xoshiro256::from_seed(1);
    for q in qbers {
        let start: f64 = std::env::var("LDPC_START").ok().and_then(|v| v.parse().ok()).unwrap_or(START_EFFICIENCY);
        let step: f64 = std::env::var("LDPC_STEP").ok().and_then(|v| v.parse().ok()).unwrap_or(BLIND_STEP);
        let probe = Plan::with_efficiency(1, q, 7, start, step).expect("plan");
        let plan = Plan::with_efficiency(frames * probe.key_per_frame, q, 7, start, step).expect("plan");
        let alice: Vec<u8> = (0..plan.n_key).map(|_| (rng.next_u64() & 1) as u8).collect();
        let bob: Vec<u8> =
            alice.iter().map(|&b| b ^ u8::from((rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64 <= q)).collect();
        // Alice's punctured values from the seeded generator too, so that a run repeats exactly.
        let punctured: Vec<u8> = (0..plan.frames * plan.punctured).map(|_| (rng.next_u64() & 1) as u8).collect();
        let mut enc = Encoder::with_punctured(plan.clone(), &alice, Zeroizing::new(punctured)).expect("encoder");
        let mut settings = Settings::default();
        if let Some(v) = std::env::var("LDPC_STALL").ok().and_then(|v| v.parse().ok()) {
            settings.stall = v;
        }
        if let Some(v) = std::env::var("LDPC_PROGRESS").ok().and_then(|v| v.parse().ok()) {
            settings.progress = v;
        }
        let mut dec = Decoder::new(plan.clone(), &bob, q, settings).expect("decoder");
        let syn = enc.syndromes();
        let t = Instant::now();
        let mut request = dec.decode(&syn).expect("decode");
        let first = t.elapsed().as_secs_f64();
        let fail1 = dec.failed_frames().len();
        while let Some(r) = request {
            request = dec.apply(&enc.reveal(&r).expect("reveal")).expect("apply");
        }
        let all = t.elapsed().as_secs_f64();
        let failed_list = dec.failed_frames();
        let failed = failed_list.len();
        let kept_alice = keep_frames(&plan, &alice, &failed_list).expect("keep");
        let kept_bob = dec.key();
        let wrong = kept_alice
            .chunks(plan.key_per_frame)
            .zip(kept_bob.chunks(plan.key_per_frame))
            .filter(|(a, b)| a != b)
            .count();
        let f = dec.disclosed() as f64 / (plan.used_bits() as f64 * h2(q));
        println!(
            "q {q:.3} code {} p {} s {} R {:.4} frames {} fer1 {:.4} fer {:.5} undetected {wrong} f {:.4} attempts {} first-pass {:.1} Mbit/s all {:.1} Mbit/s",
            plan.code.name,
            plan.punctured,
            plan.shortened,
            plan.rate(),
            plan.frames,
            fail1 as f64 / plan.frames as f64,
            failed as f64 / plan.frames as f64,
            f,
            dec.attempts(),
            plan.used_bits() as f64 / first / 1e6,
            plan.used_bits() as f64 / all / 1e6
        );
    }
}
