//! SP 800-90B §6.3.8: the lag prediction estimate.

use super::prediction::{prediction_estimate, Tally};
#[cfg(target_arch = "x86_64")]
use crate::cpu::{self, Features};
use crate::entropy::estimate::{Estimate, View};

const LAGS: usize = 128;

/// 128 subpredictors guess that the next sample repeats the one `d + 1` samples back; the one
/// with the best score so far makes the prediction. Scores are updated in increasing `d`, and a
/// subpredictor that reaches the best score takes the lead, so ties go to the largest lag.
pub fn lag(s: &[u8], k: usize, view: View) -> Estimate {
    let name = "Lag Prediction";
    let len = s.len();
    if len < 3 {
        return Estimate::new(name, view).skipped("fewer than 3 samples: the lag estimate does not apply");
    }
    let mut state = State { scoreboard: [0u64; LAGS], winner: 0, high: 0, tally: Tally::default() };
    let warm = len.min(LAGS + 1);
    for i in 1..warm {
        state.step_scalar(s, i);
    }
    #[cfg(target_arch = "x86_64")]
    if warm < len && cpu::has(Features::AVX512F | Features::AVX512BW) {
        // SAFETY: AVX-512F/BW were just detected.
        unsafe { x86::steps_avx512(&mut state, s, warm) };
        return state.estimate(name, view, len, k);
    }
    for i in warm..len {
        state.step_scalar(s, i);
    }
    state.estimate(name, view, len, k)
}

struct State {
    scoreboard: [u64; LAGS],
    winner: usize,
    high: u64,
    tally: Tally,
}

impl State {
    #[inline]
    fn step_scalar(&mut self, s: &[u8], i: usize) {
        let x = s[i];
        self.tally.record(x == s[i - self.winner - 1]);
        for d in 0..LAGS.min(i) {
            if s[i - d - 1] == x {
                self.scoreboard[d] += 1;
                if self.scoreboard[d] >= self.high {
                    self.winner = d;
                    self.high = self.scoreboard[d];
                }
            }
        }
    }

    fn estimate(&self, name: &'static str, view: View, len: usize, k: usize) -> Estimate {
        prediction_estimate(name, view, self.tally.correct, (len - 1) as u64, self.tally.longest, k)
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{State, LAGS};
    use std::arch::x86_64::*;

    /// Steps `start..` with the 128 scores in eight vectors of sixteen 32-bit lanes. Lane `L`
    /// holds lag `d = 127 − L`, so that the window `s[i − 128 .. i]` compares to the current
    /// sample lane by lane; a score that reaches the best makes the largest such lag (the lowest
    /// lane) the winner, exactly as the scalar rule.
    #[target_feature(enable = "avx512f,avx512bw")]
    pub(super) fn steps_avx512(state: &mut State, s: &[u8], start: usize) {
        let mut lanes = [0u32; LAGS];
        for (lane, v) in lanes.iter_mut().enumerate() {
            *v = state.scoreboard[LAGS - 1 - lane] as u32;
        }
        // SAFETY: lanes holds 128 u32, eight 512-bit loads.
        let mut scores: [__m512i; 8] =
            std::array::from_fn(|k| unsafe { _mm512_loadu_si512(lanes[16 * k..].as_ptr() as *const __m512i) });
        let one = _mm512_set1_epi32(1);
        let (mut winner, mut high) = (state.winner, state.high as u32);
        let mut tally = state.tally;
        for i in start..s.len() {
            let x = s[i];
            tally.record(x == s[i - winner - 1]);
            let xv = _mm512_set1_epi8(x as i8);
            // SAFETY: i >= 128, so s[i − 128 .. i] is in bounds: two 64-byte loads.
            let (lo, hi) = unsafe {
                (
                    _mm512_loadu_si512(s.as_ptr().add(i - 128) as *const __m512i),
                    _mm512_loadu_si512(s.as_ptr().add(i - 64) as *const __m512i),
                )
            };
            let m = [_mm512_cmpeq_epi8_mask(lo, xv), _mm512_cmpeq_epi8_mask(hi, xv)];
            let highv = _mm512_set1_epi32(high as i32);
            let mut reached = [0u16; 8];
            let mut any = 0u16;
            for k in 0..8 {
                let mk = (m[k / 4] >> (16 * (k % 4))) as u16;
                scores[k] = _mm512_mask_add_epi32(scores[k], mk, scores[k], one);
                reached[k] = _mm512_mask_cmpge_epu32_mask(mk, scores[k], highv);
                any |= reached[k];
            }
            if any == 0 {
                continue;
            }
            // Some updated score reached the best: a new best (high + 1) wins over ties (high).
            let above = _mm512_set1_epi32(high as i32 + 1);
            let mut exceed = [0u16; 8];
            let mut any_exceed = 0u16;
            for k in 0..8 {
                exceed[k] = _mm512_mask_cmpeq_epu32_mask(reached[k], scores[k], above);
                any_exceed |= exceed[k];
            }
            let candidates = if any_exceed != 0 {
                high += 1;
                exceed
            } else {
                reached
            };
            let k = candidates.iter().position(|&c| c != 0).expect("some lane reached the best");
            let lane = 16 * k + candidates[k].trailing_zeros() as usize;
            winner = LAGS - 1 - lane;
        }
        state.winner = winner;
        state.high = u64::from(high);
        state.tally = tally;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The scalar rule for every step, the reference for the vector path.
    fn scalar(s: &[u8]) -> (u64, u64) {
        let mut state = State { scoreboard: [0u64; LAGS], winner: 0, high: 0, tally: Tally::default() };
        for i in 1..s.len() {
            state.step_scalar(s, i);
        }
        (state.tally.correct, state.tally.longest)
    }

    proptest! {
        #[test]
        fn vector_and_scalar_paths_agree(s in proptest::collection::vec(0u8..3, 3..2000)) {
            let e = lag(&s, 3, View::Literal);
            let (correct, longest) = scalar(&s);
            prop_assert_eq!(e.field("C"), Some(crate::entropy::Value::Int(correct as i64)));
            prop_assert_eq!(e.field("r"), Some(crate::entropy::Value::Int(longest as i64 + 1)));
        }
    }
}
