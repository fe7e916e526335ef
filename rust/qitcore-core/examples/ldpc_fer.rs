//! Frame error rate, efficiency and decoding speed of LDPC reconciliation over a simulated BSC:
//! `cargo run --release -p qitcore-core --example ldpc_fer -- [frames] [qber...]`, with the
//! plan's efficiencies from `LDPC_START` and `LDPC_STEP` when set (else the lift's
//! `adapt::schedule`), frames of the codes lifted by `LDPC_Z` (default the longest lift, 1024),
//! and the decoder's
//! `LDPC_STALL` and `LDPC_PROGRESS` (see `decode::Settings`) when set. `LDPC_DIAG`: first-attempt
//! failures by quartile of the frames' errors and of their mismatched checks free of punctured
//! symbols; `LDPC_ROUNDS`: frames failing after each blind round and the values asked.

use std::time::Instant;

use zeroize::Zeroizing;

use qitcore_core::maths::xoshiro::Xoshiro256;
use qitcore_core::qkd::ldpc::adapt::{h2, Plan};
use qitcore_core::qkd::ldpc::blind::{keep_frames, Decoder, Encoder};
use qitcore_core::qkd::ldpc::code::Z_MAX;
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
        let start: Option<f64> = std::env::var("LDPC_START").ok().and_then(|v| v.parse().ok());
        let step: Option<f64> = std::env::var("LDPC_STEP").ok().and_then(|v| v.parse().ok());
        let lift = std::env::var("LDPC_Z").ok().and_then(|v| v.parse().ok()).unwrap_or(Z_MAX);
        let probe = Plan::with_lift(1, q, 7, start, step, Some(lift)).expect("plan");
        let plan = Plan::with_lift(frames * probe.key_per_frame, q, 7, start, step, Some(lift)).expect("plan");
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
        if std::env::var("LDPC_DIAG").is_ok() {
            diag(&plan, &alice, &bob, &syn, &dec.failed_frames());
        }
        let mut fails = Vec::new();
        let mut asked = Vec::new();
        while let Some(r) = request {
            let counts = r.chunks_exact(8).map(|c| f64::from(u32::from_le_bytes(c[4..].try_into().expect("4 bytes"))));
            asked.push(counts.sum::<f64>() / (r.len() / 8) as f64);
            request = dec.apply(&enc.reveal(&r).expect("reveal")).expect("apply");
            fails.push(dec.failed_frames().len());
        }
        if std::env::var("LDPC_ROUNDS").is_ok() {
            println!(
                "after rounds: failed {fails:?}, mean asked per frame {asked:.0?} (steps {:?})",
                plan.reveal_steps
            );
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

/// Per frame: its errors and the mismatched checks free of punctured symbols; first-attempt
/// failures by quartile of each.
fn diag(plan: &Plan, alice: &[u8], bob: &[u8], syn: &[u8], failed: &[u32]) {
    use qitcore_core::qkd::ldpc::syndrome::syndrome;
    let code = plan.code;
    let (n, m, z) = (code.n(), code.m(), code.z);
    let mut dirty = vec![false; m];
    let mut word = vec![0u8; n];
    for &v in &plan.punctured_at {
        let (cb, local) = (v as usize / z, v as usize % z);
        for (r, layer) in code.layers.iter().enumerate() {
            for b in layer.iter().filter(|b| b.col as usize == cb) {
                dirty[r * z + (local + z - b.shift as usize) % z] = true;
            }
        }
    }
    let clean = dirty.iter().filter(|&&d| !d).count();
    let bytes = m.div_ceil(8);
    let mut rows = Vec::new();
    for f in 0..plan.frames {
        let start = f * plan.key_per_frame;
        let k = plan.frame_key(f);
        let e = alice[start..start + k].iter().zip(&bob[start..start + k]).filter(|(a, b)| a != b).count();
        word.fill(0);
        for (&at, &b) in plan.key_at.iter().zip(&bob[start..start + k]) {
            word[at as usize] = b;
        }
        let s = syndrome(code, &word);
        let u = (0..m).filter(|&c| !dirty[c] && (s[c] ^ (syn[f * bytes + c / 8] >> (c % 8) & 1)) == 1).count();
        rows.push((e, u, failed.contains(&(f as u32))));
    }
    println!("clean checks {clean} of {m}");
    for key in 0..2 {
        let mut r = rows.clone();
        r.sort_by_key(|x| if key == 0 { x.0 } else { x.1 });
        let qn = r.len() / 4;
        let fr: Vec<String> = (0..4)
            .map(|i| {
                let part = &r[i * qn..(i + 1) * qn];
                let mean = part.iter().map(|x| if key == 0 { x.0 } else { x.1 }).sum::<usize>() as f64 / qn as f64;
                format!("{:.0}:{:.2}", mean, part.iter().filter(|x| x.2).count() as f64 / qn as f64)
            })
            .collect();
        println!("by {}: {}", if key == 0 { "errors" } else { "mismatch" }, fr.join(" "));
    }
}
