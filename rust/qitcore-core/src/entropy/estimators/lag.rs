//! SP 800-90B §6.3.8: the lag prediction estimate.

use super::prediction::{prediction_estimate, Tally};
#[cfg(target_arch = "x86_64")]
use crate::cpu::{self, Features};
use crate::entropy::estimate::{Estimate, View};
use crate::entropy::stop::{Stop, EVERY};

const LAGS: usize = 128;

/// 128 subpredictors guess that the next sample repeats the one `d + 1` samples back; the one
/// with the best score so far makes the prediction. Scores are updated in increasing `d`, and a
/// subpredictor that reaches the best score takes the lead, so ties go to the largest lag.
pub fn lag(s: &[u8], k: usize, view: View, stop: Stop<'_>) -> Estimate {
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
    // The vector paths keep scores in 32-bit lanes, compared as signed on AVX2.
    let vectors = warm < len && len < 1 << 31;
    #[cfg(target_arch = "x86_64")]
    if vectors && cpu::has(Features::AVX512F | Features::AVX512BW) {
        // SAFETY: AVX-512F/BW were just detected.
        return match unsafe { state.vector_steps(x86::steps_avx512, s, warm, SEGMENT, stop) } {
            true => state.estimate(name, view, len, k),
            false => Estimate::new(name, view).stopped(),
        };
    }
    #[cfg(target_arch = "x86_64")]
    if vectors && cpu::has(Features::AVX2) {
        // SAFETY: AVX2 was just detected.
        return match unsafe { state.vector_steps(x86::steps_avx2, s, warm, SEGMENT, stop) } {
            true => state.estimate(name, view, len, k),
            false => Estimate::new(name, view).stopped(),
        };
    }
    for i in warm..len {
        if stop.at(i) {
            return Estimate::new(name, view).stopped();
        }
        state.step_scalar(s, i);
    }
    state.estimate(name, view, len, k)
}

/// Samples a vector path steps through between two looks at the [`Stop`].
const SEGMENT: usize = 16 * EVERY;

