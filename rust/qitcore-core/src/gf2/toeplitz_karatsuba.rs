//! Karatsuba for Toeplitz matrix-vector products (the middle-product form of Karatsuba).
//!
//! A square `k × k` Toeplitz matrix with generating sequence `g` (`2k − 1` coefficients,
//! `T[i, j] = g[i − j + k − 1]`) splits into `h × h` Toeplitz blocks, `h = k/2`:
//! `T = [[A, B], [C, A]]` with `A = g[h ..]`, `B = g[0 ..]`, `C = g[2h ..]` (each `2h − 1` long).
//! Then `y0 = P + Q`, `y1 = P + R` with `P = A(x0 + x1)`, `Q = (A + B)x1`, `R = (A + C)x0`:
//! three half-size products instead of four. For a fixed matrix the sequences `A`, `A + B`,
//! `A + C` of every level are prepared once, down to leaves that the windowed carry-less kernel
//! multiplies. A rectangular `m × n` matrix is cut into square `m × m` column blocks.

use super::backend::Backend;
use super::clmul::{product_window, Padded, PaddedView, BACK};
use super::wipe::{wipe, Wiped};
use super::xor::{or_shifted, xor_both, xor_to};
use crate::bits::{extract_range, or_bits, words_for};
use std::sync::Mutex;

/// Leaves have at most this many bits per side.
const LEAF_BITS: usize = 1 << 12;
/// Nodes of at least this many bits per side run their three products in parallel.
const PARALLEL_BITS: usize = 1 << 16;

/// A square Toeplitz matrix of side `k` bits (a multiple of 64 at every level), prepared.
enum Node {
    Leaf(Padded),
    Split(Box<[Node; 3]>),
}

impl Node {
    /// Prepares the matrix with generating sequence `g` (`2k − 1` bits in `words_for(2k − 1)`
    /// words), splitting `levels` times.
    fn new(g: &[u64], k: usize, levels: u32) -> Node {
        if levels == 0 {
            return Node::Leaf(Padded::new(g, words_for(k)));
        }
        let h = k / 2;
        let slice = |off: usize| {
            let mut s = vec![0u64; words_for(2 * h - 1)];
            extract_range(g, off, 2 * h - 1, &mut s);
            s
        };
        let a = slice(h);
        let mut ab = slice(0);
        let mut ac = slice(2 * h);
        for ((x, y), z) in ab.iter_mut().zip(ac.iter_mut()).zip(&a) {
            *x ^= z;
            *y ^= z;
        }
        let children = [Node::new(&a, h, levels - 1), Node::new(&ab, h, levels - 1), Node::new(&ac, h, levels - 1)];
        zeroize::Zeroize::zeroize(&mut [a, ab, ac]);
        Node::Split(Box::new(children))
    }

    /// `y = T·x` for `x` and `y` of `k` bits (`k / 64` words).
    fn apply(&self, be: Backend, k: usize, x: &[u64], y: &mut [u64]) {
        match self {
            Node::Leaf(padded) => {
                let (w0, w1) = ((k - 1) / 64, (2 * k - 2) / 64);
                let mut window = vec![0u64; w1 - w0 + 1];
                product_window(be, padded.view(), x, w0, &mut window);
                extract_range(&window, k - 1 - 64 * w0, k, y);
            }
            Node::Split(children) => {
                let (hw, h) = (k / 128, k / 2);
                let (x0, x1) = x.split_at(hw);
                let sum: Vec<u64> = x0.iter().zip(x1).map(|(a, b)| a ^ b).collect();
                let mut p = vec![0u64; hw];
                let mut q = vec![0u64; hw];
                let mut r = vec![0u64; hw];
                let [a, ab, ac] = &**children;
                if k >= PARALLEL_BITS {
                    rayon::join(
                        || a.apply(be, h, &sum, &mut p),
                        || rayon::join(|| ab.apply(be, h, x1, &mut q), || ac.apply(be, h, x0, &mut r)),
                    );
                } else {
                    a.apply(be, h, &sum, &mut p);
                    ab.apply(be, h, x1, &mut q);
                    ac.apply(be, h, x0, &mut r);
                }
                let (y0, y1) = y.split_at_mut(hw);
                for i in 0..hw {
                    y0[i] = p[i] ^ q[i];
                    y1[i] = p[i] ^ r[i];
                }
            }
        }
    }
}

/// An `m × n` Toeplitz matrix `T[i, j] = a[i − j + n − 1]`, prepared for Karatsuba products.
pub struct ToeplitzKaratsuba {
    n: usize,
    m: usize,
    /// Side of the padded square blocks, in bits (`64·2^levels·leaf words`).
    side: usize,
    blocks: Vec<Node>,
}

