//! Scratch words that may hold secrets (sums of seed and input words): allocated zeroed, wiped
//! when dropped with wide stores that the compiler cannot elide.
//!
//! `zeroize` clears a `Vec<u64>` one volatile word at a time (about 4 ms for each 48 MiB transform
//! buffer of a 2^27-bit hash); its slice path, a fill followed by an optimisation barrier, clears
//! small buffers, and large ones are cleared by both cores with non-temporal stores, which need
//! not read the lines they overwrite. Large buffers are also faulted in by both cores: the kernel clears each fresh page
//! on its first write, and one core clearing them all, then writing zeros over them again, was a
//! serial stretch of a tenth of a 2^27-bit hash.

use std::ops::{Deref, DerefMut};
use std::sync::atomic::{compiler_fence, Ordering};

use rayon::prelude::*;

use super::backend::Backend;

/// Buffers from this many words up ask for 2 MiB pages and are faulted in and wiped by both
/// cores, one huge page per task.
const LARGE_WORDS: usize = 1 << 18;

/// Zero words, wiped when dropped (also on unwind).
pub struct Wiped(Vec<u64>);

impl Wiped {
    /// `len` zero words (from `calloc`; see [`scratch`] for large buffers).
    pub fn zeroed(len: usize) -> Self {
        if len >= LARGE_WORDS {
            return scratch(len);
        }
        Wiped(vec![0u64; len])
    }
}

/// A zeroed scratch buffer of `len` words, wiped when dropped (it may hold key material).
///
/// Small buffers get their zeros written rather than taken from `calloc`: fresh zero pages mapped
/// on a read and then written cost a copy-on-write fault and a TLB shootdown across threads per
/// page. Large ones come from `calloc` (fresh pages, which the kernel clears, are not written
/// again), ask for transparent huge pages (512 times fewer faults), and are written once per
/// 4 KiB page by both cores, so that the kernel's clearing runs on both and no page is first
/// mapped by a read.
pub fn scratch(len: usize) -> Wiped {
    if len < LARGE_WORDS {
        return Wiped(spare::take(len).unwrap_or_else(|| written_zeros(len)));
    }
    let mut v = vec![0u64; len];
    advise_huge_pages(&mut v);
    v.par_chunks_mut(LARGE_WORDS).for_each(|run| {
        for word in run.iter_mut().step_by(512) {
            // Volatile: the optimiser knows the buffer is zero and would drop a plain store of a
            // zero, and with it the fault this store is for.
            // SAFETY: `word` is a valid, exclusively borrowed u64.
            unsafe { std::ptr::write_volatile(word, 0) };
        }
    });
    Wiped(v)
}

/// `len` zeros written into a fresh allocation (not taken from `calloc`, see [`scratch`]).
#[expect(clippy::slow_vector_initialization, reason = "the zeros are written on purpose")]
fn written_zeros(len: usize) -> Vec<u64> {
    let mut v: Vec<u64> = Vec::with_capacity(len);
    v.resize(len, 0u64);
    v
}

#[cfg(target_os = "linux")]
fn advise_huge_pages(v: &mut [u64]) {
    const HUGE: usize = 1 << 21;
    let start = v.as_mut_ptr() as usize;
    let end = start + v.len() * 8;
    let (first, last) = (start.next_multiple_of(HUGE), end / HUGE * HUGE);
    if first < last {
        // SAFETY: the range lies inside this buffer; MADV_HUGEPAGE only changes how the kernel
        // backs it, never its contents, and failure is harmless.
        unsafe { libc::madvise(first as *mut libc::c_void, last - first, libc::MADV_HUGEPAGE) };
    }
}

#[cfg(not(target_os = "linux"))]
fn advise_huge_pages(_v: &mut [u64]) {}

impl Deref for Wiped {
    type Target = [u64];
    fn deref(&self) -> &[u64] {
        &self.0
    }
}

impl DerefMut for Wiped {
    fn deref_mut(&mut self) -> &mut [u64] {
        &mut self.0
    }
}

impl Drop for Wiped {
    fn drop(&mut self) {
        wipe(&mut self.0);
        spare::give(std::mem::take(&mut self.0));
    }
}

/// Wiped buffers kept for [`scratch`] to hand out again: a product with a fresh seed takes a few
/// buffers of up to a few hundred KiB each, and fresh ones cost their zeros written (the wipe
/// already wrote them), the allocator's calls and, when it returns the memory to the system,
/// page faults. They hold zeros only; at most [`SPARE_WORDS`] words are kept.
mod spare {
    use std::sync::{Mutex, PoisonError};

    use super::LARGE_WORDS;

    /// Words kept in all (4 MiB), counted by allocation.
    pub(super) const SPARE_WORDS: usize = 1 << 19;
    /// Buffers shorter than this are not kept (the allocator reuses them cheaply).
    const MIN_WORDS: usize = 1 << 12;

    static SPARE: Mutex<Vec<Vec<u64>>> = Mutex::new(Vec::new());

    /// A kept buffer of `len` zero words, made from the one of least capacity among those whose
    /// allocation holds `len` words and at most twice as many (so that no buffer kept is much
    /// larger than what it is used for).
    pub(super) fn take(len: usize) -> Option<Vec<u64>> {
        if !(MIN_WORDS..LARGE_WORDS).contains(&len) {
            return None;
        }
        let mut spare = SPARE.lock().unwrap_or_else(PoisonError::into_inner);
        let (at, _) = spare
            .iter()
            .enumerate()
            .filter(|(_, v)| (len..=2 * len).contains(&v.capacity()))
            .min_by_key(|(_, v)| v.capacity())?;
        let mut v = spare.swap_remove(at);
        drop(spare);
        // Its words are zero up to its length; those past it, up to `len`, are written zero.
        v.resize(len, 0);
        Some(v)
    }

