//! Each thread's spare buffers for the blocks' large vectors. A permutation round takes several
//! megabytes block by block; fresh from the allocator, they come as new pages (libc maps buffers
//! this large afresh and returns them on free), whose faults and zeroing cost about a tenth of
//! the statistic. Buffers are handed out as they were given back, contents and length included:
//! a caller that fills every place it reads resizes one without zeroing what is there.

use std::cell::RefCell;

/// Spare buffers kept per thread and element type.
const KEPT: usize = 8;

thread_local! {
    static BYTES: RefCell<Vec<Vec<u8>>> = const { RefCell::new(Vec::new()) };
    static WORDS: RefCell<Vec<Vec<u16>>> = const { RefCell::new(Vec::new()) };
}

/// A byte vector used before where there is one (its contents unspecified), else an empty one.
pub fn bytes() -> Vec<u8> {
    BYTES.with_borrow_mut(Vec::pop).unwrap_or_default()
}

/// Gives a byte vector back for [`bytes`] to hand out again.
pub fn give_bytes(v: Vec<u8>) {
    BYTES.with_borrow_mut(|spare| {
        if spare.len() < KEPT {
            spare.push(v);
        }
    });
}

/// A vector of 16-bit words, as [`bytes`].
pub fn words() -> Vec<u16> {
    WORDS.with_borrow_mut(Vec::pop).unwrap_or_default()
}

/// Gives a word vector back for [`words`].
pub fn give_words(v: Vec<u16>) {
    WORDS.with_borrow_mut(|spare| {
        if spare.len() < KEPT {
            spare.push(v);
        }
    });
}
