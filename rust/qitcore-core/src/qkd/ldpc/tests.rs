//! Cross-checks: the fixed-point decoder against the floating-point reference, and both ends of
//! blind reconciliation over a simulated BSC.

use zeroize::Zeroizing;

use super::adapt::{h2, Plan};
use super::blind::{keep_frames, Decoder, Encoder};
use super::code::{Code, Spec};
use super::decode::{boxplus, channel_llr, decode, unsatisfied, Scratch, Settings, IDENTITY, MESSAGE, SCALE};
use super::reference::sum_product;
use super::syndrome::syndrome;
use crate::maths::xoshiro::Xoshiro256;

fn bsc(rng: &mut Xoshiro256, x: &[u8], q: f64) -> Vec<u8> {
    x.iter().map(|&b| b ^ u8::from((rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64 <= q)).collect()
}

fn random_bits(rng: &mut Xoshiro256, n: usize) -> Vec<u8> {
    (0..n).map(|_| (rng.next_u64() & 1) as u8).collect()
}

#[test]
fn fixed_point_and_reference_decoders_both_find_the_true_word() {
    let spec = Spec { name: "small", cols: 12, rows: 6, z: 24, profile: &[(5, 2)], seed: 3 };
    let code = Code::build(&spec).unwrap();
    assert!(!code.has_4_cycle());
    let mut rng = Xoshiro256::from_seed(11);
    let q = 0.02;
    let mut scratch = Scratch::new(&code);
    let mut both = 0;
    for _ in 0..40 {
        let x = random_bits(&mut rng, code.n());
        let y = bsc(&mut rng, &x, q);
        let s = syndrome(&code, &x);
        let l = ((1.0 - q) / q).ln();
        let float: Vec<f64> = y.iter().map(|&b| if b == 0 { l } else { -l }).collect();
        let reference = sum_product(&code, &float, &s, 100);
        let mut llr: Vec<i16> = y.iter().map(|&b| if b == 0 { channel_llr(q) } else { -channel_llr(q) }).collect();
        let mut out = vec![0u8; code.n()];
        let fast = decode(&code, &mut llr, &s, Settings::default(), &mut scratch, &mut out);
        if let Some(word) = &reference {
            assert_eq!(syndrome(&code, word), s);
        }
        if fast.is_some() {
            assert_eq!(syndrome(&code, &out), s, "a returned word always has the syndrome");
        }
        if reference.as_deref() == Some(&x[..]) && fast.is_some() && out == x {
            both += 1;
        }
    }
    // At 2 % on a rate-1/2 code both decoders recover nearly every frame.
    assert!(both >= 36, "both decoded {both} of 40");
    assert!((f64::from(channel_llr(q)) / SCALE - ((1.0 - q) / q).ln()).abs() < 0.1);
}

#[test]
fn a_frame_beyond_capacity_is_reported_failed_never_wrong() {
    let spec = Spec { name: "small", cols: 12, rows: 3, z: 24, profile: &[(3, 2)], seed: 5 };
    let code = Code::build(&spec).unwrap();
    let mut rng = Xoshiro256::from_seed(2);
    let mut scratch = Scratch::new(&code);
    for _ in 0..20 {
        let x = random_bits(&mut rng, code.n());
        let y = bsc(&mut rng, &x, 0.2);
        let s = syndrome(&code, &x);
        let mut llr: Vec<i16> = y.iter().map(|&b| if b == 0 { channel_llr(0.2) } else { -channel_llr(0.2) }).collect();
        let mut out = vec![0u8; code.n()];
        if decode(&code, &mut llr, &s, Settings::default(), &mut scratch, &mut out).is_some() {
            assert_eq!(syndrome(&code, &out), s);
        }
    }
}

fn run(plan: &Plan, alice: &[u8], bob: &[u8], q: f64, punctured: Zeroizing<Vec<u8>>) -> (Encoder, Decoder) {
    let mut enc = Encoder::with_punctured(plan.clone(), alice, punctured).unwrap();
    let mut dec = Decoder::new(plan.clone(), bob, q, Settings::default()).unwrap();
    let mut request = dec.decode(&enc.syndromes()).unwrap();
    while let Some(r) = request {
        request = dec.apply(&enc.reveal(&r).unwrap()).unwrap();
    }
    (enc, dec)
}

#[test]
fn blind_reconciliation_recovers_alices_key_and_both_count_the_same_disclosure() {
    let mut rng = Xoshiro256::from_seed(21);
    for q in [0.01, 0.03, 0.05] {
        let plan = Plan::new(60_000, q, 4).unwrap();
        let alice = random_bits(&mut rng, plan.n_key);
        let bob = bsc(&mut rng, &alice, q);
        let punctured = Zeroizing::new(random_bits(&mut rng, plan.frames * plan.punctured));
        let (enc, dec) = run(&plan, &alice, &bob, q, punctured);
        let failed = dec.failed_frames();
        assert_eq!(*dec.key(), *keep_frames(&plan, &alice, &failed).unwrap(), "q {q}");
        assert_eq!(enc.disclosed(), dec.disclosed());
        assert!(dec.attempts() <= 3);
        let f = dec.disclosed() as f64 / (plan.used_bits() as f64 * h2(q));
        assert!(f < 1.5, "q {q}: f {f}");
    }
}

#[test]
fn a_wrong_qber_estimate_is_rescued_or_dropped_by_the_blind_rounds() {
    let mut rng = Xoshiro256::from_seed(8);
    let plan = Plan::new(40_000, 0.03, 4).unwrap();
    let alice = random_bits(&mut rng, plan.n_key);
    let bob = bsc(&mut rng, &alice, 0.034);
    let punctured = Zeroizing::new(random_bits(&mut rng, plan.frames * plan.punctured));
    let (enc, dec) = run(&plan, &alice, &bob, 0.03, punctured);
    assert_eq!(*dec.key(), *keep_frames(&plan, &alice, &dec.failed_frames()).unwrap());
    assert_eq!(enc.disclosed(), dec.disclosed());
}

/// A decode or apply stopped (its flag set before it starts, or midway) leaves the decoder as it
/// was: the same call then gives what a decoder never stopped gives.
#[test]
fn a_stopped_decode_or_apply_leaves_the_decoder_as_it_was() {
    use std::sync::atomic::AtomicBool;
    let mut rng = Xoshiro256::from_seed(31);
    let plan = Plan::with_lift(200_000, 0.03, 2, None, None, Some(256)).unwrap();
    let alice = random_bits(&mut rng, plan.n_key);
    // The true QBER above the plan's: frames fail and blind rounds follow.
    let bob = bsc(&mut rng, &alice, 0.036);
    let punctured = Zeroizing::new(random_bits(&mut rng, plan.frames * plan.punctured));
    let mut enc = Encoder::with_punctured(plan.clone(), &alice, punctured).unwrap();
    let syndromes = enc.syndromes();
    let (stopped, going) = (AtomicBool::new(true), AtomicBool::new(false));
    let mut reference = Decoder::new(plan.clone(), &bob, 0.03, Settings::default()).unwrap();
    let mut dec = Decoder::new(plan.clone(), &bob, 0.03, Settings::default()).unwrap();
    assert_eq!(dec.decode_until(&syndromes, &stopped).unwrap(), None);
    assert_eq!((dec.attempts(), dec.disclosed(), dec.failed_frames().len()), (0, reference.disclosed(), plan.frames));
    let request = reference.decode(&syndromes).unwrap().expect("frames to fail");
    assert_eq!(dec.decode_until(&syndromes, &going).unwrap(), Some(Some(request.clone())));
    let reveal = enc.reveal(&request).unwrap();
    let before = (dec.attempts(), dec.disclosed(), dec.failed_frames());
    assert_eq!(dec.apply_until(&reveal, &stopped).unwrap(), None);
    assert_eq!((dec.attempts(), dec.disclosed(), dec.failed_frames()), before);
    assert_eq!(dec.apply(&reveal).unwrap(), reference.apply(&reveal).unwrap());
    assert_eq!((dec.disclosed(), dec.failed_frames()), (reference.disclosed(), reference.failed_frames()));
    assert_eq!(*dec.key(), *reference.key());
}

#[test]
fn malformed_requests_and_reveals_are_refused() {
    // Frames of about 28000 key bits (the shortest lift): three of them.
    let plan = Plan::with_lift(100_000, 0.03, 1, None, None, Some(256)).unwrap();
    assert!(plan.frames >= 3);
    let key = vec![0u8; plan.n_key];
    let mut enc = Encoder::new(plan.clone(), &key).unwrap();
    let p = plan.punctured as u32;
    let entry = |f: u32, c: u32| [f.to_le_bytes(), c.to_le_bytes()].concat();
    assert!(enc.reveal(&[]).is_err());
    assert!(enc.reveal(&[0; 7]).is_err());
    assert!(enc.reveal(&entry(plan.frames as u32, 1)).is_err());
    assert!(enc.reveal(&entry(0, 0)).is_err());
    assert!(enc.reveal(&entry(0, p + 1)).is_err());
    let [first, second] = plan.reveal_steps.map(|s| s as u32);
    assert!(first > 1 && second > 1 && first != second && first + second == p);
    assert!(enc.reveal(&[entry(1, first), entry(0, first)].concat()).is_err());
    assert!(enc.reveal(&[entry(0, first), entry(0, first)].concat()).is_err());
    // Only the plan's count for the round: neither fewer nor more, nor the rest at once.
    for count in [1, first - 1, first + 1, p] {
        assert!(enc.reveal(&entry(0, count)).is_err(), "{count} values in the first round");
    }
    assert_eq!(enc.disclosed(), plan.frames as u64 * plan.frame_disclosed(0));
    assert!(enc.reveal(&[entry(0, first), entry(2, first)].concat()).is_ok());
    assert!(enc.reveal(&entry(0, first)).is_err(), "the first round's count in the second");
    // Frame 1 asks for the first time in the second round: the second round's count, or its
    // punctured values left if fewer.
    assert!(enc.reveal(&[entry(0, second), entry(1, second)].concat()).is_ok());
    assert_eq!(enc.disclosed(), plan.frames as u64 * plan.frame_disclosed(0) + u64::from(2 * first + 2 * second));
    assert!(enc.reveal(&entry(2, second)).is_err(), "a third blind round");
    let mut dec = Decoder::new(plan.clone(), &key, 0.03, Settings::default()).unwrap();
    assert!(dec.apply(&[0]).is_err());
    assert!(dec.decode(&[0; 3]).is_err());
    assert!(Encoder::new(plan.clone(), &key[1..]).is_err());
    assert!(Decoder::new(plan, &key, 0.7, Settings::default()).is_err());
}

#[test]
fn boxplus_with_the_identity_is_exact_and_otherwise_close_to_the_tanh_rule() {
    // The layer update replaces ⊞ with ±IDENTITY by a copy or a negation: exact for every message.
    for x in -MESSAGE..=MESSAGE {
        assert_eq!(boxplus(IDENTITY, x), x);
        assert_eq!(boxplus(x, IDENTITY), x);
        assert_eq!(boxplus(-IDENTITY, x), -x);
    }
    // Against 2 atanh(tanh(a/2) tanh(b/2)) in floating point, in its form that stays accurate
    // where both tanh round to 1: sign(a) sign(b) (min(|a|,|b|) + ln(1 + e^{−(|a|+|b|)}) −
    // ln(1 + e^{−||a|−|b||})).
    let mut worst: f64 = 0.0;
    for a in (-1200..=1200).step_by(7) {
        for b in (-1200..=1200).step_by(11) {
            let (fa, fb) = (f64::from(a) / SCALE, f64::from(b) / SCALE);
            let (ma, mb) = (fa.abs(), fb.abs());
            let m = ma.min(mb) + (-(ma + mb)).exp().ln_1p() - (-(ma - mb).abs()).exp().ln_1p();
            let exact = fa.signum() * fb.signum() * m;
            let got = f64::from(boxplus(a, b)) / SCALE;
            worst = worst.max((got - exact).abs());
            if got != 0.0 {
                assert_eq!(got.signum(), exact.signum(), "{a} ⊞ {b}");
            }
        }
    }
    // Two table corrections, each within 0.07 nats of ln(1 + e^{−x}) (steps of a quarter nat read
    // at their middle, rounded to 1/32 nat), the errors of the two partly cancelling.
    assert!(worst < 0.1, "worst error {worst} nats");
}

fn padded_code(z: usize, seed: u64) -> Code {
    let spec = Spec { name: "test", cols: 24, rows: 8, z, profile: &[(6, 3)], seed };
    Code::build(&spec).unwrap()
}

#[test]
fn the_layered_parity_count_equals_the_syndrome_mismatches_of_the_hard_decisions() {
    let mut rng = Xoshiro256::from_seed(4);
    for z in [16, 48, 64] {
        let code = padded_code(z, z as u64);
        let n = code.n();
        let mut lp = vec![0i16; n + 2 * z];
        let mut acc = vec![0i16; z];
        for _ in 0..20 {
            // LLRs of every sign, zero included (a 0 is a hard 0).
            for l in &mut lp[z..z + n] {
                *l = (rng.next_u64() % 7) as i16 - 3;
            }
            let s = random_bits(&mut rng, code.m());
            let hard: Vec<u8> = lp[z..z + n].iter().map(|&l| u8::from(l < 0)).collect();
            let naive = syndrome(&code, &hard).iter().zip(&s).filter(|(a, b)| a != b).count();
            assert_eq!(unsatisfied(&code, &lp, &s, &mut acc), naive, "z {z}");
        }
    }
}
