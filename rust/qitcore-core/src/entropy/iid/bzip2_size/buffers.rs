//! Each thread's spare buffers for the blocks' large vectors. A permutation round takes several
//! megabytes block by block; fresh from the allocator, they come as new pages (libc maps buffers
//! this large afresh and returns them on free), whose faults and zeroing cost about a tenth of
//! the statistic. Buffers are handed out as they were given back, contents and length included:
//! a caller that fills every place it reads resizes one without zeroing what is there.

use std::cell::RefCell;
use std::thread::LocalKey;

/// Spare buffers kept per thread and element type.
const KEPT: usize = 8;

type Pool<T> = RefCell<Vec<Vec<T>>>;

thread_local! {
    static BYTES: Pool<u8> = const { RefCell::new(Vec::new()) };
    static WORDS: Pool<u16> = const { RefCell::new(Vec::new()) };
    static STARTS: Pool<u32> = const { RefCell::new(Vec::new()) };
    static RECORDS: Pool<u64> = const { RefCell::new(Vec::new()) };
}

/// Element types with a pool of spare buffers.
pub trait Pooled: Sized + 'static {
    /// This thread's pool.
    fn pool() -> &'static LocalKey<Pool<Self>>;
}

impl Pooled for u8 {
    fn pool() -> &'static LocalKey<Pool<u8>> {
        &BYTES
    }
}

impl Pooled for u16 {
    fn pool() -> &'static LocalKey<Pool<u16>> {
        &WORDS
    }
}

impl Pooled for u32 {
    fn pool() -> &'static LocalKey<Pool<u32>> {
        &STARTS
    }
}

impl Pooled for u64 {
    fn pool() -> &'static LocalKey<Pool<u64>> {
        &RECORDS
    }
}

/// A vector used before where there is one (its contents unspecified), else an empty one, with
/// room for `capacity` elements. The room is reserved exactly: a buffer grown by pushes and
/// extensions doubles, and the pool would keep up to twice the megabytes a block needs.
pub fn take<T: Pooled>(capacity: usize) -> Vec<T> {
    let mut v: Vec<T> = T::pool().with_borrow_mut(Vec::pop).unwrap_or_default();
    v.reserve_exact(capacity.saturating_sub(v.len()));
    v
}

/// Gives a vector back for [`take`] to hand out again.
pub fn give<T: Pooled>(v: Vec<T>) {
    T::pool().with_borrow_mut(|spare| {
        if spare.len() < KEPT {
            spare.push(v);
        }
    });
}