impl ToeplitzKaratsuba {
    /// Prepares the matrix from `a` (`n + m − 1` bits).
    pub fn new(a: &[u64], n: usize, m: usize) -> Self {
        Self::with_leaf(a, n, m, LEAF_BITS)
    }

    /// The recursion depth and the padded side (bits) for `m` output bits with leaves of at
    /// most `leaf_bits` (rounded to whole words) per side.
    pub(crate) fn shape_with(m: usize, leaf_bits: usize) -> (u32, usize) {
        let levels = m.div_ceil(leaf_bits.max(64)).next_power_of_two().trailing_zeros();
        (levels, m.next_multiple_of(64usize << levels))
    }

    /// The recursion depth and padded side (bits) [`ToeplitzKaratsuba::new`] uses for `m`.
    pub fn shape(m: usize) -> (u32, usize) {
        Self::shape_with(m, LEAF_BITS)
    }

    /// As [`ToeplitzKaratsuba::new`], splitting until blocks have at most `leaf_bits` per side.
    pub fn with_leaf(a: &[u64], n: usize, m: usize, leaf_bits: usize) -> Self {
        let (levels, side) = Self::shape_with(m, leaf_bits);
        let blocks = (0..n.div_ceil(m))
            .map(|c| {
                // Column block c: g_c[t] = a[t + n − (c + 1)m] (zero below index 0), then shifted up
                // by side − m so that the padded square keeps the same top-left m × m corner.
                let offset = n as isize - ((c + 1) * m) as isize;
                let skip = (-offset).max(0) as usize;
                let mut g = vec![0u64; words_for(2 * side - 1)];
                if skip < 2 * m - 1 {
                    or_bits(&mut g, side - m + skip, a, (offset + skip as isize) as usize, 2 * m - 1 - skip);
                }
                let node = Node::new(&g, side, levels);
                zeroize::Zeroize::zeroize(&mut g);
                node
            })
            .collect();
        ToeplitzKaratsuba { n, m, side, blocks }
    }

    /// `y = T·x`: `x` has `words_for(n)` words, `y` gets `words_for(m)` words.
    pub fn apply(&self, be: Backend, x: &[u64], y: &mut [u64]) {
        let words = self.side / 64;
        let mut xc = vec![0u64; words];
        let mut yc = vec![0u64; words];
        let mut sum = vec![0u64; words];
        for (c, node) in self.blocks.iter().enumerate() {
            let start = c * self.m;
            xc.fill(0);
            extract_range(x, start, self.m.min(self.n - start), &mut xc);
            node.apply(be, self.side, &xc, &mut yc);
            for (s, v) in sum.iter_mut().zip(&yc) {
                *s ^= v;
            }
        }
        extract_range(&sum, 0, self.m, y);
        zeroize::Zeroize::zeroize(&mut [xc, yc, sum]);
    }
}

/// Leaves of the one-shot recursion have this many bits per side.
pub(crate) const ONCE_LEAF_BITS: usize = 1 << 11;

/// `y = T·x` for an `m × n` Toeplitz matrix `T[i, j] = a[i − j + n − 1]` used once: the same
/// recursion as [`ToeplitzKaratsuba`] with nothing prepared. A fresh seed per block (privacy
/// amplification) would pay for a prepared tree — every leaf copied and padded — and use it once;
/// here each level forms its children's sequences `A`, `A + B`, `A + C` as it descends, in
/// buffers reused across the recursion, and every sequence is kept multiplied by `x` (shifted up
/// one coefficient) so that a leaf's output is whole words of its product.
pub fn apply_once(be: Backend, a: &[u64], n: usize, m: usize, x: &[u64], y: &mut [u64]) {
    let (levels, side) = ToeplitzKaratsuba::shape_with(m, ONCE_LEAF_BITS);
    let words = side / 64;
    // The seed's and the input's words pass through these: wiped when dropped, even on unwind.
    let mut sum = Wiped::zeroed(words);
    let mut g = Wiped::zeroed(2 * words);
    let mut xc = Wiped::zeroed(words);
    let mut yc = Wiped::zeroed(words);
    let spares = Spares::default();
    for c in 0..n.div_ceil(m) {
        // Column block c as in `with_leaf`, one coefficient higher.
        let offset = n as isize - ((c + 1) * m) as isize;
        let skip = (-offset).max(0) as usize;
        g.fill(0);
        if skip < 2 * m - 1 {
            or_shifted(&mut g, side - m + skip + 1, a, (offset + skip as isize) as usize, 2 * m - 1 - skip);
        }
        let start = c * m;
        xc.fill(0);
        extract_range(x, start, m.min(n - start), &mut xc);
        once(be, &g, side, levels, &xc, &mut yc, &spares);
        for (s, v) in sum.iter_mut().zip(yc.iter()) {
            *s ^= v;
        }
    }
    extract_range(&sum, 0, m, y);
}

