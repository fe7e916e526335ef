//! SP 800-90B §6.3.2: the collision estimate (binary data only).

use crate::entropy::estimate::{Estimate, View};
use crate::entropy::stats::Z_ALPHA;

/// Times to the first collision, walked over the bits; their mean, lowered by its 99 % bound,
/// gives `p` through `X̄′ = 2.5 − … ` solved in closed form for binary data.
pub fn collision(s: &[u8], view: View) -> Estimate {
    let mut e = Estimate::new("Collision", view);
    let len = s.len();
    let (mut i, mut v, mut sum_sq) = (0usize, 0u64, 0.0f64);
    while i + 1 < len {
        let t = if s[i] == s[i + 1] {
            2
        } else if i + 2 < len {
            3
        } else {
            break;
        };
        v += 1;
        sum_sq += (t * t) as f64;
        i += t;
    }
    if v < 2 {
        return e.skipped("too few samples for the collision estimate");
    }
    let x_bar = i as f64 / v as f64;
    let sigma = ((sum_sq - i as f64 * x_bar) / (v as f64 - 1.0)).sqrt();
    let mut x_prime = x_bar - Z_ALPHA * sigma / (v as f64).sqrt();
    if x_prime < 2.0 {
        x_prime = 2.0;
    }
    e.int("v", v as i64).int("Sum t_i", i as i64).real("X-bar", x_bar).real("sigma-hat", sigma).real("X-bar'", x_prime);
    if x_prime < 2.5 {
        let p = 0.5 + (1.25 - 0.5 * x_prime).sqrt();
        e.real("p", p);
        e.finish(-p.log2())
    } else {
        e.real("p", 0.5);
        e.note = Some("could not find p; proceeding with the lower bound p = 0.5".into());
        e.finish(1.0)
    }
}
