//! Density evolution of belief propagation over a binary symmetric channel: the noise threshold
//! of an LDPC ensemble (its degree distributions), which the mother codes are designed against.
//!
//! Discretised as Chung, Forney, Richardson and Urbanke (IEEE Comm. Letters 5(2), 2001) do: the
//! density of the messages (log-likelihood ratios, the all-zero word sent, so a negative message
//! is an error) lives on a grid of step `STEP` saturated at ±`LIMIT`, the channel's LLR rounded to
//! the grid. A check node combines two densities through the quantised ⊞ rule
//! `Q(2 artanh(tanh(a/2) tanh(b/2)))`, a table over every pair of grid points; a variable node adds
//! the channel's message to the check messages, a convolution saturated at the grid's ends. In the
//! limit of long frames without short cycles this is BP with messages on the grid: where the
//! ensemble does not converge at crossover `p`, BP decoding of its long codes fails at `p`. It
//! evolves the *unstructured* ensemble of the degree distributions: a quasi-cyclic code's base
//! matrix (which columns meet which rows, the staircase) is dropped, and its own threshold (by
//! per-edge-type evolution over the base matrix) can differ. The tests check the regular (3, 6)
//! ensemble against its published BP threshold on the BSC, 0.084 (Richardson and Urbanke, *Modern
//! Coding Theory*), and each rule against a naive evaluation. A grid twice as fine (step 0.04)
//! moved the rate-0.9 code's threshold by 1·10^-5 (0.01168 → 0.01169).
//!
//! Syndrome decoding of Alice's word from Bob's (what reconciliation does) is channel decoding of
//! the error pattern, so the threshold is the largest QBER BP survives on long frames of the
//! ensemble, and `(1 − R) / h(p*)` the best efficiency f they reach with it.

use super::code::Code;
use crate::error::{Error, Result};

/// Grid step of the messages, in nats.
const STEP: f64 = 0.08;
/// Messages saturate at ±LIMIT nats.
const LIMIT: f64 = 30.0;
/// Grid points each side of zero.
const HALF: usize = (LIMIT / STEP) as usize;
/// Grid points in all.
const POINTS: usize = 2 * HALF + 1;

/// An ensemble: the fractions of edges on variable and check nodes of each degree (at least 2,
/// fractions positive and summing to 1: the constructors ensure it).
#[derive(Clone, Debug, PartialEq)]
pub struct Ensemble {
    variable: Vec<(usize, f64)>,
    check: Vec<(usize, f64)>,
}

impl Ensemble {
    /// The ensemble of `(degree, share of edges)` pairs at variable and check nodes, the shares
    /// normalised.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] when a side is empty, a degree is below 2 or a share is not
    /// positive and finite.
    pub fn new(variable: &[(usize, f64)], check: &[(usize, f64)]) -> Result<Ensemble> {
        fn side(name: &'static str, d: &[(usize, f64)]) -> Result<Vec<(usize, f64)>> {
            if d.is_empty() || d.iter().any(|&(k, w)| k < 2 || !(w > 0.0 && w.is_finite())) {
                return Err(Error::argument(name, "expected degrees of at least 2 with positive shares"));
            }
            let total: f64 = d.iter().map(|x| x.1).sum();
            Ok(d.iter().map(|&(k, w)| (k, w / total)).collect())
        }
        Ok(Ensemble { variable: side("variable", variable)?, check: side("check", check)? })
    }

    /// `(degree, share of edges)` at variable nodes.
    pub fn variable(&self) -> &[(usize, f64)] {
        &self.variable
    }

    /// `(degree, share of edges)` at check nodes.
    pub fn check(&self) -> &[(usize, f64)] {
        &self.check
    }

    /// The ensemble of a code's base matrix: each column's and each row's degree, weighted by its
    /// edges (the lift multiplies every count by `z`).
    ///
    /// # Errors
    /// As [`Ensemble::new`] (a column or row of degree 1).
    pub fn of(code: &Code) -> Result<Ensemble> {
        let mut column = vec![0usize; code.cols];
        for b in code.layers.iter().flatten() {
            column[b.col as usize] += 1;
        }
        let rows: Vec<usize> = code.layers.iter().map(Vec::len).collect();
        Ensemble::from_degrees(&column, &rows)
    }

