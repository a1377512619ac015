//! Matrix products with BF16 inputs and f32 accumulation (AVX512_BF16), for the transformer's
//! blocks' matrix products (affine maps and attention) when a run asks for [`Products::Bf16`].
//!
//! `bf16(x)` keeps the sign, the 8 exponent bits and the top 7 mantissa bits of an `f32`,
//! rounded to nearest (ties to even): 8 significant bits, so a relative error
//! `|bf16(x) − x| ≤ 2⁻⁸ |x|` (half the spacing `2⁻⁷` of the mantissa). The product
//! ```text
//! C ← α Σ_k bf16(A_ik) bf16(B_kj) + β C        (the sum in f32)
//! ```
//! then differs from the exact one by at most
//! ```text
//! |Ĉ_ij − C_ij| ≤ |α| ((2·2⁻⁸ + 2⁻¹⁶) + k·2⁻²⁴ (1 + 2⁻⁸)) Σ_k |A_ik| |B_kj| + |α| k 2⁻¹²⁶
//!               + 3·2⁻²⁴ (|α| Σ_k |A_ik| |B_kj| + |β C_ij|)
//! ```
//! (two input roundings per term, exact BF16 products, `k` f32 additions, products below
//! `2⁻¹²⁶` flushed to zero by the instruction, then the f32 rounding of the `α`, `β` step;
//! valid for `k < 2¹⁶`). [`error_bound`] states it and the tests check every product against
//! `f64` within it.
//!
//! The kernel: `vdpbf16ps` adds two BF16 products into each of 16 f32 lanes, so the inner
//! dimension is taken in pairs `(2p, 2p+1)`. `B` is packed as `u32` words, word `[p][j]` =
//! `(bf16 B_{2p,j}, bf16 B_{2p+1,j})`; `A` as the same pairs along its rows. A tile of 8 rows
//! × 32 columns keeps 16 accumulators in registers; per pair it loads two `B` vectors and
//! broadcasts each row's pair of `A`. Partial tiles read zero padding. One call runs on the
//! calling thread (the encoders already run their chunks in parallel), so the result does not
//! depend on the thread count.

use serde::{Deserialize, Serialize};

use super::real::Strides;

/// How the transformer's blocks multiply ([`super::Transformer::with_products`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Products {
    /// In the float of the run (f32 for training, f64 for the gradient checks).
    #[default]
    Exact,
    /// BF16 inputs, f32 accumulation (module doc); f32 runs only, on a CPU with AVX512_BF16.
    Bf16,
}

impl Products {
    pub fn name(&self) -> &'static str {
        match self {
            Products::Exact => "exact",
            Products::Bf16 => "bf16",
        }
    }
}

/// Whether this CPU runs the BF16 kernel.
pub fn bf16_available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("avx512bf16")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// `x` rounded to BF16 (nearest, ties to even), as its 16 bits. Finite inputs only (a training
/// step's activations and gradients are checked finite by the loss).
#[inline]
pub fn to_bf16(x: f32) -> u16 {
    let bits = x.to_bits();
    // Wrapping, as the vector path's integer lanes do (only NaN bit patterns can carry out).
    (bits.wrapping_add(0x7FFF + ((bits >> 16) & 1)) >> 16) as u16
}

/// The `f32` a BF16 value stands for.
#[inline]
pub fn from_bf16(h: u16) -> f32 {
    f32::from_bits((h as u32) << 16)
}

/// The bound of the module doc on `|Ĉ_ij − C_ij|` for one entry, given `Σ_k |A_ik||B_kj|` and
/// `|β C_ij|` (before the product).
pub fn error_bound(k: usize, alpha: f32, abs_products: f64, abs_beta_c: f64) -> f64 {
    let u = 2f64.powi(-24);
    let inputs = 2.0 * 2f64.powi(-8) + 2f64.powi(-16);
    let sum = k as f64 * u * (1.0 + 2f64.powi(-8));
    let alpha = alpha.abs() as f64;
    alpha * (inputs + sum) * abs_products
        + alpha * k as f64 * 2f64.powi(-126)
        + 3.0 * u * (alpha * abs_products + abs_beta_c)
}

