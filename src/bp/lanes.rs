//! Lane kernels shared by the batched BP paths ([`super::fast`] and [`super::marginals`]).
//!
//! A block holds `L` observations side by side: a vector over states `b` is stored as rows
//! `v[b][lane]`, so one instruction advances every lane. Each path picks its own `L` (32 for the
//! upward-only fast path, 8 for the two-pass marginals, whose vectors must stay in cache).
//!
//! The kernels keep values in the probability domain and rescale by exact powers of two:
//! `v ← v 2^{-e}` with `max_b v(b) ∈ [1/2, 1)`, the exponent `e` added to a per-lane sum. A power
//! of two changes no mantissa bit, so the rescaled path is exact up to the usual round-off, and
//! the smallest maximum met is kept so that a lane that left the safe range can be handed to the
//! log-domain reference.

/// Each kernel twice: compiled for the baseline CPU, and with AVX2 (4 lanes per instruction),
/// chosen at run time. Both execute the same IEEE operations in the same order (Rust never
/// fuses a multiply and an add on its own), so their results are identical bit for bit.
///
/// `dispatch!(name, name_avx2, implementation, (arguments))` defines `name`, which calls the
/// `#[inline(always)]` `implementation` compiled one way or the other.
macro_rules! dispatch {
    ($name:ident, $avx2:ident, $imp:path, ($($arg:ident: $ty:ty),*)) => {
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx2")]
        fn $avx2($($arg: $ty),*) {
            $imp($($arg),*)
        }
        fn $name($($arg: $ty),*) {
            #[cfg(target_arch = "x86_64")]
            if std::arch::is_x86_feature_detected!("avx2") {
                // SAFETY: the CPU supports AVX2, checked just above.
                return unsafe { $avx2($($arg),*) };
            }
            $imp($($arg),*)
        }
    };
}

pub(crate) use dispatch;

/// `v ← v 2^{-e}` per lane, with `e` the exponent that makes `max_b v(b) ∈ [1/2, 1)`; adds `e`
/// to `exponent` (if given) and keeps in `smallest` the smallest maximum met.
///
/// A zero or subnormal maximum (biased exponent 0) is clamped to the smallest normal scale; the
/// caller's floor check on `smallest` sends such a lane to the reference, so its scaled values
/// are never used.
#[inline(always)]
pub(crate) fn rescale_impl<const L: usize>(
    v: &mut [[f64; L]],
    exponent: Option<&mut [i64; L]>,
    smallest: &mut [f64; L],
) {
    let mut max = [0.0f64; L];
    for row in v.iter() {
        for l in 0..L {
            max[l] = if row[l] > max[l] { row[l] } else { max[l] };
        }
    }
    let mut scale = [0.0f64; L];
    let mut e = [0i64; L];
    for l in 0..L {
        // max = 1.f × 2^(biased - 1023), so max × 2^(1022 - biased) ∈ [1/2, 1).
        let biased = ((max[l].to_bits() >> 52) as i64).clamp(1, 2046);
        scale[l] = f64::from_bits(((2045 - biased) as u64) << 52);
        e[l] = biased - 1022;
        smallest[l] = if max[l] < smallest[l] { max[l] } else { smallest[l] };
    }
    if let Some(exponent) = exponent {
        exponent.iter_mut().zip(e).for_each(|(acc, e)| *acc += e);
    }
    for row in v.iter_mut() {
        for l in 0..L {
            row[l] *= scale[l];
        }
    }
}

/// `acc ← acc ⊙ x`, lane by lane.
#[inline(always)]
pub(crate) fn mul_impl<const L: usize>(acc: &mut [[f64; L]], x: &[[f64; L]]) {
    for (a, b) in acc.iter_mut().zip(x) {
        for l in 0..L {
            a[l] *= b[l];
        }
    }
}

/// `out ← x ⊙ y`, lane by lane.
#[inline(always)]
pub(crate) fn product_impl<const L: usize>(out: &mut [[f64; L]], x: &[[f64; L]], y: &[[f64; L]]) {
    for ((o, a), b) in out.iter_mut().zip(x).zip(y) {
        for l in 0..L {
            o[l] = a[l] * b[l];
        }
    }
}
