//! What the LDPC design examples share (included by `#[path]`): a mother code's column-degree
//! profile as the command line gives it, `"deg:count,deg:count"`.

/// The `(degree, columns)` pairs of `"deg:count,..."` (empty items skipped); panics on a malformed
/// item, as a design tool's bad argument.
pub fn parse(text: &str) -> Vec<(usize, usize)> {
    text.split(',')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (d, k) = p.split_once(':').expect("deg:count");
            (d.parse().expect("degree"), k.parse().expect("count"))
        })
        .collect()
}
