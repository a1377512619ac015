//! The machine's arithmetic peak (`jghm bench peak`): the rate at which one core, and every core
//! of the pool, retires fused multiply-adds when nothing else limits it. Training throughput is
//! reported as a fraction of this number ([`super::train`]).
//!
//! Each kernel runs [`ACCUMULATORS`] independent accumulator registers in a loop of
//! `acc ← acc · a + b` (so no instruction waits for the one before it: the loop is bound by the
//! FMA ports, not by their latency), on data that never leaves the registers. One FMA is two
//! floating-point operations per lane:
//! ```text
//! f32 FMA, 256-bit (AVX2 + FMA):   8 lanes × 2 = 16 FLOP per instruction
//! f32 FMA, 512-bit (AVX-512F):    16 lanes × 2 = 32 FLOP per instruction
//! BF16 dot, 512-bit (AVX512_BF16): vdpbf16ps adds two bf16 products into each of 16 f32
//!                                  lanes: 16 × 2 × 2 = 64 FLOP per instruction
//! ```
//! A kernel the CPU lacks (checked at run time) is reported as absent, never timed.

use std::time::Instant;

use serde::Serialize;

/// Independent accumulators per kernel: more than the FMA latency (4 cycles) times the FMA
/// ports (2) on current x86 cores.
pub const ACCUMULATORS: usize = 12;

/// One kernel's measured peak, in GFLOP/s.
#[derive(Clone, Debug, Serialize)]
pub struct KernelPeak {
    pub kernel: &'static str,
    /// One thread.
    pub one_thread: f64,
    /// Every thread of the pool, each running the kernel at once.
    pub all_threads: f64,
}

/// The peaks of every kernel the CPU has ([`measure_peaks`]).
#[derive(Clone, Debug, Serialize)]
pub struct Peaks {
    pub threads: usize,
    pub kernels: Vec<KernelPeak>,
}

impl Peaks {
    /// The best f32 FMA rate of the whole pool (the denominator of "fraction of peak").
    pub fn f32_all_threads(&self) -> Option<f64> {
        self.kernels.iter().filter(|k| k.kernel.starts_with("f32")).map(|k| k.all_threads).reduce(f64::max)
    }

    /// The BF16 dot rate of the whole pool (the ceiling of a run with BF16 products).
    pub fn bf16_all_threads(&self) -> Option<f64> {
        self.kernels.iter().filter(|k| k.kernel.starts_with("bf16")).map(|k| k.all_threads).reduce(f64::max)
    }
}

/// A peak kernel: runs `iters` loop turns and returns a sum of its accumulators (so the work
/// cannot be optimised away) and its FLOP per loop turn.
struct Kernel {
    name: &'static str,
    flop_per_turn: f64,
    run: fn(usize) -> f32,
}

/// The kernels this CPU can run.
fn kernels() -> Vec<Kernel> {
    #[allow(unused_mut)]
    let mut found = vec![];
    #[cfg(target_arch = "x86_64")]
    {
        if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
            found.push(Kernel {
                name: "f32 FMA 256-bit (AVX2)",
                flop_per_turn: (ACCUMULATORS * 16) as f64,
                run: x86::f32_256,
            });
        }
        if is_x86_feature_detected!("avx512f") {
            found.push(Kernel {
                name: "f32 FMA 512-bit (AVX-512F)",
                flop_per_turn: (ACCUMULATORS * 32) as f64,
                run: x86::f32_512,
            });
        }
        if is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("avx512bf16") {
            found.push(Kernel {
                name: "bf16 dot 512-bit (AVX512_BF16)",
                flop_per_turn: (ACCUMULATORS * 64) as f64,
                run: x86::bf16_512,
            });
        }
    }
    found
}

/// GFLOP/s of `k` run for `iters` turns on each of `threads` threads at once (rayon pool).
fn rate(k: &Kernel, iters: usize, threads: usize) -> f64 {
    use rayon::prelude::*;
    let t0 = Instant::now();
    let sink: f32 = (0..threads).into_par_iter().map(|_| (k.run)(iters)).sum();
    let secs = t0.elapsed().as_secs_f64();
    std::hint::black_box(sink);
    k.flop_per_turn * iters as f64 * threads as f64 / secs / 1e9
}