    /// The ensemble of node degrees, given as one degree per node.
    ///
    /// # Errors
    /// As [`Ensemble::new`].
    pub fn from_degrees(variables: &[usize], checks: &[usize]) -> Result<Ensemble> {
        Ensemble::new(&edge_fractions(variables), &edge_fractions(checks))
    }

    /// The design rate `1 − (edges / check degree) / (edges / variable degree)`.
    pub fn rate(&self) -> f64 {
        let per = |d: &[(usize, f64)]| d.iter().map(|&(k, w)| w / k as f64).sum::<f64>();
        1.0 - per(&self.check) / per(&self.variable)
    }
}

/// `(degree, share of edges)` from one degree per node, lowest degree first.
fn edge_fractions(degrees: &[usize]) -> Vec<(usize, f64)> {
    let mut count = std::collections::BTreeMap::new();
    for &d in degrees.iter().filter(|&&d| d > 0) {
        *count.entry(d).or_insert(0usize) += d;
    }
    let edges: usize = count.values().sum();
    count.into_iter().map(|(d, e)| (d, e as f64 / edges as f64)).collect()
}

/// The quantised ⊞ of every pair of magnitudes on the grid (index `i·(HALF + 1) + j`): the sign
/// of `a ⊞ b` is the product of the signs, its magnitude depends on the magnitudes alone.
fn boxplus_table() -> &'static [u16] {
    static TABLE: std::sync::OnceLock<Vec<u16>> = std::sync::OnceLock::new();
    TABLE.get_or_init(|| {
        let t: Vec<f64> = (0..=HALF).map(|i| (i as f64 * STEP / 2.0).tanh()).collect();
        let mut table = Vec::with_capacity(t.len() * t.len());
        for &a in &t {
            for &b in &t {
                let l = 2.0 * (a * b).min(1.0 - 1e-15).atanh();
                table.push((l / STEP).round().min(HALF as f64) as u16);
            }
        }
        table
    })
}

/// The density of `a ⊞ b` for independent messages of densities `f` and `g`: with the sums and
/// differences of each density's mass at `+x` and `−x`, the output's mass at `±y` (`y > 0`) is
/// half the sum or difference of `Σ s_f(i)·s_g(j)` and `Σ d_f(i)·d_g(j)` over the pairs whose
/// magnitudes give `y`, and its mass at 0 the first sum (both signs land there).
fn check_pair(f: &[f64], g: &[f64], out: &mut [f64]) {
    let table = boxplus_table();
    let split = |h: &[f64]| -> (Vec<f64>, Vec<f64>) {
        // Magnitude 0 is one point, its mass counted once.
        (0..=HALF)
            .map(|i| if i == 0 { (h[HALF], 0.0) } else { (h[HALF + i] + h[HALF - i], h[HALF + i] - h[HALF - i]) })
            .unzip()
    };
    let ((fs, fd), (gs, gd)) = (split(f), split(g));
    let (mut sum, mut diff) = (vec![0.0; HALF + 1], vec![0.0; HALF + 1]);
    for (i, row) in table.chunks_exact(HALF + 1).enumerate() {
        if fs[i] < 1e-300 {
            continue;
        }
        for (j, &k) in row.iter().enumerate() {
            let k = k as usize;
            sum[k] += fs[i] * gs[j];
            diff[k] += fd[i] * gd[j];
        }
    }
    for y in 1..=HALF {
        out[HALF + y] = (sum[y] + diff[y]) / 2.0;
        out[HALF - y] = (sum[y] - diff[y]) / 2.0;
    }
    out[HALF] = sum[0];
}

