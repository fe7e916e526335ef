//! Each thread's spare buffers for the blocks' large vectors. A permutation round takes several
//! megabytes block by block; fresh from the allocator, they come as new pages (libc maps buffers
//! this large afresh and returns them on free), whose faults and zeroing cost about a tenth of
//! the statistic. Buffers are taken empty and given back when done.

use std::cell::RefCell;

/// Spare buffers kept per thread and element type.
const KEPT: usize = 8;

thread_local! {
    static BYTES: RefCell<Vec<Vec<u8>>> = const { RefCell::new(Vec::new()) };
    static WORDS: RefCell<Vec<Vec<u16>>> = const { RefCell::new(Vec::new()) };
}

/// An empty byte vector, with the capacity of one used before where there is one.
pub fn bytes() -> Vec<u8> {
    BYTES.with_borrow_mut(Vec::pop).unwrap_or_default()
}

/// Gives a byte vector back for [`bytes`] to hand out again.
pub fn give_bytes(mut v: Vec<u8>) {
    v.clear();
    BYTES.with_borrow_mut(|spare| {
        if spare.len() < KEPT {
            spare.push(v);
        }
    });
}

/// An empty vector of 16-bit words, as [`bytes`].
pub fn words() -> Vec<u16> {
    WORDS.with_borrow_mut(Vec::pop).unwrap_or_default()
}

/// Gives a word vector back for [`words`].
pub fn give_words(mut v: Vec<u16>) {
    v.clear();
    WORDS.with_borrow_mut(|spare| {
        if spare.len() < KEPT {
            spare.push(v);
        }
    });
}
