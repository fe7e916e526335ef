//! SP 800-90B §5.2.1–5.2.2: the chi-square tests of independence and goodness of fit, as NIST's
//! `ea_iid` runs them (its binning and degrees of freedom).

use crate::maths::gamma::chi_square_p_value;

/// A chi-square statistic with its degrees of freedom and p-value.
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(
    feature = "python",
    pyo3::pyclass(frozen, get_all, eq, module = "qitcore.entropy", name = "ChiSquareResult"),
    derive(serde::Serialize, serde::Deserialize)
)]
pub struct ChiSquare {
    /// The statistic.
    pub score: f64,
    /// Degrees of freedom.
    pub df: i64,
    /// Its upper-tail probability.
    pub p_value: f64,
    /// Whether the test passes at the 0.001 level.
    pub passed: bool,
}

impl ChiSquare {
    fn new(score: f64, df: i64) -> Self {
        let p_value = chi_square_p_value(score, df as f64);
        ChiSquare { score, df, p_value, passed: p_value >= 0.001 }
    }
}

/// Symbol proportions, each the sum of `1/n` over its occurrences (NIST's rounding).
pub fn proportions(s: &[u8], k: usize) -> Vec<f64> {
    let mut counts = vec![0u64; 256];
    for &x in s {
        counts[x as usize] += 1;
    }
    let step = 1.0 / s.len() as f64;
    counts[..k]
        .iter()
        .map(|&c| {
            let mut p = 0.0f64;
            for _ in 0..c {
                p += step;
            }
            p
        })
        .collect()
}

/// Groups cells, in increasing order of expectation (ties by index), into bins of expectation at
/// least 5; a last bin short of 5 joins the one before. Returns each cell's bin and the bins'
/// expectations.
fn bins(expectations: &[f64]) -> (Vec<usize>, Vec<f64>) {
    let mut order: Vec<usize> = (0..expectations.len()).collect();
    order.sort_by(|&a, &b| expectations[a].total_cmp(&expectations[b]).then(a.cmp(&b)));
    let mut bin_of = vec![0usize; expectations.len()];
    let mut totals = Vec::new();
    let (mut bin, mut current) = (0usize, 0.0f64);
    for &cell in &order {
        if current >= 5.0 {
            totals.push(current);
            bin += 1;
            current = 0.0;
        }
        bin_of[cell] = bin;
        current += expectations[cell];
    }
    if bin != 0 && current < 5.0 {
        for &cell in order.iter().rev() {
            if bin_of[cell] != bin {
                break;
            }
            bin_of[cell] = bin - 1;
        }
        totals[bin - 1] += current;
    } else {
        totals.push(current);
    }
    (bin_of, totals)
}

fn statistic(observed: &[u64], expected: &[f64]) -> f64 {
    observed.iter().zip(expected).map(|(&o, &e)| (o as f64 - e).powi(2) / e).sum()
}

/// Independence of consecutive pairs (non-overlapping) over `k > 2` symbols.
pub fn independence(s: &[u8], k: usize) -> ChiSquare {
    let p = proportions(s, k);
    let half = (s.len() as f64 * 0.5).floor();
    let expectations: Vec<f64> = (0..k * k).map(|t| p[t / k] * p[t % k] * half).collect();
    let (bin_of, totals) = bins(&expectations);
    let mut observed = vec![0u64; totals.len()];
    for pair in s.chunks_exact(2) {
        observed[bin_of[pair[0] as usize * k + pair[1] as usize]] += 1;
    }
    ChiSquare::new(statistic(&observed, &totals), totals.len() as i64 - k as i64)
}

/// Goodness of fit of the symbol frequencies over ten equal parts, `k > 2` symbols.
pub fn goodness_of_fit(s: &[u8], k: usize) -> ChiSquare {
    let p = proportions(s, k);
    let tenth = (s.len() as f64 / 10.0).floor();
    let expectations: Vec<f64> = p.iter().map(|&pi| pi * tenth).collect();
    let (bin_of, totals) = bins(&expectations);
    let block = s.len() / 10;
    let mut score = 0.0;
    for part in s.chunks_exact(block.max(1)).take(10) {
        let mut observed = vec![0u64; totals.len()];
        for &x in part {
            observed[bin_of[x as usize]] += 1;
        }
        score += statistic(&observed, &totals);
    }
    ChiSquare::new(score, 9 * (totals.len() as i64 - 1))
}

/// Independence for bits: the frequencies of non-overlapping m-bit tuples, with the largest
/// `m <= 11` whose rarest tuple still expects 5 occurrences.
pub fn binary_independence(s: &[u8]) -> ChiSquare {
    let n = s.len();
    let p1 = s.iter().map(|&b| f64::from(b)).sum::<f64>() / n as f64;
    let p0 = 1.0 - p1;
    let min_p = p0.min(p1);
    let mut m = 11usize;
    while m > 1 && min_p.powi(m as i32) * ((n / m) as f64) < 5.0 {
        m -= 1;
    }
    if m < 2 {
        return ChiSquare::new(0.0, 0);
    }
    let blocks = n / m;
    let mut occurrences = vec![0u64; 1 << m];
    for block in s.chunks_exact(m).take(blocks) {
        occurrences[block.iter().fold(0usize, |acc, &b| (acc << 1) | b as usize)] += 1;
    }
    let score = occurrences
        .iter()
        .enumerate()
        .map(|(t, &o)| {
            let w = t.count_ones() as i32;
            let e = p1.powi(w) * p0.powi(m as i32 - w) * blocks as f64;
            (o as f64 - e).powi(2) / e
        })
        .sum();
    ChiSquare::new(score, (1i64 << m) - 2)
}

/// Goodness of fit for bits: the count of ones in ten equal parts.
pub fn binary_goodness_of_fit(s: &[u8]) -> ChiSquare {
    let n = s.len();
    let part = n / 10;
    let ones: u64 = s.iter().map(|&b| u64::from(b)).sum();
    let p = ones as f64 / n as f64;
    let (e0, e1) = ((1.0 - p) * part as f64, p * part as f64);
    let score = s
        .chunks_exact(part.max(1))
        .take(10)
        .map(|c| {
            let o1 = c.iter().map(|&b| u64::from(b)).sum::<u64>() as f64;
            let o0 = part as f64 - o1;
            (o0 - e0).powi(2) / e0 + (o1 - e1).powi(2) / e1
        })
        .sum();
    ChiSquare::new(score, 9)
}

/// Both tests, binary or not: `(independence, goodness of fit)`.
pub fn chi_square_tests(s: &[u8], k: usize) -> (ChiSquare, ChiSquare) {
    if k == 2 {
        (binary_independence(s), binary_goodness_of_fit(s))
    } else {
        (independence(s, k), goodness_of_fit(s, k))
    }
}