/// The density of `a + b`, saturated at the grid's ends.
fn variable_pair(f: &[f64], g: &[f64], out: &mut [f64]) {
    out.fill(0.0);
    // below[j]: g's mass at indices under j.
    let mut below = vec![0.0; POINTS + 1];
    for j in 0..POINTS {
        below[j + 1] = below[j] + g[j];
    }
    for (i, &fi) in f.iter().enumerate() {
        if fi < 1e-300 {
            continue;
        }
        // The sum's index is i + j − HALF: j < HALF − i saturates low, j > POINTS − 1 + HALF − i high.
        let first = HALF.saturating_sub(i);
        let end = (POINTS - 1 + HALF - i).min(POINTS - 1);
        out[0] += fi * below[first];
        out[POINTS - 1] += fi * (below[POINTS] - below[end + 1]);
        let at = i + first - HALF;
        out[at..=at + end - first].iter_mut().zip(&g[first..=end]).for_each(|(o, &gj)| *o += fi * gj);
    }
}

/// `Σ w·(x combined with itself d − 1 times by pair)` over `(d, w)`: square-and-multiply on
/// shared squares, each term combined also with `start` where given (the channel's message,
/// which a variable node adds once).
fn mixture(
    degrees: &[(usize, f64)],
    x: &[f64],
    start: Option<&[f64]>,
    pair: fn(&[f64], &[f64], &mut [f64]),
    out: &mut [f64],
) {
    let most = degrees.iter().map(|d| d.0 - 1).max().unwrap_or(0);
    let mut squares = vec![x.to_vec()];
    while 1 << squares.len() <= most {
        let mut next = vec![0.0; POINTS];
        pair(&squares[squares.len() - 1], &squares[squares.len() - 1], &mut next);
        squares.push(next);
    }
    out.fill(0.0);
    let mut scratch = vec![0.0; POINTS];
    for &(d, w) in degrees {
        let mut acc: Option<Vec<f64>> = start.map(<[f64]>::to_vec);
        for (k, square) in squares.iter().enumerate() {
            if (d - 1) >> k & 1 == 1 {
                acc = Some(match acc {
                    None => square.clone(),
                    Some(a) => {
                        pair(&a, square, &mut scratch);
                        std::mem::replace(&mut scratch, a)
                    }
                });
            }
        }
        let acc = acc.unwrap_or_else(|| x.to_vec());
        out.iter_mut().zip(&acc).for_each(|(a, b)| *a += w * b);
    }
}

/// Whether BP on the ensemble drives the error probability of its messages below `1e-9`
/// within `max_iterations` at crossover probability `p` (false for `p` outside (0, 0.5), where
/// the channel's LLR is not a positive number).
pub fn converges(ensemble: &Ensemble, p: f64, max_iterations: usize) -> bool {
    const TARGET: f64 = 1e-9;
    if !(p > 0.0 && p < 0.5) {
        return false;
    }
    let llr = ((1.0 - p) / p).ln();
    let at = ((llr / STEP).round() as usize).min(HALF);
    let mut channel = vec![0.0; POINTS];
    channel[HALF + at] = 1.0 - p;
    channel[HALF - at] += p;
    let mut v = channel.clone();
    let (mut u, mut next) = (vec![0.0; POINTS], vec![0.0; POINTS]);
    let mut last = f64::INFINITY;
    let mut stuck = 0;
    for _ in 0..max_iterations {
        mixture(&ensemble.check, &v, None, check_pair, &mut u);
        mixture(&ensemble.variable, &u, Some(&channel), variable_pair, &mut next);
        let total: f64 = next.iter().sum();
        next.iter_mut().for_each(|x| *x /= total);
        std::mem::swap(&mut v, &mut next);
        let error = v[..HALF].iter().sum::<f64>() + v[HALF] / 2.0;
        if error < TARGET {
            return true;
        }
        // A fixed point above the target: BP is stuck.
        if error >= last * (1.0 - 1e-9) {
            stuck += 1;
            if stuck > 20 {
                return false;
            }
        } else {
            stuck = 0;
        }
        last = error;
    }
    false
}