/// The buffers of one sequential branch of [`once`]: the leaves' padded operand (its padding
/// stays zero; only the operand is rewritten) and a stack for the levels' temporaries.
struct Arena {
    leaf: Vec<u64>,
    stack: Wiped,
}

impl Arena {
    fn new(k: usize, levels: u32) -> Self {
        let (leaf, stack) = Self::sizes(k, levels);
        Arena { leaf: vec![0u64; leaf], stack: Wiped::zeroed(stack) }
    }

    /// The words of the leaf buffer and of the stack below a node of side `k`.
    fn sizes(k: usize, levels: u32) -> (usize, usize) {
        let leaf_words = (k >> levels) / 64;
        // Each level keeps 4k/64 words (two sequences of 2h bits, three h-bit products, the
        // sum of the halves of x): 8k/64 in all below a node of side k.
        (2 * (leaf_words + 1) + 2 * leaf_words + BACK, 8 * k / 64 + 8)
    }

    /// Whether this arena serves a branch of side `k` split `levels` times.
    fn fits(&self, k: usize, levels: u32) -> bool {
        Self::sizes(k, levels) == (self.leaf.len(), self.stack.len())
    }
}

impl Drop for Arena {
    fn drop(&mut self) {
        wipe(&mut self.leaf);
    }
}

/// Buffers freed by the branches of one [`apply_once`], for the next branches to reuse: a
/// block's many sequential branches and parallel levels then allocate (and wipe) about as many
/// buffers as run at once, not one each. All are wiped when the product is done.
#[derive(Default)]
struct Spares {
    arenas: Mutex<Vec<Arena>>,
    temps: Mutex<Vec<Wiped>>,
}

impl Spares {
    fn arena(&self, k: usize, levels: u32) -> Arena {
        let mut kept = self.arenas.lock().unwrap_or_else(|e| e.into_inner());
        // Every sequential branch of a product has the same side and depth.
        kept.pop().filter(|a| a.fits(k, levels)).unwrap_or_else(|| Arena::new(k, levels))
    }

    fn temps(&self, len: usize) -> Wiped {
        let mut kept = self.temps.lock().unwrap_or_else(|e| e.into_inner());
        match kept.iter().position(|t| t.len() == len) {
            Some(i) => kept.swap_remove(i),
            None => Wiped::zeroed(len),
        }
    }
}

/// `y = T·x` for the square Toeplitz matrix of side `k` whose sequence, one coefficient higher,
/// is `g` (`2k/64` words: `T[i, j] = g[i − j + k]`; `g[0]` is never read), split `levels` times.
fn once(be: Backend, g: &[u64], k: usize, levels: u32, x: &[u64], y: &mut [u64], spares: &Spares) {
    if k >= PARALLEL_BITS && levels > 0 {
        once_split(be, g, k, levels, x, y, Branch::Parallel(spares));
    } else {
        let mut arena = spares.arena(k, levels);
        once_in(be, g, k, levels, x, y, &mut arena.leaf, &mut arena.stack);
        spares.arenas.lock().unwrap_or_else(|e| e.into_inner()).push(arena);
    }
}

/// A sequential branch's buffers as [`Arena`] holds them: the leaf operand, the free stack.
type Buffers<'b> = (&'b mut Vec<u64>, &'b mut [u64]);

