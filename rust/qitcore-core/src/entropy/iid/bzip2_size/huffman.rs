//! bzip2's Huffman code lengths. The lengths, and so the stream's length, depend on how ties
//! between equal weights fall, so this follows libbzip2's construction step for step: weights are
//! frequencies (zero counted as one) shifted left 8 bits with the subtree depth in the low byte,
//! merged two lightest at a time from a binary heap of node numbers; when a code comes out longer
//! than the limit, every weight is halved (`1 + w / 2`) and the code is built again.

/// Largest alphabet: 256 byte values, RUNA/RUNB in place of zero, end of block.
pub const MAX_ALPHA: usize = 258;

/// Code lengths for `freq` (one per symbol), none longer than `max_len`.
pub fn code_lengths(freq: &[u32], max_len: u8) -> Vec<u8> {
    let alpha = freq.len();
    debug_assert!((2..=MAX_ALPHA).contains(&alpha));
    // Nodes and heap slots count from 1; node 0 (weight 0) is the sentinel under the heap's root.
    let mut weight = vec![0u32; 2 * alpha + 1];
    for (w, &f) in weight[1..].iter_mut().zip(freq) {
        *w = f.max(1) << 8;
    }
    loop {
        let mut parent = vec![-1i32; 2 * alpha + 1];
        let mut heap = vec![0usize; alpha + 2];
        let mut size = 0usize;
        for node in 1..=alpha {
            size += 1;
            heap[size] = node;
            sift_up(&mut heap, &weight, size);
        }
        let mut nodes = alpha;
        while size > 1 {
            let first = pop(&mut heap, &weight, &mut size);
            let second = pop(&mut heap, &weight, &mut size);
            nodes += 1;
            parent[first] = nodes as i32;
            parent[second] = nodes as i32;
            weight[nodes] = merge(weight[first], weight[second]);
            size += 1;
            heap[size] = nodes;
            sift_up(&mut heap, &weight, size);
        }
        let lengths: Vec<u8> = (1..=alpha)
            .map(|leaf| {
                let (mut node, mut depth) = (leaf, 0u8);
                while parent[node] >= 0 {
                    node = parent[node] as usize;
                    depth += 1;
                }
                depth
            })
            .collect();
        if lengths.iter().all(|&l| l <= max_len) {
            return lengths;
        }
        for w in weight[1..=alpha].iter_mut() {
            *w = (1 + (*w >> 8) / 2) << 8;
        }
    }
}

/// The weight of a merged node: summed weights, depth one more than the deeper child's.
fn merge(a: u32, b: u32) -> u32 {
    ((a & !0xff) + (b & !0xff)) | (1 + (a & 0xff).max(b & 0xff))
}

fn sift_up(heap: &mut [usize], weight: &[u32], mut z: usize) {
    let node = heap[z];
    while weight[node] < weight[heap[z >> 1]] {
        heap[z] = heap[z >> 1];
        z >>= 1;
    }
    heap[z] = node;
}

/// Removes and returns the root: the last slot moves to the root and sifts down.
fn pop(heap: &mut [usize], weight: &[u32], size: &mut usize) -> usize {
    let root = heap[1];
    heap[1] = heap[*size];
    *size -= 1;
    let n = *size;
    let node = heap[1];
    let mut z = 1usize;
    loop {
        let mut child = z << 1;
        if child > n {
            break;
        }
        if child < n && weight[heap[child + 1]] < weight[heap[child]] {
            child += 1;
        }
        if weight[node] < weight[heap[child]] {
            break;
        }
        heap[z] = heap[child];
        z = child;
    }
    heap[z] = node;
    root
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Kraft: a complete prefix code has Σ 2^-len = 1.
    fn kraft(lengths: &[u8]) -> f64 {
        lengths.iter().map(|&l| 0.5f64.powi(i32::from(l))).sum()
    }

    #[test]
    fn lengths_form_a_complete_code() {
        let freq = [45u32, 13, 12, 16, 9, 5];
        let lengths = code_lengths(&freq, 17);
        assert_eq!(lengths, vec![1, 3, 3, 3, 4, 4]);
        assert!((kraft(&lengths) - 1.0).abs() < 1e-12);
    }

    #[test]
    fn lengths_are_limited() {
        // Fibonacci frequencies make the deepest possible tree; the limit forces rescaling.
        let mut freq = vec![1u32, 1];
        while freq.len() < 30 {
            let n = freq.len();
            freq.push(freq[n - 1] + freq[n - 2]);
        }
        let lengths = code_lengths(&freq, 17);
        assert!(lengths.iter().all(|&l| l <= 17));
        assert!((kraft(&lengths) - 1.0).abs() < 1e-12);
    }
}