/// Rows of a tile.
const MR: usize = 8;
/// Columns of a tile (two vectors of 16 lanes).
const NR: usize = 32;

/// Pairs of the inner dimension `k` packed as words `[p][l]` for `l < lpad`, zero past `len`
/// (element `(κ, l)` of the source at `κ·sk + l·sl`).
fn pack_pairs(src: &[f32], k: usize, len: usize, sk: usize, sl: usize, lpad: usize) -> Vec<u32> {
    let kp = k.div_ceil(2);
    let mut out = vec![0u32; kp * lpad];
    for p in 0..kp {
        let row = &mut out[p * lpad..p * lpad + len];
        let (k0, k1) = (2 * p, 2 * p + 1);
        if sl == 1 {
            let lo = &src[k0 * sk..k0 * sk + len];
            let hi = (k1 < k).then(|| &src[k1 * sk..k1 * sk + len]);
            interleave(lo, hi, row);
        } else if sk != 1 {
            for (l, w) in row.iter_mut().enumerate() {
                let hi = if k1 < k { to_bf16(src[k1 * sk + l * sl]) as u32 } else { 0 };
                *w = to_bf16(src[k0 * sk + l * sl]) as u32 | hi << 16;
            }
        }
    }
    if sl != 1 && sk == 1 {
        // Each `l` holds its `k` values contiguously (a transposed operand): convert them as a
        // row, then scatter the pairs.
        let mut words = vec![0u32; kp];
        for l in 0..len {
            convert_row(&src[l * sl..l * sl + k], &mut words);
            for (p, &w) in words.iter().enumerate() {
                out[p * lpad + l] = w;
            }
        }
    }
    out
}

/// `words[l] = (bf16 lo[l], bf16 hi[l])` (`hi` zero when absent): two rows interleaved into pairs.
fn interleave(lo: &[f32], hi: Option<&[f32]>, words: &mut [u32]) {
    // SAFETY: callers reach here only after `gemm_bf16` asserted AVX-512F.
    #[cfg(target_arch = "x86_64")]
    let done = unsafe { x86::interleave(lo, hi, words) };
    #[cfg(not(target_arch = "x86_64"))]
    let done = 0;
    for (l, w) in words.iter_mut().enumerate().skip(done) {
        *w = to_bf16(lo[l]) as u32 | hi.map_or(0, |h| (to_bf16(h[l]) as u32) << 16);
    }
}

/// `words[p] = (bf16 row[2p], bf16 row[2p+1])` (the second zero past an odd end): a row
/// converted in place order.
fn convert_row(row: &[f32], words: &mut [u32]) {
    // SAFETY: callers reach here only after `gemm_bf16` asserted AVX-512F.
    #[cfg(target_arch = "x86_64")]
    let done = unsafe { x86::convert_row(row, words) };
    #[cfg(not(target_arch = "x86_64"))]
    let done = 0;
    for (p, w) in words.iter_mut().enumerate().skip(done) {
        let hi = row.get(2 * p + 1).map_or(0, |&x| to_bf16(x) as u32);
        *w = to_bf16(row[2 * p]) as u32 | hi << 16;
    }
}

/// Rows of `A` (m × k) packed as words `[i][p]` when `A`'s rows are contiguous (a plain
/// conversion of each row), else as `[p][i]`; returns the words and their (row, pair) strides.
fn pack_a(a: &[f32], m: usize, k: usize, s: Strides) -> (Vec<u32>, usize, usize) {
    let mpad = m.div_ceil(MR) * MR;
    let kp = k.div_ceil(2);
    if s.cs == 1 {
        let mut out = vec![0u32; mpad * kp];
        for i in 0..m {
            convert_row(&a[i * s.rs..i * s.rs + k], &mut out[i * kp..(i + 1) * kp]);
        }
        (out, kp, 1)
    } else {
        (pack_pairs(a, k, m, s.cs, s.rs, mpad), 1, mpad)
    }
}

