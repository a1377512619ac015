//! Where a training step's time goes (`jghm bench train --kernels`): each kernel of a
//! transformer block timed alone on one chunk of [`CHUNK`] samples, on one thread, at the
//! shapes of a configuration, with its arithmetic rate.
//!
//! A step runs, per tower, `⌈B / CHUNK⌉` chunks through `L` blocks, forward and backward, on
//! the pool's threads. So a kernel's share of a step is estimated as
//! ```text
//! ms per step ≈ (time of one call) · (calls per chunk) · (chunks of both towers) / threads
//! ```
//! and the rest of the measured step (the loss, the optimiser, the embedding and pooling,
//! the reduction of the chunks' gradients, idle threads) is what the kernels do not explain.
//! The FLOP of a kernel count its multiply-adds as 2 (as [`super::train`] does); the
//! element-wise kernels report none.

use std::time::Instant;

use serde::Serialize;

use crate::learn::attention::{attention_backward, attention_forward, AttnShape};
use crate::learn::gelu::{gelu_backward, gelu_forward};
use crate::learn::layernorm::{layernorm_backward, layernorm_forward};
use crate::learn::linear::{linear_backward_with, linear_forward_with};
use crate::learn::{Products, TransformerShape, CHUNK};

/// One kernel's timing (module doc).
#[derive(Clone, Debug, Serialize)]
pub struct KernelTiming {
    pub kernel: String,
    /// Milliseconds of one call on one chunk, the best of the repeats.
    pub ms_per_call: f64,
    /// FLOP of one call (0 for element-wise kernels).
    pub flop_per_call: f64,
    pub gflop_per_second: f64,
    /// Calls per step (all chunks of one tower, all blocks).
    pub calls_per_step: usize,
    /// `ms_per_call · calls_per_step / threads` (module doc).
    pub ms_per_step: f64,
}

/// Times `f` (the best of `reps` runs after one untimed run), in milliseconds.
fn best_ms(reps: usize, mut f: impl FnMut()) -> f64 {
    f();
    (0..reps.max(1))
        .map(|_| {
            let t0 = Instant::now();
            f();
            t0.elapsed().as_secs_f64() * 1e3
        })
        .fold(f64::INFINITY, f64::min)
}

fn filled(len: usize, seed: u32) -> Vec<f32> {
    // A fixed pseudo-random fill in [-1, 1): the data do not change the cost.
    (0..len)
        .map(|i| ((i as u32).wrapping_mul(2_654_435_761).wrapping_add(seed) >> 8) as f32 / (1u32 << 23) as f32 - 1.0)
        .collect()
}

/// The kernels of one block of a tower of shape `s`, timed as the module doc says, for a
/// step that encodes `batch` samples per tower on `threads` threads.
pub fn bench_kernels(
    s: &TransformerShape,
    products: Products,
    batch: usize,
    threads: usize,
    reps: usize,
) -> Vec<KernelTiming> {
    let (t, c) = (s.len, s.width);
    let n = CHUNK * t;
    let calls = batch.div_ceil(CHUNK) * s.layers;
    let mut rows = vec![];
    let mut add = |kernel: String, flop: f64, per_chunk: usize, ms: f64| {
        rows.push(KernelTiming {
            kernel,
            ms_per_call: ms,
            flop_per_call: flop,
            gflop_per_second: flop / (ms * 1e6),
            calls_per_step: calls * per_chunk,
            ms_per_step: ms * (calls * per_chunk) as f64 / threads.max(1) as f64,
        });
    };
    // The four affine maps of a block: (name, inputs, outputs).
    for (name, ci, co) in [("qkv", c, 3 * c), ("attention output", c, c), ("MLP up", c, 4 * c), ("MLP down", 4 * c, c)]
    {
        let (inp, w, b) = (filled(n * ci, 1), filled(ci * co, 2), filled(co, 3));
        let mut out = vec![0f32; n * co];
        let flop = 2.0 * (n * ci * co) as f64;
        let ms = best_ms(reps, || linear_forward_with(products, &mut out, &inp, &w, Some(&b), n, ci, co, 0.0));
        add(format!("linear {name} forward ({n}x{ci} · {ci}x{co})"), flop, 1, ms);
        let (mut dinp, mut dw, mut db) = (vec![0f32; n * ci], vec![0f32; ci * co], vec![0f32; co]);
        let dout = filled(n * co, 4);
        let ms = best_ms(reps, || {
            linear_backward_with(products, Some(&mut dinp), &mut dw, Some(&mut db), &dout, &inp, &w, n, ci, co)
        });
        add(format!("linear {name} backward"), 2.0 * flop, 1, ms);
    }
    let shape = AttnShape { b: CHUNK, t, c, nh: s.heads, products };
    let qkv = filled(n * 3 * c, 5);
    let (mut out, mut att) = (vec![0f32; n * c], vec![0f32; CHUNK * s.heads * t * t]);
    let flop = 4.0 * (CHUNK * t * t * c) as f64;
    let ms = best_ms(reps, || attention_forward(&mut out, &mut att, &qkv, shape));
    add(format!("attention forward ({} heads, {t}x{t})", s.heads), flop, 1, ms);
    let (mut dqkv, mut datt, dout) = (vec![0f32; n * 3 * c], vec![0f32; t * t], filled(n * c, 6));
    let ms = best_ms(reps, || attention_backward(&mut dqkv, &mut datt, &dout, &qkv, &att, shape));
    add("attention backward".to_string(), 2.0 * flop, 1, ms);
    let (x, w, b) = (filled(n * c, 7), filled(c, 8), filled(c, 9));
    let (mut y, mut mean, mut rstd) = (vec![0f32; n * c], vec![0f32; n], vec![0f32; n]);
    let ms = best_ms(reps, || layernorm_forward(&mut y, &mut mean, &mut rstd, &x, &w, &b, c));
    add("layernorm forward (x2 per block)".to_string(), 0.0, 2, ms);
    let (mut dx, mut dw, mut db) = (vec![0f32; n * c], vec![0f32; c], vec![0f32; c]);
    let ms = best_ms(reps, || layernorm_backward(&mut dx, &mut dw, &mut db, &y, &x, &w, &mean, &rstd, c));
    add("layernorm backward (x2 per block)".to_string(), 0.0, 2, ms);
    let h = filled(n * 4 * c, 10);
    let mut g = vec![0f32; n * 4 * c];
    let ms = best_ms(reps, || gelu_forward(&mut g, &h));
    add("gelu forward".to_string(), 0.0, 1, ms);
    let dg = filled(n * 4 * c, 11);
    let ms = best_ms(reps, || gelu_backward(&mut g, &h, &dg));
    add("gelu backward".to_string(), 0.0, 1, ms);
    rows
}