/// The largest crossover probability in `[low, high]` at which the ensemble converges, by
/// bisection to `steps` halvings (`low` is assumed to converge).
pub fn threshold(ensemble: &Ensemble, mut low: f64, mut high: f64, steps: usize) -> f64 {
    for _ in 0..steps {
        let mid = (low + high) / 2.0;
        if converges(ensemble, mid, 5000) {
            low = mid;
        } else {
            high = mid;
        }
    }
    low
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_regular_3_6_ensemble_has_its_published_threshold() {
        // Richardson and Urbanke: BP threshold of the (3, 6) ensemble on the BSC, 0.084.
        let e = Ensemble::new(&[(3, 1.0)], &[(6, 1.0)]).unwrap();
        assert!((e.rate() - 0.5).abs() < 1e-12);
        assert!(converges(&e, 0.0835, 5000));
        assert!(!converges(&e, 0.0845, 5000));
        assert!([0.0, 0.5, -1.0, f64::NAN].iter().all(|&p| !converges(&e, p, 5000)));
    }

    #[test]
    fn densities_stay_densities() {
        let mut f = vec![0.0; POINTS];
        let mut g = vec![0.0; POINTS];
        f[HALF + 30] = 0.9;
        f[HALF - 30] = 0.1;
        g[HALF + 300] = 0.7;
        g[HALF - 5] = 0.3;
        let mut out = vec![0.0; POINTS];
        check_pair(&f, &g, &mut out);
        assert!((out.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        // tanh-rule sign: P(negative) = 0.9·0.3 + 0.1·0.7.
        assert!((out[..HALF].iter().sum::<f64>() - 0.34).abs() < 1e-12);
        variable_pair(&f, &g, &mut out);
        assert!((out.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        assert!((out[HALF + 330] - 0.63).abs() < 1e-12);
    }

    /// Densities on the grid with mass everywhere, a random share at each point.
    fn random_density(seed: u64) -> Vec<f64> {
        let mut rng = crate::maths::xoshiro::Xoshiro256::from_seed(seed);
        let mut f: Vec<f64> = (0..POINTS).map(|_| (rng.next_u64() >> 11) as f64).collect();
        let total: f64 = f.iter().sum();
        f.iter_mut().for_each(|x| *x /= total);
        f
    }

    #[test]
    fn the_check_rule_on_magnitudes_matches_every_signed_pair() {
        for seed in 0..3 {
            let (f, g) = (random_density(seed), random_density(seed + 10));
            // Every pair of signed grid points through the ⊞ rule.
            let mut naive = vec![0.0; POINTS];
            for (i, fi) in f.iter().enumerate() {
                for (j, gj) in g.iter().enumerate() {
                    let (a, b) = ((i as f64 - HALF as f64) * STEP, (j as f64 - HALF as f64) * STEP);
                    let l = 2.0 * ((a / 2.0).tanh() * (b / 2.0).tanh()).clamp(-1.0 + 1e-15, 1.0 - 1e-15).atanh();
                    naive[((l / STEP).round() + HALF as f64) as usize] += fi * gj;
                }
            }
            let mut out = vec![0.0; POINTS];
            check_pair(&f, &g, &mut out);
            let far = out.iter().zip(&naive).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
            assert!(far < 1e-15, "seed {seed}: {far}");
        }
    }

    #[test]
    fn the_variable_rule_matches_every_pair() {
        let (f, g) = (random_density(5), random_density(6));
        let mut naive = vec![0.0; POINTS];
        for i in 0..POINTS {
            for j in 0..POINTS {
                naive[(i + j).saturating_sub(HALF).min(POINTS - 1)] += f[i] * g[j];
            }
        }
        let mut out = vec![0.0; POINTS];
        variable_pair(&f, &g, &mut out);
        let far = out.iter().zip(&naive).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
        assert!(far < 1e-15, "{far}");
    }

    /// A density on grid points `HALF ± spread` only.
    fn narrow_density(seed: u64, spread: usize) -> Vec<f64> {
        let wide = random_density(seed);
        let mut f = vec![0.0; POINTS];
        f[HALF - spread..=HALF + spread].copy_from_slice(&wide[HALF - spread..=HALF + spread]);
        let total: f64 = f.iter().sum();
        f.iter_mut().for_each(|x| *x /= total);
        f
    }

    const DEGREES: [(usize, f64); 4] = [(2, 0.1), (3, 0.3), (6, 0.2), (9, 0.4)];

    #[test]
    fn variable_mixtures_match_sums_taken_one_at_a_time() {
        // Supports narrow enough that no sum saturates: the grid's addition is then exact, and
        // square-and-multiply must give what adding one message at a time gives.
        let (x, channel) = (narrow_density(7, 20), narrow_density(8, 20));
        let mut out = vec![0.0; POINTS];
        mixture(&DEGREES, &x, Some(&channel), variable_pair, &mut out);
        let mut naive = vec![0.0; POINTS];
        for &(d, w) in &DEGREES {
            let mut acc = channel.clone();
            for _ in 0..d - 1 {
                let mut next = vec![0.0; POINTS];
                variable_pair(&acc, &x, &mut next);
                acc = next;
            }
            naive.iter_mut().zip(&acc).for_each(|(a, b)| *a += w * b);
        }
        let far = out.iter().zip(&naive).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
        assert!(far < 1e-14, "{far}");
    }

    #[test]
    fn check_mixtures_give_the_sign_law() {
        // Messages of magnitude 6 nats or more, a share q of them negative: the ⊞ of d − 1 is
        // negative with probability (1 − (1 − 2q)^(d−1)) / 2, whatever the rounding of magnitudes
        // (its sign is exact, and no output rounds to 0 at these magnitudes).
        let mut x = vec![0.0; POINTS];
        let q = 0.2;
        let at = (6.0 / STEP) as usize;
        for (k, share) in [(at, 0.5), (at + 40, 0.3), (at + 200, 0.2)] {
            x[HALF + k] += (1.0 - q) * share;
            x[HALF - k] += q * share;
        }
        let mut out = vec![0.0; POINTS];
        mixture(&DEGREES, &x, None, check_pair, &mut out);
        let law: f64 = DEGREES.iter().map(|&(d, w)| w * (1.0 - (1.0 - 2.0 * q).powi(d as i32 - 1)) / 2.0).sum();
        assert_eq!(out[HALF], 0.0);
        assert!((out[..HALF].iter().sum::<f64>() - law).abs() < 1e-14);
        assert!((out.iter().sum::<f64>() - 1.0).abs() < 1e-14);
    }

    #[test]
    fn the_high_rate_codes_have_their_documented_thresholds() {
        // code.rs and the README quote p* 0.01168 (f* 1.090) for the rate-0.9 code and 0.01870
        // (f* 1.119) for the rate-0.85 one (`examples/ldpc_threshold`, 11 halvings); here ±3 %.
        for (name, p) in [("qc160x16z256", 0.01168), ("qc160x24z256", 0.01870)] {
            let e = Ensemble::of(Code::named(name).unwrap()).unwrap();
            assert!(converges(&e, p * 0.97, 5000), "{name}");
            assert!(!converges(&e, p * 1.03, 5000), "{name}");
        }
    }

    #[test]
    fn ensembles_refuse_degrees_below_2_and_bad_shares() {
        assert!(Ensemble::new(&[(1, 1.0)], &[(6, 1.0)]).is_err());
        assert!(Ensemble::new(&[(3, 1.0)], &[(0, 1.0)]).is_err());
        assert!(Ensemble::new(&[], &[(6, 1.0)]).is_err());
        assert!(Ensemble::new(&[(3, 0.0)], &[(6, 1.0)]).is_err());
        assert!(Ensemble::new(&[(3, f64::NAN)], &[(6, 1.0)]).is_err());
        assert!(Ensemble::from_degrees(&[3, 1], &[6]).is_err());
        // Shares are normalised.
        assert_eq!(Ensemble::new(&[(3, 2.0)], &[(6, 4.0)]).unwrap(), Ensemble::new(&[(3, 1.0)], &[(6, 1.0)]).unwrap());
    }

    #[test]
    fn a_code_ensemble_counts_its_edges() {
        let code = Code::named("qc160x16z256").unwrap();
        let e = Ensemble::of(code).unwrap();
        assert!((e.rate() - code.rate()).abs() < 1e-12);
        assert!((e.variable().iter().map(|v| v.1).sum::<f64>() - 1.0).abs() < 1e-12);
    }
}
