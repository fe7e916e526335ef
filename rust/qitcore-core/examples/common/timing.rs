//! What the timing examples share (included by `#[path]`; each uses part of it): the process's
//! CPU time, and wall and CPU seconds over repeated runs, since CPU time is the steadier figure
//! on a shared machine.
#![allow(dead_code)]

use std::time::Instant;

/// CPU seconds this process has used, all threads together (zero where not measured).
#[cfg(not(target_os = "linux"))]
pub fn cpu_s() -> f64 {
    0.0
}

/// CPU seconds this process has used, all threads together.
#[cfg(target_os = "linux")]
pub fn cpu_s() -> f64 {
    let mut t = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: t is a valid timespec to write.
    unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut t) };
    t.tv_sec as f64 + t.tv_nsec as f64 * 1e-9
}

/// Wall and CPU seconds of each of `rounds` runs (no warm-up: the caller runs one first),
/// each list sorted, so that index `rounds / 2` is the median and 0 the fastest.
pub fn sorted_runs(rounds: usize, mut run: impl FnMut()) -> (Vec<f64>, Vec<f64>) {
    let (mut wall, mut cpu): (Vec<f64>, Vec<f64>) = (0..rounds)
        .map(|_| {
            let (start, cpu0) = (Instant::now(), cpu_s());
            run();
            (start.elapsed().as_secs_f64(), cpu_s() - cpu0)
        })
        .unzip();
    wall.sort_by(f64::total_cmp);
    cpu.sort_by(f64::total_cmp);
    (wall, cpu)
}