    /// The words the kept buffers' allocations hold.
    #[cfg(test)]
    pub(super) fn kept_words() -> usize {
        SPARE.lock().unwrap_or_else(PoisonError::into_inner).iter().map(Vec::capacity).sum()
    }

    /// Keeps `v` (wiped: zeros) when there is room; frees it otherwise.
    pub(super) fn give(v: Vec<u64>) {
        if !(MIN_WORDS..LARGE_WORDS).contains(&v.capacity()) {
            return;
        }
        let mut spare = SPARE.lock().unwrap_or_else(PoisonError::into_inner);
        // Counted by allocation, not length: a buffer handed out shorter keeps its allocation.
        if spare.iter().map(Vec::capacity).sum::<usize>() + v.capacity() <= SPARE_WORDS {
            spare.push(v);
        }
    }
}

/// Overwrites `words` with zeros by stores the compiler keeps even when nothing reads the words
/// again (volatile, or followed by an optimisation barrier that reads them); large buffers on
/// both cores.
pub fn wipe(words: &mut [u64]) {
    if words.len() >= 2 * LARGE_WORDS {
        words.par_chunks_mut(LARGE_WORDS).for_each(wipe_run);
    } else {
        wipe_run(words);
    }
    compiler_fence(Ordering::SeqCst);
}

fn wipe_run(words: &mut [u64]) {
    #[cfg(target_arch = "x86_64")]
    if words.len() >= LARGE_WORDS && Backend::Vpclmul.is_available() {
        // SAFETY: the CPU has AVX-512F (the Vpclmul backend's features include it).
        unsafe { wipe_streaming_avx512(words) };
        return;
    }
    // A fill and an optimisation barrier that reads the words (zeroize's slice path): on the
    // 2^20-bit one-shot product's buffers 0.5 ms faster than volatile 512-bit stores.
    zeroize::Zeroize::zeroize(words);
}

/// Zeros by non-temporal 512-bit stores (the lines are written without being read first), then
/// a store fence and an optimisation barrier: the barrier is an `asm` block that the compiler
/// must assume reads every word, so the stores before it cannot be removed as dead.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn wipe_streaming_avx512(words: &mut [u64]) {
    use std::arch::x86_64::*;
    let p = words.as_mut_ptr();
    let len = words.len();
    // Words up to the first 64-byte boundary, then whole lines, then the tail.
    let head = (p.align_offset(64)).min(len);
    let lines = (len - head) / 8;
    for i in 0..head {
        // SAFETY: i < head <= len.
        unsafe { std::ptr::write_volatile(p.add(i), 0) };
    }
    for k in 0..lines {
        // SAFETY: head + 8k + 8 <= len, and p + head is 64-byte aligned, as the store requires.
        unsafe { _mm512_stream_si512(p.add(head + 8 * k).cast::<__m512i>(), _mm512_setzero_si512()) };
    }
    for i in head + 8 * lines..len {
        // SAFETY: i < len.
        unsafe { std::ptr::write_volatile(p.add(i), 0) };
    }
    _mm_sfence();
    zeroize::optimization_barrier(words);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_length_is_wiped_entirely_and_nothing_around_it() {
        let lens = (0..70).chain([LARGE_WORDS - 3, LARGE_WORDS + 5, 2 * LARGE_WORDS + 9, 5 * LARGE_WORDS + 1]);
        for len in lens {
            // Starts at several alignments (the streaming path's head and tail).
            for start in [1usize, 2, 5] {
                let mut buf: Vec<u64> =
                    (0..(len + 8) as u64).map(|i| i.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1).collect();
                wipe(&mut buf[start..start + len]);
                assert!(buf[start..start + len].iter().all(|&w| w == 0), "length {len} at {start}");
                assert!(buf[..start].iter().all(|&w| w != 0), "length {len}: wrote below the slice");
                assert!(buf[start + len..].iter().all(|&w| w != 0), "length {len}: wrote past the slice");
            }
        }
    }

    #[test]
    fn buffers_handed_out_again_are_zero() {
        // Buffers written all over and dropped come back wiped, at their length or shorter ones.
        for round in 0..3u64 {
            for len in [4096usize, 5000, 65_536, 100_000, LARGE_WORDS - 1] {
                let mut s = scratch(len);
                s.iter_mut().enumerate().for_each(|(i, w)| *w = (i as u64 + round) | 1);
                drop(s);
                for again in [len, len / 2 + 1, len - 1] {
                    let t = scratch(again);
                    assert!(t.len() == again && t.iter().all(|&w| w == 0), "length {len}, again {again}");
                }
            }
        }
    }

    #[test]
    fn the_kept_buffers_stay_within_their_budget() {
        // Buffers asked for at about half their size again and again, each handed back: the
        // allocations kept, not their lengths, are what the budget bounds.
        for _ in 0..50 {
            let mut len = LARGE_WORDS - 1;
            while len >= 4096 {
                let mut s = scratch(len);
                s[0] = 1;
                drop(s);
                len = len / 2 + 1;
            }
            assert!(spare::kept_words() <= spare::SPARE_WORDS, "{} words kept", spare::kept_words());
        }
    }

    #[test]
    fn scratch_is_zero_at_every_size() {
        for len in [0, 1, 511, LARGE_WORDS - 1, LARGE_WORDS, 3 * LARGE_WORDS + 17] {
            let s = scratch(len);
            assert_eq!(s.len(), len);
            assert!(s.iter().all(|&w| w == 0), "length {len}");
            let z = Wiped::zeroed(len);
            assert!(z.len() == len && z.iter().all(|&w| w == 0), "length {len}");
        }
    }
}