/// `C ← α bf16(A) bf16(B) + β C` (module doc), `C` with unit column stride. Panics when an
/// operand does not fit its slice or the CPU lacks AVX512_BF16 (callers check
/// [`bf16_available`] once, when the run's configuration is checked).
#[allow(clippy::too_many_arguments)]
pub fn gemm_bf16(
    m: usize,
    k: usize,
    n: usize,
    alpha: f32,
    a: &[f32],
    sa: Strides,
    b: &[f32],
    sb: Strides,
    beta: f32,
    c: &mut [f32],
    rsc: usize,
) {
    let fits = |len: usize, rows: usize, cols: usize, s: Strides| {
        rows == 0 || cols == 0 || (rows - 1) * s.rs + (cols - 1) * s.cs < len
    };
    assert!(fits(a.len(), m, k, sa) && fits(b.len(), k, n, sb) && fits(c.len(), m, n, Strides { rs: rsc, cs: 1 }));
    assert!(bf16_available(), "BF16 products need a CPU with AVX512_BF16");
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        // An empty sum: C ← β C.
        for i in 0..m {
            c[i * rsc..i * rsc + n].iter_mut().for_each(|o| *o *= beta);
        }
        return;
    }
    let kp = k.div_ceil(2);
    let npad = n.div_ceil(NR) * NR;
    let bp = pack_pairs(b, k, n, sb.rs, sb.cs, npad);
    let (ap, ars, aps) = pack_a(a, m, k, sa);
    let mut tile = [[0f32; NR]; MR];
    for j0 in (0..n).step_by(NR) {
        for i0 in (0..m).step_by(MR) {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: the CPU has AVX512_BF16 (asserted above); `ap` holds rows i0..i0+MR at
            // (row, pair) strides (ars, aps) for every pair p < kp (padded to MR rows), and `bp`
            // holds columns j0..j0+NR of every pair (padded to NR columns).
            unsafe {
                x86::tile(&ap[i0 * ars..], ars, aps, &bp[j0..], npad, kp, &mut tile)
            };
            let (rows, cols) = ((m - i0).min(MR), (n - j0).min(NR));
            for (r, acc) in tile.iter().enumerate().take(rows) {
                let out = &mut c[(i0 + r) * rsc + j0..(i0 + r) * rsc + j0 + cols];
                if beta == 0.0 {
                    out.iter_mut().zip(acc).for_each(|(o, &v)| *o = alpha * v);
                } else {
                    out.iter_mut().zip(acc).for_each(|(o, &v)| *o = alpha * v + beta * *o);
                }
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{MR, NR};
    use std::arch::x86_64::*;

    /// [`super::to_bf16`] on 16 lanes: `(bits + 0x7FFF + ((bits >> 16) & 1)) >> 16`.
    #[target_feature(enable = "avx512f")]
    fn round16(v: __m512) -> __m512i {
        let bits = _mm512_castps_si512(v);
        let odd = _mm512_and_si512(_mm512_srli_epi32(bits, 16), _mm512_set1_epi32(1));
        let up = _mm512_add_epi32(_mm512_add_epi32(bits, _mm512_set1_epi32(0x7FFF)), odd);
        _mm512_srli_epi32(up, 16)
    }

    /// The whole blocks of 16 of [`super::interleave`]; returns how many words it wrote.
    ///
    /// # Safety
    /// AVX-512F.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn interleave(lo: &[f32], hi: Option<&[f32]>, words: &mut [u32]) -> usize {
        let n = words.len().min(lo.len()) / 16 * 16;
        for l in (0..n).step_by(16) {
            // SAFETY: l + 16 ≤ n ≤ the length of `lo`, `hi` (as long as `lo`) and `words`.
            unsafe {
                let a = round16(_mm512_loadu_ps(lo.as_ptr().add(l)));
                let w = match hi {
                    Some(h) => _mm512_or_si512(a, _mm512_slli_epi32(round16(_mm512_loadu_ps(h.as_ptr().add(l))), 16)),
                    None => a,
                };
                _mm512_storeu_si512(words.as_mut_ptr().add(l).cast(), w);
            }
        }
        n
    }

    /// The whole blocks of 16 words of [`super::convert_row`]; returns how many it wrote.
    ///
    /// # Safety
    /// AVX-512F.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn convert_row(row: &[f32], words: &mut [u32]) -> usize {
        let n = (row.len() / 32).min(words.len() / 16) * 16;
        for p in (0..n).step_by(16) {
            // SAFETY: 2p + 32 ≤ row.len() and p + 16 ≤ words.len().
            unsafe {
                let lo = _mm512_cvtepi32_epi16(round16(_mm512_loadu_ps(row.as_ptr().add(2 * p))));
                let hi = _mm512_cvtepi32_epi16(round16(_mm512_loadu_ps(row.as_ptr().add(2 * p + 16))));
                let out = words.as_mut_ptr().add(p).cast::<__m256i>();
                _mm256_storeu_si256(out, lo);
                _mm256_storeu_si256(out.add(1), hi);
            }
        }
        n
    }

    /// One `MR × NR` tile of `Σ_p A_pair(i, p) · B_pair(p, j)` into `out`.
    ///
    /// # Safety
    /// AVX-512F and AVX512_BF16; `a[r·ars + p·aps]` for `r < MR`, `p < kp` and
    /// `b[p·ldb .. p·ldb + NR]` for `p < kp` in bounds.
    #[target_feature(enable = "avx512f,avx512bf16")]
    pub unsafe fn tile(a: &[u32], ars: usize, aps: usize, b: &[u32], ldb: usize, kp: usize, out: &mut [[f32; NR]; MR]) {
        debug_assert!(kp == 0 || (MR - 1) * ars + (kp - 1) * aps < a.len());
        debug_assert!(kp == 0 || (kp - 1) * ldb + NR <= b.len());
        let mut acc = [[_mm512_setzero_ps(); 2]; MR];
        let (a, b) = (a.as_ptr(), b.as_ptr());
        for p in 0..kp {
            // SAFETY: in bounds by the contract above.
            let (b0, b1) = unsafe {
                let row = b.add(p * ldb);
                (_mm512_loadu_si512(row.cast()), _mm512_loadu_si512(row.add(16).cast()))
            };
            // SAFETY: both are 512 bits of plain data; BF16 pairs reinterpreted as such.
            let (b0, b1) =
                unsafe { (std::mem::transmute::<__m512i, __m512bh>(b0), std::mem::transmute::<__m512i, __m512bh>(b1)) };
            for (r, acc) in acc.iter_mut().enumerate() {
                // SAFETY: in bounds by the contract above.
                let pair = unsafe { *a.add(r * ars + p * aps) };
                // SAFETY: as above.
                let ar = unsafe { std::mem::transmute::<__m512i, __m512bh>(_mm512_set1_epi32(pair as i32)) };
                acc[0] = _mm512_dpbf16_ps(acc[0], ar, b0);
                acc[1] = _mm512_dpbf16_ps(acc[1], ar, b1);
            }
        }
        for (o, acc) in out.iter_mut().zip(acc) {
            // SAFETY: each row of `out` holds NR = 32 f32.
            unsafe {
                _mm512_storeu_ps(o.as_mut_ptr(), acc[0]);
                _mm512_storeu_ps(o.as_mut_ptr().add(16), acc[1]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::learn::real::{rm, tr};
    use rand::Rng as _;

    #[test]
    fn rounding_to_bf16_is_to_nearest_even_within_half_an_ulp() {
        assert_eq!(to_bf16(1.0), 0x3F80);
        // 1 + 2⁻⁸ is halfway between 1 and 1 + 2⁻⁷: ties go to the even mantissa, 1.
        assert_eq!(from_bf16(to_bf16(1.0 + 2f32.powi(-8))), 1.0);
        // 1 + 3·2⁻⁸ is halfway between 1 + 2⁻⁷ and 1 + 2·2⁻⁷: ties go to the even one.
        assert_eq!(from_bf16(to_bf16(1.0 + 3.0 * 2f32.powi(-8))), 1.0 + 2.0 * 2f32.powi(-7));
        let mut rng = crate::rng::stream(3, 0);
        for _ in 0..10_000 {
            let x: f32 = rng.random_range(-1e3..1e3);
            let r = from_bf16(to_bf16(x));
            assert!(((r - x) as f64).abs() <= 2f64.powi(-8) * (x as f64).abs(), "{x} -> {r}");
        }
    }

    fn random(rng: &mut crate::rng::Rng, len: usize) -> Vec<f32> {
        (0..len).map(|_| rng.random_range(-2.0..2.0)).collect()
    }

    #[test]
    fn bf16_products_are_within_their_bound_of_the_exact_ones() {
        if !bf16_available() {
            eprintln!("skipped: this CPU has no AVX512_BF16");
            return;
        }
        let mut rng = crate::rng::stream(4, 0);
        // Odd sizes reach every padding path; each layout the transformer uses appears.
        for &(m, k, n) in &[(1, 1, 1), (7, 3, 5), (9, 33, 31), (81, 32, 81), (130, 257, 65), (16, 128, 384), (10, 0, 3)]
        {
            for (ta, tb) in [(false, false), (false, true), (true, false)] {
                let (a, b) = (random(&mut rng, m * k), random(&mut rng, k * n));
                let sa = if ta { tr(m) } else { rm(k) };
                let sb = if tb { tr(k) } else { rm(n) };
                let c0 = random(&mut rng, m * n);
                for (alpha, beta) in [(1.0f32, 0.0f32), (0.5, 1.0)] {
                    let mut c = c0.clone();
                    gemm_bf16(m, k, n, alpha, &a, sa, &b, sb, beta, &mut c, n);
                    for i in 0..m {
                        for j in 0..n {
                            let (mut exact, mut abs) = (0f64, 0f64);
                            for kk in 0..k {
                                let x = a[i * sa.rs + kk * sa.cs] as f64 * b[kk * sb.rs + j * sb.cs] as f64;
                                exact += x;
                                abs += x.abs();
                            }
                            let before = beta as f64 * c0[i * n + j] as f64;
                            let want = alpha as f64 * exact + before;
                            let bound = error_bound(k, alpha, abs, before.abs());
                            let got = c[i * n + j] as f64;
                            assert!(
                                (got - want).abs() <= bound,
                                "{m}x{k}x{n} ({ta},{tb}) at ({i},{j}): {got} vs {want}, bound {bound}"
                            );
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn bf16_products_of_bf16_numbers_are_exact_sums() {
        // Inputs that are BF16 numbers and products that add exactly in f32: no rounding at all,
        // so any misplaced pair or padding shows as a wrong value.
        if !bf16_available() {
            eprintln!("skipped: this CPU has no AVX512_BF16");
            return;
        }
        let (m, k, n) = (11, 7, 37);
        let a: Vec<f32> = (0..m * k).map(|i| ((i * 7) % 5) as f32 - 2.0).collect();
        let b: Vec<f32> = (0..k * n).map(|i| ((i * 3) % 7) as f32 - 3.0).collect();
        let mut c = vec![0f32; m * n];
        gemm_bf16(m, k, n, 1.0, &a, rm(k), &b, rm(n), 0.0, &mut c, n);
        for i in 0..m {
            for j in 0..n {
                let want: f32 = (0..k).map(|kk| a[i * k + kk] * b[kk * n + j]).sum();
                assert_eq!(c[i * n + j], want, "({i},{j})");
            }
        }
    }
}
