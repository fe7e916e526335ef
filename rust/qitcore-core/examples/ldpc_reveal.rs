//! Blind rounds that reveal punctured values (the shipped scheme) against rounds that reveal the
//! symbols Bob's failed attempt left least reliable (key bits or punctured values, smallest
//! posterior magnitude first), on the same frames:
//! `cargo run --release -p qitcore-core --example ldpc_reveal -- frames qber start step [punct|key] [rounds]`.

use qitcore_core::maths::xoshiro::Xoshiro256;
use qitcore_core::qkd::ldpc::adapt::{h2, Plan};
use qitcore_core::qkd::ldpc::decode::{channel_llr, decode_all, Job, Settings, KNOWN};
use qitcore_core::qkd::ldpc::syndrome::syndrome;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let frames: usize = args[0].parse().expect("frames");
    let q: f64 = args[1].parse().expect("qber");
    let start: f64 = args[2].parse().expect("start");
    let step: f64 = args[3].parse().expect("step");
    let by_key = args.get(4).is_some_and(|m| m == "key");
    let rounds: usize = args.get(5).map_or(2, |r| r.parse().expect("rounds"));
    // Frames of 40,960 bits, as measured (see the README).
    let probe = Plan::with_lift(1, q, 7, Some(start), Some(step), Some(256)).expect("plan");
    let plan = Plan::with_lift(frames * probe.key_per_frame, q, 7, Some(start), Some(step), Some(256)).expect("plan");
    let code = plan.code;
    let (n, m, p, k) = (code.n(), code.m(), plan.punctured, plan.key_per_frame);
    // Values a round reveals: the plan's steps for punctured values; with key bits the first step
    // each round (key bits do not run out).
    // `REVEAL` (key mode): the values each round reveals, as a share of h·k.
    let share: Option<f64> = std::env::var("REVEAL").ok().and_then(|v| v.parse().ok());
    let last: Option<f64> = std::env::var("REVEAL_LAST").ok().and_then(|v| v.parse().ok());
    let counts: Vec<usize> = (0..rounds)
        .map(|r| match (by_key, if r + 1 == rounds { last.or(share) } else { share }) {
            (true, Some(s)) => ((s * h2(q) * k as f64).ceil() as usize).max(1),
            (true, None) => plan.reveal_steps[0],
            _ => plan.reveal_steps.get(r).copied().unwrap_or(0),
        })
        .collect();
    let mut rng = Xoshiro256::from_seed(1);
    let llr = channel_llr(q);
    let mut alice_words = Vec::with_capacity(frames);
    let mut base = Vec::with_capacity(frames);
    let mut syndromes = Vec::with_capacity(frames);
    for _ in 0..frames {
        let mut word = vec![0u8; n];
        let mut l = vec![KNOWN; n];
        for &at in &plan.key_at {
            let a = (rng.next_u64() & 1) as u8;
            let flip = (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64 <= q;
            word[at as usize] = a;
            l[at as usize] = if (a ^ u8::from(flip)) == 0 { llr } else { -llr };
        }
        for &at in &plan.punctured_at {
            word[at as usize] = (rng.next_u64() & 1) as u8;
            l[at as usize] = 0;
        }
        syndromes.push(syndrome(code, &word));
        alice_words.push(word);
        base.push(l);
    }
    let mut revealed = vec![0usize; frames];
    let mut pending: Vec<usize> = (0..frames).collect();
    let mut failed_first = 0;
    let mut wrong = 0;
    let settings = Settings::default();
    for attempt in 0..=rounds {
        let mut llrs: Vec<Vec<i16>> = pending.iter().map(|&f| base[f].clone()).collect();
        let mut outs: Vec<Vec<u8>> = pending.iter().map(|_| vec![0u8; n]).collect();
        let jobs = pending
            .iter()
            .zip(llrs.iter_mut().zip(outs.iter_mut()))
            .map(|(&f, (llr, out))| Job { llr, syndrome: &syndromes[f], out })
            .collect();
        let results = decode_all(code, jobs, settings);
        let mut still = Vec::new();
        for ((&f, result), (post, out)) in pending.iter().zip(results).zip(llrs.iter().zip(&outs)) {
            if result.is_some() {
                wrong += usize::from(out != &alice_words[f]);
                continue;
            }
            still.push(f);
            let Some(&c) = counts.get(attempt) else { continue };
            let c = if by_key { c } else { c.min(p - revealed[f]) };
            if by_key {
                // The c least reliable symbols not yet known, by posterior magnitude.
                let mut open: Vec<(i16, u32)> = (0..n as u32)
                    .filter(|&v| base[f][v as usize].unsigned_abs() < KNOWN as u16)
                    .map(|v| (post[v as usize].saturating_abs(), v))
                    .collect();
                let c = c.min(open.len());
                if c > 0 && c < open.len() {
                    open.select_nth_unstable(c - 1);
                }
                for &(_, v) in &open[..c] {
                    base[f][v as usize] = if alice_words[f][v as usize] == 0 { KNOWN } else { -KNOWN };
                }
                revealed[f] += c;
            } else {
                for &v in &plan.punctured_at[revealed[f]..revealed[f] + c] {
                    base[f][v as usize] = if alice_words[f][v as usize] == 0 { KNOWN } else { -KNOWN };
                }
                revealed[f] += c;
            }
        }
        if attempt == 0 {
            failed_first = still.len();
        }
        pending = still;
        if pending.is_empty() {
            break;
        }
    }
    let disclosed: usize = revealed.iter().map(|&r| m - p + r).sum();
    let f = disclosed as f64 / ((frames * k) as f64 * h2(q));
    println!(
        "q {q:.3} {} code {} p {p} k {k} steps {counts:?} frames {frames} fer1 {:.3} fer {:.4} wrong {wrong} f {f:.4}",
        if by_key { "key" } else { "punct" },
        code.name,
        failed_first as f64 / frames as f64,
        pending.len() as f64 / frames as f64,
    );
}
