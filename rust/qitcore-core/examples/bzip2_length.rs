//! The permutation tests' compression statistic beside libbzip2 on the same shuffled samples:
//! `cargo run --release --example bzip2_length -- FILE` (e.g. NIST's truerand_8bit.bin). Each
//! length is checked equal to libbzip2's; the medians of nine shuffles are printed.

use qitcore_core::entropy::iid::bzip2_size::{compressed_length, decimal_text};
use qitcore_core::maths::xoshiro::{shuffle_into, Xoshiro256};
use std::time::Instant;
fn main() {
    let data = std::fs::read(std::env::args().nth(1).unwrap()).unwrap();
    let mut rng = Xoshiro256::from_seed(9);
    let mut sh = vec![0u8; data.len()];
    let (mut a, mut b) = (vec![], vec![]);
    for _ in 0..9 {
        shuffle_into(&data, &mut sh, &mut rng);
        let s = Instant::now();
        let ours = compressed_length(&sh);
        a.push(s.elapsed().as_secs_f64());
        let s = Instant::now();
        let text = decimal_text(&sh);
        let mut c = bzip2::Compress::new(bzip2::Compression::new(5), 30);
        let mut out = Vec::with_capacity(text.len() + 1000);
        c.compress_vec(&text, &mut out, bzip2::Action::Finish).unwrap();
        b.push(s.elapsed().as_secs_f64());
        assert_eq!(ours, out.len() as u64);
    }
    a.sort_by(|x, y| x.partial_cmp(y).unwrap());
    b.sort_by(|x, y| x.partial_cmp(y).unwrap());
    println!(
        "qitcore {:.1} ms, libbzip2 {:.1} ms (medians of 9, equal lengths) -> {:.1}x",
        a[4] * 1e3,
        b[4] * 1e3,
        b[4] / a[4]
    );
}
