//! Frame error rate of a candidate mother code (built by `Code::build` from a spec given on the
//! command line) over a simulated BSC, adapted to the rate that efficiency `f` needs at each QBER
//! with `d = p + s` a fixed fraction of the frame (as the plan does), punctured positions chosen
//! as the plan does (`adapt::untainted_first`), no blind rounds:
//! `cargo run --release -p qitcore-core --example ldpc_design -- frames z cols rows seed d f
//! "deg:count,deg:count" qber...` (`LDPC_ITERATIONS` and `LDPC_STALL`
//! override the decoder's limits). Used to choose the shipped specs (code.rs).

#[path = "common/profile.rs"]
mod profile;

use qitcore_core::maths::xoshiro::{shuffle, Xoshiro256};
use qitcore_core::qkd::ldpc::adapt::{h2, untainted_first};
use qitcore_core::qkd::ldpc::code::{Code, Spec};
use qitcore_core::qkd::ldpc::decode::{channel_llr, decode_all, Job, Settings, KNOWN};
use qitcore_core::qkd::ldpc::syndrome::syndrome;

fn main() {
    let a: Vec<String> = std::env::args().skip(1).collect();
    let num = |i: usize| a[i].parse::<f64>().expect("a number");
    let (frames, z, cols, rows, seed) =
        (num(0) as usize, num(1) as usize, num(2) as usize, num(3) as usize, num(4) as u64);
    let (dfrac, f) = (num(5), num(6));
    let profile = profile::parse(&a[7]);
    let spec = Spec { name: "candidate", cols, rows, z, profile: Box::leak(profile.into_boxed_slice()), seed };
    let code = Code::build(&spec).expect("spec");
    let (n, r0) = (code.n(), code.rate());
    let mut deg = vec![0usize; cols];
    for l in &code.layers {
        for b in l {
            deg[b.col as usize] += 1;
        }
    }
    let edges: usize = deg.iter().sum();
    println!(
        "R0 {r0:.4} n {n} edges/n {:.3} max check degree {} 4-cycle {}",
        edges as f64 / cols as f64,
        code.max_row_degree(),
        code.has_4_cycle()
    );
    let mut settings = Settings::default();
    if let Some(i) = std::env::var("LDPC_ITERATIONS").ok().and_then(|v| v.parse().ok()) {
        settings.max_iterations = i;
    }
    if let Some(i) = std::env::var("LDPC_STALL").ok().and_then(|v| v.parse().ok()) {
        settings.stall = i;
    }
    let mut rng = Xoshiro256::from_seed(3);
    for q in a[8..].iter().map(|q| q.parse::<f64>().expect("qber")) {
        let target = 1.0 - f * h2(q);
        let d = (dfrac * n as f64).round();
        let s = (r0 * n as f64 - target * (n as f64 - d)).round().clamp(0.0, d) as usize;
        let p = d as usize - s;
        let llr_q = channel_llr(q);
        let mut failed = 0;
        let mut wrong = 0;
        let mut iters = 0u64;
        let batch = 64;
        let mut done = 0;
        while done < frames {
            let b = batch.min(frames - done);
            let mut llrs = vec![0i16; b * n];
            let mut outs = vec![0u8; b * n];
            let mut xs = Vec::with_capacity(b);
            let mut syns = Vec::with_capacity(b);
            for llr in llrs.chunks_exact_mut(n) {
                let mut order: Vec<u32> = (0..n as u32).collect();
                shuffle(&mut order, &mut rng);
                // Punctured positions as the plan chooses them (untainted at high rates).
                let order = untainted_first(&code, &order, p);
                let x: Vec<u8> = (0..n).map(|_| (rng.next_u64() & 1) as u8).collect();
                let mut x = x;
                for &v in &order[p..p + s] {
                    x[v as usize] = 0;
                }
                for (i, l) in llr.iter_mut().enumerate() {
                    let e = u8::from((rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64 <= q);
                    *l = if x[i] ^ e == 0 { llr_q } else { -llr_q };
                }
                for &v in &order[..p] {
                    llr[v as usize] = 0;
                }
                for &v in &order[p..p + s] {
                    llr[v as usize] = KNOWN;
                }
                syns.push(syndrome(&code, &x));
                xs.push(x);
            }
            let jobs = llrs
                .chunks_exact_mut(n)
                .zip(outs.chunks_exact_mut(n))
                .zip(&syns)
                .map(|((llr, out), syndrome)| Job { llr, syndrome, out })
                .collect();
            let results = decode_all(&code, jobs, settings);
            for ((r, out), x) in results.iter().zip(outs.chunks_exact(n)).zip(&xs) {
                match r {
                    Some(it) => {
                        iters += u64::from(*it);
                        if out != x.as_slice() {
                            wrong += 1;
                        }
                    }
                    None => failed += 1,
                }
            }
            done += b;
        }
        println!(
            "q {q:.3} f {f:.3} R {target:.4} p {p} s {s} fer {:.4} ({failed}/{frames}) wrong {wrong} mean iterations {:.1}",
            failed as f64 / frames as f64,
            iters as f64 / (frames - failed).max(1) as f64
        );
    }
}
