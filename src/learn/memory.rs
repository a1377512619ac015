//! The memory a training run will take, estimated from its checked sizes before anything large
//! is allocated, so that a configuration (or a checkpoint's embedded one) that would not fit is
//! refused with one line instead of an aborted allocation.
//!
//! # Formula
//! With `P = P_X + P_Y + P_head` parameters of `F` bytes each (4 for f32 classes, 8 for f64),
//! `E = scheme.encoded(B)` samples per side per step and `J = ⌈E / CHUNK⌉` chunks
//! ([`super::Tower`]):
//! ```text
//! parameters   = 4 P F                  params, gradients, AdamW's m and v
//! checkpoint   = 7 P F                  a kept copy, and the tensors' bytes twice while saving
//! activations  = J Σ_towers (cache(CHUNK) + P_tower) F
//!                                       each chunk's forward cache and gradient buffer
//! loss         = G (16 + 2F) + 4 E P_out F
//!                                       G scored pairs (B² in-batch, B·K·2 K-way), embeddings
//! data         = n (8 (T_X + T_Y) + 120) + 8 E (T_X + T_Y)
//!                                       the fixed data set's pairs, a batch's tokens (twice)
//! ```
//! Against the peak resident set (`/usr/bin/time -v`) of `jghm train --steps 20` on the
//! standard model (`jghm model random --states 10 --children 3 --depth 4 --text-depth 3 --seed 1`),
//! estimate / peak: transformer 36.4 / 43.9 MiB, BP 15.3 / 21.7 MiB, MLP 49.6 / 57.9 MiB
//! (the process itself, before any run, is about 6 MiB); a transformer of width 128, 4 blocks,
//! batch 256: 1.30 / 1.34 GiB; the BP class with batch 1024 on 20,000 fixed pairs:
//! 102 / 134 MiB; the paper's encoders (5 blocks, 4 heads, width 128, output 10, batch 128) on
//! the paper's model (`--states 10 --children 3 --depth 4 --flip 0.4`): 1.2 / 1.22 GiB. The
//! estimate is meant to be within a factor of 2 of the peak.

use super::clip_loss::Scheme;
use super::config::CheckedConfig;
use super::encoder::{Encoder, CHUNK};
use super::real::Real;
use super::registry::{with_encoders, WithEncoders};
use crate::model::{Jghm, Part};

/// The estimate's parts, in bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct MemoryEstimate {
    pub parameters: f64,
    pub checkpoint: f64,
    pub activations: f64,
    pub loss: f64,
    pub data: f64,
}

impl MemoryEstimate {
    pub fn total(&self) -> f64 {
        self.parameters + self.checkpoint + self.activations + self.loss + self.data
    }

    /// The configuration field that lowers the largest part most directly.
    pub fn largest_field(&self, cfg: &CheckedConfig) -> &'static str {
        let parts = [
            (self.parameters + self.checkpoint, "parameters"),
            (self.activations, "activations"),
            (self.loss, "loss"),
            (self.data, "data"),
        ];
        let (_, part) = parts.iter().fold((f64::NEG_INFINITY, "parameters"), |a, &b| if b.0 > a.0 { b } else { a });
        match part {
            "parameters" => cfg.class.meta().size_field,
            "data" if cfg.n.is_some() => "n",
            _ => "batch",
        }
    }
}

/// The estimate of a training run of `cfg` on `model` (module doc).
pub fn estimate(cfg: &CheckedConfig, model: &Jghm) -> MemoryEstimate {
    with_encoders(cfg, model, Estimate { cfg, model })
}

struct Estimate<'a> {
    cfg: &'a CheckedConfig,
    model: &'a Jghm,
}

impl WithEncoders for Estimate<'_> {
    type Output = MemoryEstimate;
    fn run<R: Real, E: Encoder<R> + 'static>(self, make: &dyn Fn(Part) -> E) -> MemoryEstimate {
        let (cfg, model) = (self.cfg, self.model);
        let float = std::mem::size_of::<R>() as f64;
        let (image, text) = (make(Part::Image), make(Part::Text));
        let params = (image.num_params() + text.num_params() + cfg.head(model).num_params()) as f64;
        let b = cfg.batch as f64;
        let encoded = cfg.scheme.encoded(cfg.batch) as f64;
        let chunks = (encoded / CHUNK as f64).ceil();
        let tower = |e: &E| chunks * (e.cache_len(CHUNK) + e.num_params()) as f64 * float;
        let pairs = match cfg.scheme {
            Scheme::InBatch => b * b,
            Scheme::KWay { k, .. } => 2.0 * b * k as f64,
        };
        let tokens = (model.len_of(Part::Image) + model.len_of(Part::Text)) as f64;
        let data = cfg.n.map_or(0.0, |n| n as f64 * (8.0 * tokens + 120.0)) + 8.0 * encoded * tokens;
        MemoryEstimate {
            parameters: 4.0 * params * float,
            checkpoint: 7.0 * params * float,
            activations: tower(&image) + tower(&text),
            loss: pairs * (16.0 + 2.0 * float) + 4.0 * encoded * image.out_dim() as f64 * float,
            data,
        }
    }
}

/// The memory of *evaluating* a checkpoint of `cfg` on `model` (`jghm eval`, the `ckpt:PATH`
/// scores), with `threads` workers encoding in parallel:
/// ```text
/// parameters   = 6 P F                  the checkpoint's bytes (parameters, AdamW's m and v), the same decoded
/// activations  = W Σ_towers cache(CHUNK) F
///                                       one forward cache per tower and worker (W workers)
/// ```
/// No gradients, optimiser update, loss over a training batch or data set: the training
/// estimate's other parts do not apply. The embeddings and score grid of the evaluation's own
/// draws scale with its sample sizes, not with the checkpoint, and are not counted.
pub fn evaluation_estimate(cfg: &CheckedConfig, model: &Jghm, threads: usize) -> MemoryEstimate {
    with_encoders(cfg, model, EvaluationEstimate { cfg, model, threads })
}

struct EvaluationEstimate<'a> {
    cfg: &'a CheckedConfig,
    model: &'a Jghm,
    threads: usize,
}

impl WithEncoders for EvaluationEstimate<'_> {
    type Output = MemoryEstimate;
    fn run<R: Real, E: Encoder<R> + 'static>(self, make: &dyn Fn(Part) -> E) -> MemoryEstimate {
        let float = std::mem::size_of::<R>() as f64;
        let (image, text) = (make(Part::Image), make(Part::Text));
        let params = (image.num_params() + text.num_params() + self.cfg.head(self.model).num_params()) as f64;
        let caches = (image.cache_len(CHUNK) + text.cache_len(CHUNK)) as f64;
        MemoryEstimate {
            parameters: 6.0 * params * float,
            activations: self.threads as f64 * caches * float,
            ..MemoryEstimate::default()
        }
    }
}

/// The machine's memory (`MemTotal` of `/proc/meminfo`), `None` where it cannot be read.
pub fn machine_bytes() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb.saturating_mul(1024))
}

/// `bytes` with a binary unit, for messages.
pub fn human(bytes: f64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    let mut x = bytes;
    let mut i = 0;
    while x >= 1024.0 && i + 1 < units.len() {
        x /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{x:.0} B")
    } else {
        format!("{x:.1} {}", units[i])
    }
}
