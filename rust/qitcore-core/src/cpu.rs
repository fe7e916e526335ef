//! The CPU features the fast paths use, detected once per process, and the one switch that turns
//! them all off.
//!
//! Every SIMD site asks [`has`] for the features its kernel is compiled for and otherwise takes
//! its portable path; none detects features on its own. Setting the environment variable
//! [`ENV_VAR`] (`QITCORE_SIMD`) to `portable` before the first use makes [`has`] answer no for
//! everything, so every site runs its portable code: CRC-32C, von Neumann, the health monitor,
//! the entropy estimators, the bzip2 length and the permutation tests, and the carry-less
//! multiplication of [`crate::gf2`] (whose own `QITCORE_CLMUL` then has only `portable` to choose
//! from). `auto`, or no variable, uses what the CPU has; any other value is ignored, as
//! `QITCORE_CLMUL` ignores unknown names. The tests run each path the CPU has by comparing the
//! dispatched kernels with the portable ones, and the Python suite reruns representative work in
//! a process with the variable set.

use std::sync::OnceLock;

/// The environment variable that forces the portable path everywhere, read once.
pub const ENV_VAR: &str = "QITCORE_SIMD";

/// A set of x86-64 features, as [`std::arch::is_x86_feature_detected`] names them.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Features(u16);

/// Declares each feature once: its constant, its name, and its detection.
macro_rules! features {
    ($($(#[$doc:meta])* $konst:ident = $bit:literal, $name:tt;)*) => {
        impl Features {
            $($(#[$doc])* pub const $konst: Features = Features(1 << $bit);)*

            /// Each feature with its name.
            const NAMED: &'static [(Features, &'static str)] = &[$((Features::$konst, $name)),*];
        }

        #[cfg(target_arch = "x86_64")]
        fn detect() -> Features {
            let mut found = Features::NONE;
            $(if std::arch::is_x86_feature_detected!($name) {
                found = found | Features::$konst;
            })*
            found
        }
    };
}

features! {
    /// `ssse3`: byte shuffles (the bzip2 move-to-front).
    SSSE3 = 0, "ssse3";
    /// `sse4.2`: the `crc32` instruction.
    SSE42 = 1, "sse4.2";
    /// `popcnt`.
    POPCNT = 2, "popcnt";
    /// `bmi1`.
    BMI1 = 3, "bmi1";
    /// `bmi2`: `pext` (von Neumann) and single-step variable shifts.
    BMI2 = 4, "bmi2";
    /// `lzcnt`.
    LZCNT = 5, "lzcnt";
    /// `avx2`: 256-bit integer vectors.
    AVX2 = 6, "avx2";
    /// `avx512f`: 512-bit vectors.
    AVX512F = 7, "avx512f";
    /// `avx512bw`: byte and word operations on 512-bit vectors.
    AVX512BW = 8, "avx512bw";
    /// `pclmulqdq`: carry-less multiplication of 64-bit halves.
    PCLMULQDQ = 9, "pclmulqdq";
    /// `vpclmulqdq`: carry-less multiplication in every 128-bit lane of a wide vector.
    VPCLMULQDQ = 10, "vpclmulqdq";
}

impl Features {
    /// No feature: what every CPU has, and all that [`enabled`] reports when the portable path is
    /// forced.
    pub const NONE: Features = Features(0);

    /// The features of both sets (`|`, usable in constants).
    #[inline]
    pub const fn union(self, other: Features) -> Features {
        Features(self.0 | other.0)
    }

    /// Whether every feature of `wanted` is in `self`.
    #[inline]
    pub const fn contains(self, wanted: Features) -> bool {
        self.0 & wanted.0 == wanted.0
    }

    /// The names of the features in `self`, as `is_x86_feature_detected!` spells them.
    pub fn names(self) -> impl Iterator<Item = &'static str> {
        Features::NAMED.iter().filter(move |(f, _)| self.contains(*f)).map(|&(_, name)| name)
    }
}

impl std::ops::BitOr for Features {
    type Output = Features;

    #[inline]
    fn bitor(self, other: Features) -> Features {
        self.union(other)
    }
}

impl std::fmt::Debug for Features {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.names()).finish()
    }
}

/// The features this CPU has, whatever [`ENV_VAR`] says (detected at first use).
pub fn detected() -> Features {
    static DETECTED: OnceLock<Features> = OnceLock::new();
    *DETECTED.get_or_init(detect)
}

/// Whether [`ENV_VAR`] forces the portable path (read at first use).
pub fn portable_forced() -> bool {
    static FORCED: OnceLock<bool> = OnceLock::new();
    *FORCED.get_or_init(|| forces_portable(std::env::var(ENV_VAR).ok().as_deref()))
}

/// The features the fast paths may use: [`detected`], or none when [`ENV_VAR`] forces the
/// portable path. Decided once; a cached load afterwards.
#[inline]
pub fn enabled() -> Features {
    static ENABLED: OnceLock<Features> = OnceLock::new();
    *ENABLED.get_or_init(|| if portable_forced() { Features::NONE } else { detected() })
}

/// Whether the fast paths may use every feature of `wanted`: the one question each SIMD site
/// asks before it calls a kernel compiled for `wanted`, whose safety rests on a yes.
#[inline]
pub fn has(wanted: Features) -> bool {
    enabled().contains(wanted)
}

/// Whether the value of [`ENV_VAR`] forces the portable path: `portable` does; `auto`, no
/// variable and anything else do not.
fn forces_portable(value: Option<&str>) -> bool {
    value == Some("portable")
}

#[cfg(not(target_arch = "x86_64"))]
fn detect() -> Features {
    Features::NONE
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_portable_forces_the_portable_path() {
        assert!(forces_portable(Some("portable")));
        for value in [None, Some("auto"), Some(""), Some("Portable"), Some("avx2")] {
            assert!(!forces_portable(value), "{value:?}");
        }
    }

    #[test]
    fn enabled_features_are_the_detected_ones_unless_forced_off() {
        let expect = if portable_forced() { Features::NONE } else { detected() };
        assert_eq!(enabled(), expect);
        assert!(has(Features::NONE));
        for &(f, name) in Features::NAMED {
            assert_eq!(has(f), expect.contains(f), "{name}");
        }
    }

    #[test]
    fn sets_combine_and_name_their_members() {
        let set = Features::AVX2 | Features::POPCNT;
        assert!(set.contains(Features::AVX2) && set.contains(Features::POPCNT) && set.contains(Features::NONE));
        assert!(!set.contains(Features::AVX2 | Features::BMI2));
        assert_eq!(set.names().collect::<Vec<_>>(), ["popcnt", "avx2"]);
        assert_eq!(format!("{set:?}"), r#"{"popcnt", "avx2"}"#);
    }
}