/// Where a level of [`once`] runs its children.
enum Branch<'b> {
    /// One after another, in these buffers.
    Sequential(Buffers<'b>),
    /// In parallel, each with buffers of its own from these.
    Parallel(&'b Spares),
}

/// One level of [`once`]: the children's sequences and inputs, three products, the sums.
#[allow(clippy::too_many_arguments)]
fn once_split(be: Backend, g: &[u64], k: usize, levels: u32, x: &[u64], y: &mut [u64], branch: Branch<'_>) {
    let hw = k / 128;
    let mut owned = None;
    let (temps, rest): (&mut [u64], Branch<'_>) = match branch {
        Branch::Sequential((leaf, stack)) => {
            let (temps, rest) = stack.split_at_mut(8 * hw);
            (temps, Branch::Sequential((leaf, rest)))
        }
        Branch::Parallel(spares) => {
            // Sums of the seed's words and of the input: wiped when the spares are dropped.
            let temps = owned.insert(spares.temps(8 * hw));
            (&mut temps[..], Branch::Parallel(spares))
        }
    };
    let (ab, temps) = temps.split_at_mut(2 * hw);
    let (ac, temps) = temps.split_at_mut(2 * hw);
    let (sum, temps) = temps.split_at_mut(hw);
    let (p, temps) = temps.split_at_mut(hw);
    let (q, r) = temps.split_at_mut(hw);
    let r = &mut r[..hw];
    // A = g[h ..], B = g[0 ..], C = g[2h ..], each 2h coefficients: whole words.
    let a = &g[hw..3 * hw];
    xor_both(be, a, &g[..2 * hw], &g[2 * hw..4 * hw], ab, ac);
    let (x0, x1) = x.split_at(hw);
    xor_to(be, x0, x1, sum);
    let h = k / 2;
    let back = match &rest {
        Branch::Parallel(spares) => Some(*spares),
        Branch::Sequential(_) => None,
    };
    match rest {
        Branch::Sequential((leaf, stack)) => {
            once_in(be, a, h, levels - 1, sum, p, leaf, stack);
            once_in(be, ab, h, levels - 1, x1, q, leaf, stack);
            once_in(be, ac, h, levels - 1, x0, r, leaf, stack);
        }
        Branch::Parallel(spares) => {
            let (ab, ac, sum) = (&*ab, &*ac, &*sum);
            rayon::join(
                || once(be, a, h, levels - 1, sum, p, spares),
                || {
                    rayon::join(
                        || once(be, ab, h, levels - 1, x1, q, spares),
                        || once(be, ac, h, levels - 1, x0, r, spares),
                    )
                },
            );
        }
    }
    let (y0, y1) = y.split_at_mut(hw);
    xor_both(be, p, q, r, y0, y1);
    if let (Some(temps), Some(spares)) = (owned, back) {
        spares.temps.lock().unwrap_or_else(|e| e.into_inner()).push(temps);
    }
}

/// [`once`] in one thread, with its buffers.
#[allow(clippy::too_many_arguments)]
fn once_in(
    be: Backend,
    g: &[u64],
    k: usize,
    levels: u32,
    x: &[u64],
    y: &mut [u64],
    leaf: &mut Vec<u64>,
    stack: &mut [u64],
) {
    if levels > 0 {
        once_split(be, g, k, levels, x, y, Branch::Sequential((leaf, stack)));
        return;
    }
    let kw = k / 64;
    let front = kw + 1;
    leaf[front..front + 2 * kw].copy_from_slice(&g[..2 * kw]);
    // Only the operand's words of the buffer are ever written: its padding is zero.
    let view = PaddedView::new_zero_padded(leaf, front, 2 * kw);
    // Coefficients k .. 2k of g·x: words kw .. 2kw.
    product_window(be, view, x, kw, y);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bits::{from_bit_vec, to_bit_vec};
    use crate::gf2::backend;
    use proptest::prelude::*;

    fn toeplitz_naive(a: &[u8], x: &[u8], m: usize) -> Vec<u8> {
        let n = x.len();
        (0..m).map(|i| (0..n).fold(0u8, |acc, j| acc ^ (a[i + n - 1 - j] & x[j]))).collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(40))]
        #[test]
        fn several_levels_match_the_definition(
            (a, x, m) in (1usize..1200).prop_flat_map(|n| (Just(n), 1..=2 * n)).prop_flat_map(|(n, m)| {
                (proptest::collection::vec(0u8..2, n + m - 1), proptest::collection::vec(0u8..2, n), Just(m))
            }),
            leaf in prop_oneof![Just(64usize), Just(128), Just(256)],
        ) {
            let expect = toeplitz_naive(&a, &x, m);
            for be in backend::available() {
                let mut y = vec![u64::MAX; words_for(m)];
                apply_once(be, &from_bit_vec(&a), x.len(), m, &from_bit_vec(&x), &mut y);
                prop_assert_eq!(to_bit_vec(&y, m), expect.clone(), "once, {:?}", be);
            }
            let tk = ToeplitzKaratsuba::with_leaf(&from_bit_vec(&a), x.len(), m, leaf);
            for be in backend::available() {
                let mut y = vec![u64::MAX; words_for(m)];
                tk.apply(be, &from_bit_vec(&x), &mut y);
                prop_assert_eq!(to_bit_vec(&y, m), expect.clone(), "{:?}", be);
            }
        }
    }

    /// Deep and parallel one-shot recursions against the prepared tree.
    #[test]
    fn one_shot_products_match_the_prepared_tree() {
        for (n, m) in [(300_000usize, 150_001usize), (1 << 17, 1 << 16), (70_000, 69_999), (1 << 16, 1000)] {
            let (a, x) = crate::gf2::test_operands(n, m, 9);
            let prepared = ToeplitzKaratsuba::new(&a, n, m);
            for be in backend::available() {
                let mut expect = vec![0u64; words_for(m)];
                prepared.apply(be, &x, &mut expect);
                let mut y = vec![u64::MAX; words_for(m)];
                apply_once(be, &a, n, m, &x, &mut y);
                assert_eq!(y, expect, "n={n} m={m} {be:?}");
            }
        }
    }
}