/// Measures every available kernel on one thread and on all threads of the current pool; each
/// rate is the best of `reps` runs of `iters` loop turns (the best, since a peak is what the
/// hardware can do and any interruption only lowers a run).
pub fn measure_peaks(iters: usize, reps: usize) -> Peaks {
    let threads = rayon::current_num_threads();
    let best = |k: &Kernel, th| (0..reps.max(1)).map(|_| rate(k, iters, th)).fold(0.0, f64::max);
    let kernels = kernels()
        .iter()
        .map(|k| KernelPeak { kernel: k.name, one_thread: best(k, 1), all_threads: best(k, threads) })
        .collect();
    Peaks { threads, kernels }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::ACCUMULATORS;
    use std::arch::x86_64::*;
    use std::hint::black_box;

    pub fn f32_256(iters: usize) -> f32 {
        // SAFETY: listed by `kernels` only when the CPU has AVX2 and FMA.
        unsafe { f32_256_impl(iters) }
    }
    pub fn f32_512(iters: usize) -> f32 {
        // SAFETY: listed by `kernels` only when the CPU has AVX-512F.
        unsafe { f32_512_impl(iters) }
    }
    pub fn bf16_512(iters: usize) -> f32 {
        // SAFETY: listed by `kernels` only when the CPU has AVX-512F and AVX512_BF16.
        unsafe { bf16_512_impl(iters) }
    }

    #[target_feature(enable = "avx2,fma")]
    fn f32_256_impl(iters: usize) -> f32 {
        let (a, b) = (_mm256_set1_ps(black_box(0.999_999_9)), _mm256_set1_ps(black_box(1e-7)));
        let mut acc = [_mm256_set1_ps(black_box(1.0)); ACCUMULATORS];
        for _ in 0..iters {
            for r in acc.iter_mut() {
                *r = _mm256_fmadd_ps(*r, a, b);
            }
        }
        let s = acc.iter().fold(_mm256_setzero_ps(), |s, &r| _mm256_add_ps(s, r));
        let mut lanes = [0f32; 8];
        // SAFETY: `lanes` holds 8 f32.
        unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), s) };
        lanes.iter().sum()
    }

    #[target_feature(enable = "avx512f")]
    fn f32_512_impl(iters: usize) -> f32 {
        let (a, b) = (_mm512_set1_ps(black_box(0.999_999_9)), _mm512_set1_ps(black_box(1e-7)));
        let mut acc = [_mm512_set1_ps(black_box(1.0)); ACCUMULATORS];
        for _ in 0..iters {
            for r in acc.iter_mut() {
                *r = _mm512_fmadd_ps(*r, a, b);
            }
        }
        _mm512_reduce_add_ps(acc.iter().fold(_mm512_setzero_ps(), |s, &r| _mm512_add_ps(s, r)))
    }

    #[target_feature(enable = "avx512f,avx512bf16")]
    fn bf16_512_impl(iters: usize) -> f32 {
        let small = _mm512_set1_ps(black_box(1e-4));
        let x: __m512bh = _mm512_cvtne2ps_pbh(small, small);
        let mut acc = [_mm512_set1_ps(black_box(1.0)); ACCUMULATORS];
        for _ in 0..iters {
            for r in acc.iter_mut() {
                *r = _mm512_dpbf16_ps(*r, x, x);
            }
        }
        _mm512_reduce_add_ps(acc.iter().fold(_mm512_setzero_ps(), |s, &r| _mm512_add_ps(s, r)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kernel_accumulates_what_it_claims() {
        // One turn of f32 FMA on 1.0: 0.9999999 + 1e-7 per lane; the sum over lanes and
        // accumulators says every lane of every register was updated once.
        for k in kernels() {
            let got = (k.run)(1) as f64;
            let lanes = k.flop_per_turn / if k.name.starts_with("bf16") { 4.0 } else { 2.0 };
            let per_lane = if k.name.starts_with("bf16") { 1.0 + 2.0 * 1e-8 } else { 0.999_999_9 + 1e-7 };
            assert!((got - lanes * per_lane).abs() < 1e-3 * lanes, "{}: {got} for {lanes} lanes", k.name);
        }
    }
}