/// A vector path's steps from sample `start` to the end of `s` (it reads the 128 samples
/// before each).
#[cfg(target_arch = "x86_64")]
type Steps = unsafe fn(&mut State, &[u8], usize);

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

    /// The scores for the vector paths, lane `L` lag `127 − L`, checking that they start after
    /// the first [`LAGS`] samples (their loads read the 128 before each step).
    #[cfg(target_arch = "x86_64")]
    fn lanes(&self, start: usize) -> [u32; LAGS] {
        assert!(start >= LAGS, "the vector steps start after the first {LAGS} samples");
        std::array::from_fn(|lane| self.scoreboard[LAGS - 1 - lane] as u32)
    }

    /// Back from the vector paths' lanes.
    #[cfg(target_arch = "x86_64")]
    fn set_lanes(&mut self, lanes: &[u32; LAGS]) {
        for (lane, &score) in lanes.iter().enumerate() {
            self.scoreboard[LAGS - 1 - lane] = u64::from(score);
        }
    }

    /// `steps` from `start` to the end of `s`, `segment` samples at a time with a look at `stop`
    /// before each; false when it stopped.
    ///
    /// # Safety
    /// The CPU runs `steps`'s instructions.
    #[cfg(target_arch = "x86_64")]
    unsafe fn vector_steps(&mut self, steps: Steps, s: &[u8], start: usize, segment: usize, stop: Stop<'_>) -> bool {
        let mut at = start;
        while at < s.len() {
            if stop.requested() {
                return false;
            }
            let end = at.saturating_add(segment).min(s.len());
            // SAFETY: the caller vouches for the instructions; `steps` reads s[i − 128 ..= i].
            unsafe { steps(self, &s[..end], at) };
            at = end;
        }
        true
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
        let lanes = state.lanes(start);
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
        let mut lanes = [0u32; LAGS];
        for (k, v) in scores.iter().enumerate() {
            // SAFETY: lanes holds 128 u32, eight 512-bit stores.
            unsafe { _mm512_storeu_si512(lanes[16 * k..].as_mut_ptr() as *mut __m512i, *v) };
        }
        state.set_lanes(&lanes);
        state.winner = winner;
        state.high = u64::from(high);
        state.tally = tally;
    }

    /// [`steps_avx512`] on AVX2: the 128 scores in sixteen vectors of eight 32-bit lanes (lane
    /// `L` lag `127 − L` again), each step's matches widened from bytes to lanes, eight at a
    /// time. Scores stay below 2^31 (a score counts samples, and [`lag`] takes this path only for
    /// fewer), so the signed comparisons hold.
    #[target_feature(enable = "avx2")]
    pub(super) fn steps_avx2(state: &mut State, s: &[u8], start: usize) {
        let lanes = state.lanes(start);
        // SAFETY: lanes holds 128 u32, sixteen 256-bit loads.
        let mut scores: [__m256i; 16] =
            std::array::from_fn(|j| unsafe { _mm256_loadu_si256(lanes[8 * j..].as_ptr() as *const __m256i) });
        let (mut winner, mut high) = (state.winner, state.high as u32);
        let mut tally = state.tally;
        for i in start..s.len() {
            let x = s[i];
            tally.record(x == s[i - winner - 1]);
            let xv = _mm256_set1_epi8(x as i8);
            // SAFETY: i >= 128, so s[i − 128 .. i] is in bounds: four 32-byte loads.
            let equal: [__m256i; 4] = std::array::from_fn(|q| unsafe {
                _mm256_cmpeq_epi8(_mm256_loadu_si256(s.as_ptr().add(i - 128 + 32 * q) as *const __m256i), xv)
            });
            // A lane reached the best when its score, after the step, is above high − 1.
            let below = _mm256_set1_epi32(high as i32 - 1);
            let mut reached = [_mm256_setzero_si256(); 16];
            let mut any = _mm256_setzero_si256();
            for j in 0..16 {
                let half = if j % 4 < 2 {
                    _mm256_castsi256_si128(equal[j / 4])
                } else {
                    _mm256_extracti128_si256::<1>(equal[j / 4])
                };
                let eight = if j % 2 == 0 { half } else { _mm_srli_si128::<8>(half) };
                // All ones (−1) where the lag's sample matches: subtracting adds one.
                let matched = _mm256_cvtepi8_epi32(eight);
                scores[j] = _mm256_sub_epi32(scores[j], matched);
                reached[j] = _mm256_and_si256(matched, _mm256_cmpgt_epi32(scores[j], below));
                any = _mm256_or_si256(any, reached[j]);
            }
            if _mm256_testz_si256(any, any) == 1 {
                continue;
            }
            // As on AVX-512: a new best (high + 1) wins over ties (high), the lowest lane first.
            let above = _mm256_set1_epi32(high as i32 + 1);
            let exceed: [__m256i; 16] =
                std::array::from_fn(|j| _mm256_and_si256(reached[j], _mm256_cmpeq_epi32(scores[j], above)));
            let any_exceed = exceed.iter().fold(_mm256_setzero_si256(), |a, &e| _mm256_or_si256(a, e));
            let candidates = if _mm256_testz_si256(any_exceed, any_exceed) == 0 {
                high += 1;
                exceed
            } else {
                reached
            };
            let bits = candidates.map(|c| _mm256_movemask_ps(_mm256_castsi256_ps(c)) as u32);
            let j = bits.iter().position(|&b| b != 0).expect("some lane reached the best");
            let lane = 8 * j + bits[j].trailing_zeros() as usize;
            winner = LAGS - 1 - lane;
        }
        let mut lanes = [0u32; LAGS];
        for (j, v) in scores.iter().enumerate() {
            // SAFETY: lanes holds 128 u32, sixteen 256-bit stores.
            unsafe { _mm256_storeu_si256(lanes[8 * j..].as_mut_ptr() as *mut __m256i, *v) };
        }
        state.set_lanes(&lanes);
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

    /// Each vector path this CPU runs, from the scalar warm-up on, in segments of `segment`
    /// samples (the scores go back to the scoreboard between them): (correct, longest run).
    #[cfg(target_arch = "x86_64")]
    fn vector_paths(s: &[u8], segment: usize) -> Vec<(&'static str, u64, u64)> {
        let warm = s.len().min(LAGS + 1);
        let mut out = Vec::new();
        let paths: [(&str, Features, Steps); 2] = [
            ("avx2", Features::AVX2, x86::steps_avx2),
            ("avx512", Features::AVX512F | Features::AVX512BW, x86::steps_avx512),
        ];
        for (name, features, steps) in paths {
            if !cpu::has(features) || warm == s.len() {
                continue;
            }
            let mut state = State { scoreboard: [0u64; LAGS], winner: 0, high: 0, tally: Tally::default() };
            for i in 1..warm {
                state.step_scalar(s, i);
            }
            // SAFETY: the CPU runs the path (checked above).
            assert!(unsafe { state.vector_steps(steps, s, warm, segment, Stop::NEVER) });
            out.push((name, state.tally.correct, state.tally.longest));
        }
        out
    }

    proptest! {
        #[test]
        fn vector_and_scalar_paths_agree(s in proptest::collection::vec(0u8..3, 3..2000)) {
            let e = lag(&s, 3, View::Literal, Stop::NEVER);
            let (correct, longest) = scalar(&s);
            prop_assert_eq!(e.field("C"), Some(crate::entropy::Value::Int(correct as i64)));
            prop_assert_eq!(e.field("r"), Some(crate::entropy::Value::Int(longest as i64 + 1)));
            #[cfg(target_arch = "x86_64")]
            for (path, c, l) in vector_paths(&s, usize::MAX).into_iter().chain(vector_paths(&s, 97)) {
                prop_assert_eq!((c, l), (correct, longest), "{}", path);
            }
        }

        /// Binary and byte data whose best lag changes often: periodic stretches of several
        /// periods, then noise.
        #[test]
        fn vector_paths_follow_changing_leaders(
            periods in proptest::collection::vec((1usize..140, 50usize..600), 1..6),
            k in prop_oneof![Just(2u8), Just(255u8)],
            seed in any::<u64>(),
        ) {
            let mut g = crate::maths::xoshiro::Xoshiro256::from_seed(seed);
            let mut s = Vec::new();
            for (period, len) in periods {
                let motif: Vec<u8> = (0..period).map(|_| (g.next_u64() % u64::from(k)) as u8).collect();
                s.extend((0..len).map(|i| motif[i % period]));
                s.extend((0..len / 4).map(|_| (g.next_u64() % u64::from(k)) as u8));
            }
            let (correct, longest) = scalar(&s);
            #[cfg(target_arch = "x86_64")]
            for (path, c, l) in vector_paths(&s, usize::MAX).into_iter().chain(vector_paths(&s, 131)) {
                prop_assert_eq!((c, l), (correct, longest), "{}", path);
            }
        }
    }
}
