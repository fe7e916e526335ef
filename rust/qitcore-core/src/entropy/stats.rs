//! Numerical pieces the estimators share: the 99 % upper confidence bound, compensated sums,
//! and the bisection NIST's tool uses to invert monotone functions.

/// The normal quantile for 99 % one-sided confidence, as NIST's estimators use it.
pub const Z_ALPHA: f64 = 2.575_829_303_548_901;

/// The upper bound `min(1, p + Z·sqrt(p(1 − p)/(n − 1)))` on a proportion from `n` samples.
pub fn upper_bound(p: f64, n: f64) -> f64 {
    (p + Z_ALPHA * (p * (1.0 - p) / (n - 1.0)).sqrt()).min(1.0)
}

/// Kahan-compensated running sum.
#[derive(Default, Clone, Copy)]
pub struct Kahan {
    sum: f64,
    comp: f64,
}

impl Kahan {
    /// Adds `x`.
    #[inline]
    pub fn add(&mut self, x: f64) {
        let y = x - self.comp;
        let t = self.sum + y;
        self.comp = (t - self.sum) - y;
        self.sum = t;
    }

    /// The sum so far.
    pub fn value(&self) -> f64 {
        self.sum
    }
}

/// Whether `a` and `b` are equal up to a relative `rel` (or, where relative closeness is
/// meaningless, an absolute `abs`), or within `ulps` units in the last place: the closeness test
/// that ends NIST's bisections, so that ours stop at the same points.
pub fn close(a: f64, b: f64, abs: f64, rel: f64, ulps: u64) -> bool {
    if a.is_nan() || b.is_nan() {
        return false;
    }
    if a == b {
        return true;
    }
    if a.is_infinite() || b.is_infinite() {
        return false;
    }
    let (small, large) = if a.abs() > b.abs() { (b, a) } else { (a, b) };
    let diff = (large - small).abs();
    if small.abs() < f64::MIN_POSITIVE
        || diff < f64::MIN_POSITIVE
        || diff.is_infinite()
        || large.abs() * rel < f64::MIN_POSITIVE
    {
        return diff <= abs;
    }
    if diff <= large.abs() * rel {
        return true;
    }
    if small.is_sign_negative() != large.is_sign_negative() {
        return false;
    }
    large.abs().to_bits() - small.abs().to_bits() <= ulps
}

/// The default closeness of NIST's bisections: relative `f64::EPSILON`, absolute
/// `f64::MIN_POSITIVE`, 4 ulps.
pub fn close_default(a: f64, b: f64) -> bool {
    close(a, b, f64::MIN_POSITIVE, f64::EPSILON, 4)
}

fn in_closed(x: f64, a: f64, b: f64) -> bool {
    if a > b {
        x >= b && x <= a
    } else {
        x >= a && x <= b
    }
}

fn in_open(x: f64, a: f64, b: f64) -> bool {
    if a > b {
        x > b && x < a
    } else {
        x > a && x < b
    }
}

/// Where the bisection lands when its preconditions break: NIST returns one end of the domain.
#[derive(Clone, Copy)]
pub enum OnFailure {
    /// Return the low end of the domain.
    Low,
    /// Return the high end of the domain.
    High,
}

/// Solves `f(p) = target` for a function decreasing in `p` on `[low, high]` by bisection, exactly
/// as NIST's tool does (up to 1076 steps; the same stopping and failure rules), so that the
/// roots agree to the last bits.
pub fn bisect_decreasing(f: impl Fn(f64) -> f64, target: f64, low: f64, high: f64, on_failure: OnFailure) -> f64 {
    const ITERMAX: usize = 1076;
    let fail = match on_failure {
        OnFailure::Low => low,
        OnFailure::High => high,
    };
    let (mut lbound, mut hbound) = (low, high);
    let (mut lvalue, mut hvalue) = (f64::INFINITY, f64::NEG_INFINITY);
    let mut p = (lbound + hbound) / 2.0;
    let mut value = f(p);
    for _ in 0..ITERMAX {
        if close_default(value, target) {
            break;
        }
        if target < value {
            lbound = p;
            lvalue = value;
        } else {
            hbound = p;
            hvalue = value;
        }
        if lbound >= hbound {
            return lbound.max(hbound).min(high);
        }
        if !(in_closed(lbound, low, high) && in_closed(hbound, low, high)) {
            return fail;
        }
        if !in_closed(target, lvalue, hvalue) {
            return fail;
        }
        let last = p;
        p = (lbound + hbound) / 2.0;
        if !in_open(p, lbound, hbound) || last == p {
            return hbound;
        }
        value = f(p);
        if !in_closed(value, lvalue, hvalue) {
            return hbound;
        }
    }
    p
}
