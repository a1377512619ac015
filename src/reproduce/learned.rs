//! The learned models of the paper's simulations (the book, Reproducing the paper): a CLIP pair of transformer
//! encoders of one of three classes, a conditional denoiser on the frozen text features `g(y)`
//! and a next-token model on the frozen image features `f(x)`, all trained within a wall-time
//! budget. The risks of [`super::risks`] measure them through [`crate::score::Score`],
//! [`Denoiser`] and [`NextToken`].
//!
//! # Classes ([`LearnedClass`])
//! * `standard`: the paper's encoders, pre-LN transformers of 5 blocks, 4 heads, width 128,
//!   mean-pooled and projected to `R^10`, bilinear score `⟨f(x), g(y)⟩/τ` (τ learned).
//! * `shallow`: the same with 1 block.
//! * `guided`: `standard` plus the BP-message penalty of [`crate::learn::guided`] (block `ℓ`'s
//!   hidden states read out linearly onto the exact upward messages of the height-`ℓ` nodes,
//!   mean squared error, weight [`Plan::lambda`]).
//!
//! # Training ([`Plan`])
//! CLIP: batch 128, AdamW (weight decay 1e-3), cosine learning rate 3e-4 → 3e-7 over the
//! part's horizon, gradient clipping at norm 1.0 of the gradient of `L = ½(ℓ_X→Y + ℓ_Y→X)`
//! (switchable, [`Protocol::clip_max_norm`]: the paper clips its summed loss at 1.0, which is
//! 0.5 here), one warm-up step (see below). The peak
//! rate is switchable ([`Protocol::clip_lr`], the cosine always ending at a thousandth of it):
//! the paper's figure runs train the standard and shallow classes at 3e-4 → 3e-7 and the guided
//! class at 1e-3 → 1e-6 ([`ClipLr::Paper`]).
//! Negatives ([`Protocol::negatives`]) are by default the paper's `K = 4`: each positive pair
//! with `K − 1 = 3` **independent** negatives per direction ([`Scheme::KWay`], `4B` samples
//! encoded per side per step, the `B` positives shared by the two directions). `paper` is the
//! paper's layout exactly: each direction has its own `B` positives (`5B` samples per side,
//! twice the positive pairs per step). `in-batch` negatives (`K = B = 128`, `B` samples per
//! side) are the other choice: both have the PMI as their exact minimiser (T2, for every `K`), and the
//! in-batch scheme buys 4× as many steps from a wall-time budget. The risk is measured at
//! `K = 4` either way ([`super::risks`]).
//!
//! Heads ([`Protocol::heads`]): by default 2 blocks, 4 heads, width 64 each, batch 64, cosine
//! 1e-3 → 1e-5 ([`HeadSizes::Small`]); or the paper's sizes ([`HeadSizes::Paper`]): 9 blocks of
//! width 128 for the denoiser and 256 for the next-token model, batch 128, cosine 1e-3 → 1e-6
//! (4 heads where the paper's attention has one). Both: AdamW (weight decay 1e-3), clipping
//! 1.0, fresh pairs every step (the denoiser's noise σ = 1 drawn afresh). The paper's sizes cost
//! ~10× more per step, which a budget of minutes cannot repay; with the paper's step counts
//! (3,000 CLIP steps, 30,000 per head: [`PAPER_STEPS`]) a run is fixed by steps, not seconds.
//!
//! # Budget
//! [`Budget::seconds`] is split 50 / 25 / 25 between CLIP, the denoiser and the next-token
//! model (the encoders dominate the cost per step and everything downstream rests on them).
//! Each part's first step runs at the peak learning rate whatever the horizon (one warm-up
//! step), and its duration `t₁` fixes the horizon `S = max(1, ⌊share / t₁⌋)`, so the cosine
//! schedule runs to its end; the part also stops when its share is used up (then fewer steps
//! are done than planned, and [`LearnedModels::describe`] says so). `quick` halves the batches
//! (64 and 32).
//!
//! # Reproducibility
//! Given the step counts ([`Steps`]), every parameter is a function of the seed only, whatever
//! the thread count ([`train_learned_steps`]; the CLIP loop of [`crate::learn::train`], and the
//! heads' chunked runner [`crate::learn::frozen_heads::HeadRunner`]). The step counts themselves come
//! from the wall clock and are recorded.
//!
//! # Checkpoints
//! A training fixed by steps may keep checkpoints ([`Checkpoints`]): the CLIP pair every
//! [`CLIP_CHECKPOINT_EVERY`] steps, each head every [`HEAD_CHECKPOINT_EVERY`]. Each holds the
//! parameters, the optimiser's moments and the losses so far, and every batch is a function of
//! the seed and the step, so a training cut at any step and continued from its checkpoint ends
//! with the parameters of the uncut one (the paper's budget takes hours; a job may be cut by
//! its time limit).

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use rand::Rng as _;
use serde::{Deserialize, Serialize};

use super::{Denoiser, NextToken};
use crate::downstream::noise::DENOISING;
use crate::eval::LearnedScore;
use crate::files::write_atomic;
use crate::learn::adamw::{AdamW, Schedule};
use crate::learn::checkpoint::{sha256_hex, Checkpoint};
use crate::learn::data::Data;
use crate::learn::frozen_heads::{ConditionalHead, DenoiserHead, HeadRunner, HeadShape, NextTokenHead};
use crate::learn::guided::GuidedTransformer;
use crate::learn::joint_heads::{JointDenoiser, JointNextToken};
use crate::learn::train::{train, Run, SaveError};
use crate::learn::{
    BlockForm, Class, ClipPair, Params, Pooling, PositionInit, Products, Scheme, TrainConfig, Transformer,
    EMBEDDING_STD,
};
use crate::model::{Jghm, Part};
use crate::rng;
use crate::sample::sample_pairs;
use crate::score::Score;

/// The encoder class of a learned model (the book, Reproducing the paper).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LearnedClass {
    /// 5 blocks, 4 heads, width 128, output 10.
    Standard,
    /// 1 block.
    Shallow,
    /// Standard plus the BP-message penalty on the hidden states.
    Guided,
    /// No CLIP: the denoiser and the next-token model each trained end to end on both
    /// modalities' tokens ([`crate::learn::joint_heads`], the paper's Joint Training).
    Joint,
}

impl LearnedClass {
    /// The encoder class of [`crate::learn::registry`] this recipe trains: each of the
    /// paper's CLIP classes is a size and penalty of the transformer class, not an encoder
    /// of its own (the guided class wraps the transformer's encoder with the BP-message
    /// penalty, which needs the model and a weight and so is built here, not by the registry);
    /// the joint class's two models are transformers too.
    pub fn encoder_class(&self) -> Class {
        Class::Transformer
    }

    pub fn name(&self) -> &'static str {
        match self {
            LearnedClass::Standard => "standard",
            LearnedClass::Shallow => "shallow",
            LearnedClass::Guided => "guided",
            LearnedClass::Joint => "joint",
        }
    }
}

/// The wall time allowed for one learned model (all three trainings).
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Budget {
    pub seconds: f64,
    /// Halve the batches (a reduced run).
    pub quick: bool,
}

/// The CLIP loss's negatives in `reproduce` (module doc).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Negatives {
    /// Each positive with `k − 1` independent negatives per direction (the paper's: `k = 4`);
    /// `split`: each direction has its own positives, as in the paper's batches (written only
    /// when set, so settings recorded before it existed read back unchanged).
    Independent {
        k: usize,
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        split: bool,
    },
    /// The other pairs of the batch.
    InBatch,
}

impl Negatives {
    /// The paper's `K = 4` independent draws, the positives shared by the two directions.
    pub const PAPER: Negatives = Negatives::Independent { k: 4, split: false };
    /// The paper's batch layout exactly: `K = 4`, separate positives per direction.
    pub const PAPER_LAYOUT: Negatives = Negatives::Independent { k: 4, split: true };

    pub fn scheme(&self) -> Scheme {
        match *self {
            Negatives::Independent { k, split } => Scheme::KWay { k, split },
            Negatives::InBatch => Scheme::InBatch,
        }
    }
}

impl std::fmt::Display for Negatives {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {
            Negatives::Independent { k, split: false } => write!(f, "{k}"),
            Negatives::PAPER_LAYOUT => write!(f, "paper"),
            Negatives::Independent { k, split: true } => write!(f, "{k}-split"),
            Negatives::InBatch => write!(f, "in-batch"),
        }
    }
}

impl std::str::FromStr for Negatives {
    type Err = String;
    /// `in-batch`; the group size `K` (2 to 1024) of independent negatives, `K-split` for
    /// separate positives per direction; or `paper` (`4-split`).
    fn from_str(s: &str) -> Result<Self, String> {
        let (k, split) = match s {
            "in-batch" => return Ok(Negatives::InBatch),
            "paper" => return Ok(Negatives::PAPER_LAYOUT),
            _ => s.strip_suffix("-split").map_or((s, false), |k| (k, true)),
        };
        match k.parse::<usize>() {
            Ok(k) if (2..=1024).contains(&k) => Ok(Negatives::Independent { k, split }),
            _ => Err(format!(
                "negatives are 'in-batch', 'paper', or a group size K from 2 to 1024 (K-split: separate positives per direction), got '{s}'"
            )),
        }
    }
}

/// The heads' sizes (module doc).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum HeadSizes {
    /// 2 blocks of width 64, batch 64.
    Small,
    /// The paper's: 9 blocks of width 128 (denoiser) and 256 (next-token), batch 128.
    Paper,
}

/// The paper's choices `reproduce` can switch (module doc).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Protocol {
    pub negatives: Negatives,
    pub heads: HeadSizes,
    /// How the encoders' and heads' blocks multiply ([`crate::learn::bf16`]).
    pub products: Products,
    /// Peak learning rate of the CLIP encoders; the cosine ends at a thousandth of it (module
    /// doc). Runs recorded before the field existed used [`CLIP_LR`].
    #[serde(default = "default_clip_lr")]
    pub clip_lr: ClipLr,
    /// How the CLIP encoders are built (runs recorded before the field existed: [`EncoderForm::Ours`]).
    /// Written only when it is the paper's, so that the settings of runs with ours stay as
    /// they were and runs recorded before the field existed resume.
    #[serde(default, skip_serializing_if = "EncoderForm::is_ours")]
    pub encoder: EncoderForm,
    /// The CLIP encoders' gradient clipping: the largest norm of the gradient of our loss
    /// `L = ½(ℓ_X→Y + ℓ_Y→X)` (τ's included) that a step uses. The paper clips at 1.0 the
    /// gradient of its loss, the sum `ℓ_X→Y + ℓ_Y→X`, twice ours, so its clipping is ours at
    /// [`PAPER_CLIP_MAX_NORM`] (AdamW is blind to a constant factor in the gradient). Written only
    /// when it is not [`CLIP_MAX_NORM`], the value of runs recorded before the field existed.
    #[serde(default = "default_clip_max_norm", skip_serializing_if = "is_default_clip_max_norm")]
    pub clip_max_norm: f64,
}

/// Our gradient clipping of the CLIP encoders (and the heads'): norm 1.0 of the gradient of `L`.
pub const CLIP_MAX_NORM: f64 = 1.0;
/// The paper's clipping of the CLIP encoders in our loss's scale ([`Protocol::clip_max_norm`]).
pub const PAPER_CLIP_MAX_NORM: f64 = 0.5;

fn default_clip_max_norm() -> f64 {
    CLIP_MAX_NORM
}

fn is_default_clip_max_norm(norm: &f64) -> bool {
    *norm == CLIP_MAX_NORM
}

/// How the CLIP encoders of the standard, shallow and guided classes are built (module doc).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum EncoderForm {
    /// GPT-2's block ([`BlockForm::Gpt2`]), 4 attention heads of width 32, the last layer
    /// mean-pooled, embeddings started from `N(0, 0.02²)`.
    #[default]
    Ours,
    /// The paper's `EncoderTransformer`: its block ([`BlockForm::Paper`]: no `qkv` biases, no
    /// attention output projection, no final LayerNorm), one attention head of width 128, the
    /// positions pooled by learned weights, embeddings started from `N(0, 1)` (PyTorch's).
    Paper,
}

impl EncoderForm {
    fn is_ours(&self) -> bool {
        *self == EncoderForm::Ours
    }

    /// Attention heads, pool, embedding scale and block of the encoders.
    fn build(self) -> (usize, Pooling, f64, BlockForm) {
        match self {
            EncoderForm::Ours => (4, Pooling::Mean, EMBEDDING_STD, BlockForm::Gpt2),
            EncoderForm::Paper => (1, Pooling::Learned, 1.0, BlockForm::Paper),
        }
    }
}

/// The CLIP encoders' peak learning rate of our specification (3e-4, cosine to 3e-7). The
/// paper's figure runs train the standard and shallow classes with it.
pub const CLIP_LR: f64 = 3e-4;
/// The peak learning rate the paper's figure runs train the guided class with (1e-3, cosine to
/// 1e-6).
pub const PAPER_GUIDED_CLIP_LR: f64 = 1e-3;

fn default_clip_lr() -> ClipLr {
    ClipLr::Rate(CLIP_LR)
}

/// The CLIP encoders' peak learning rate; the cosine ends at a thousandth of it. Written in the
/// settings as a number or as `"paper"`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ClipLr {
    /// One peak rate for every class.
    Rate(f64),
    /// The paper's figure runs (its `exp_clip_{standard,shallow,guided}TF.sh`): [`CLIP_LR`]
    /// for the standard and shallow classes, [`PAPER_GUIDED_CLIP_LR`] for the guided class.
    Paper(PaperRates),
}

/// The name of [`ClipLr::Paper`] in the settings and on the command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PaperRates {
    Paper,
}

impl ClipLr {
    /// The paper's rates, per class.
    pub const PAPER: ClipLr = ClipLr::Paper(PaperRates::Paper);

    /// The peak rate `class` trains its encoders with.
    pub fn for_class(&self, class: LearnedClass) -> f64 {
        match (*self, class) {
            (ClipLr::Rate(lr), _) => lr,
            (ClipLr::Paper(_), LearnedClass::Guided) => PAPER_GUIDED_CLIP_LR,
            (ClipLr::Paper(_), _) => CLIP_LR,
        }
    }
}

impl std::fmt::Display for ClipLr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClipLr::Rate(lr) => write!(f, "{lr:e}"),
            ClipLr::Paper(_) => write!(f, "the paper's ({CLIP_LR:e}; guided {PAPER_GUIDED_CLIP_LR:e})"),
        }
    }
}

impl std::str::FromStr for ClipLr {
    type Err = String;
    /// `paper`, or a rate in `(0, 1]`.
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "paper" => Ok(ClipLr::PAPER),
            _ => match s.parse::<f64>() {
                Ok(lr) if lr.is_finite() && lr > 0.0 && lr <= 1.0 => Ok(ClipLr::Rate(lr)),
                _ => Err(format!("the CLIP learning rate is 'paper' or a rate in (0, 1], got '{s}'")),
            },
        }
    }
}

impl Default for Protocol {
    /// The paper's negatives, small heads, exact products, our learning rate.
    fn default() -> Self {
        Protocol {
            negatives: Negatives::PAPER,
            heads: HeadSizes::Small,
            products: Products::Exact,
            clip_lr: ClipLr::Rate(CLIP_LR),
            encoder: EncoderForm::Ours,
            clip_max_norm: CLIP_MAX_NORM,
        }
    }
}

/// The paper's step counts: 3,000 CLIP steps, 30,000 for each head.
pub const PAPER_STEPS: Steps = Steps { clip: 3000, denoiser: 30_000, next_token: 30_000 };

/// Every size and rate of a learned model (module doc).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Plan {
    pub class: LearnedClass,
    pub encoder: HeadShape,
    /// Output dimension `P` of the encoders.
    pub out: usize,
    pub clip_batch: usize,
    pub clip_lr: (f64, f64),
    /// The CLIP loss's batch scheme.
    pub scheme: Scheme,
    /// Weight `λ` of the guided class's penalty.
    pub lambda: f64,
    /// The denoiser's body.
    pub denoiser_head: HeadShape,
    /// The next-token model's body.
    pub next_token_head: HeadShape,
    pub head_batch: usize,
    pub head_lr: (f64, f64),
    pub weight_decay: f64,
    /// Gradient clipping of the CLIP encoders ([`Protocol::clip_max_norm`]) and of the heads.
    pub clip_norm: f64,
    pub head_clip_norm: f64,
    /// How every block multiplies.
    pub products: Products,
    /// How the CLIP encoders are built.
    pub encoder_form: EncoderForm,
}

impl Plan {
    /// The module doc's plan for `class` under `protocol`.
    pub fn new(class: LearnedClass, quick: bool, protocol: &Protocol) -> Plan {
        let layers = if class == LearnedClass::Shallow { 1 } else { 5 };
        let (denoiser_head, next_token_head, head_batch, head_lr) = match protocol.heads {
            HeadSizes::Small => {
                let small = HeadShape { width: 64, layers: 2, heads: 4 };
                (small, small, 64, (1e-3, 1e-5))
            }
            HeadSizes::Paper => (
                HeadShape { width: 128, layers: 9, heads: 4 },
                HeadShape { width: 256, layers: 9, heads: 4 },
                128,
                (1e-3, 1e-6),
            ),
        };
        Plan {
            class,
            encoder: HeadShape { width: 128, layers, heads: protocol.encoder.build().0 },
            out: 10,
            clip_batch: if quick { 64 } else { 128 },
            clip_lr: {
                let lr = protocol.clip_lr.for_class(class);
                (lr, lr / 1000.0)
            },
            scheme: protocol.negatives.scheme(),
            lambda: 1.0,
            denoiser_head,
            next_token_head,
            head_batch: if quick { head_batch / 2 } else { head_batch },
            head_lr,
            weight_decay: 1e-3,
            clip_norm: protocol.clip_max_norm,
            head_clip_norm: CLIP_MAX_NORM,
            products: protocol.products,
            encoder_form: protocol.encoder,
        }
    }

    fn schedule(&self, lr: (f64, f64), clip: f64, steps: usize) -> Schedule {
        Schedule {
            lr: lr.0,
            lr_min: lr.1,
            // One warm-up step: lr(0) = lr_max whatever the horizon, so the first step can
            // time the part before its horizon is fixed.
            warmup: 1,
            steps,
            weight_decay: self.weight_decay,
            clip,
        }
    }

    fn clip_config(&self, steps: usize) -> TrainConfig {
        let mut cfg = TrainConfig::for_class(self.class.encoder_class());
        cfg.width = self.encoder.width;
        cfg.layers = self.encoder.layers;
        cfg.heads = self.encoder.heads;
        (_, cfg.pooling, cfg.embedding_std, cfg.block) = self.encoder_form.build();
        cfg.out = self.out;
        // The paper's head: unnormalised embeddings (pinned; `train`'s default may differ).
        (cfg.normalise, cfg.position_init) = (false, PositionInit::Normal);
        cfg.batch = self.clip_batch;
        cfg.scheme = self.scheme;
        cfg.products = self.products;
        cfg.schedule = self.schedule(self.clip_lr, self.clip_norm, steps);
        cfg.checkpoint_every = usize::MAX;
        cfg
    }
}

/// Steps per part.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Steps {
    pub clip: usize,
    pub denoiser: usize,
    pub next_token: usize,
}

/// What a training did, for reports.
#[derive(Clone, Debug, Serialize)]
pub struct TrainingReport {
    pub class: LearnedClass,
    /// The step counts planned (from the timed steps) and done.
    pub planned: Steps,
    pub done: Steps,
    /// The step each part continued from a saved checkpoint at (0 for a part trained in one
    /// sitting): its seconds count only the steps after it.
    pub resumed: Steps,
    /// Wall seconds of each part, in this sitting.
    pub seconds: [f64; 3],
    pub budget: Option<Budget>,
    /// Training losses averaged over each part's last 10% of steps: the CLIP loss (mean of the
    /// two directions, in-batch), the denoiser's summed squared error, the next-token model's
    /// cross-entropy summed over the text positions.
    pub final_losses: [f64; 3],
    pub plan: Plan,
}

/// A trained CLIP pair with its two heads.
pub struct LearnedModels {
    /// `None` for the joint class, which has no CLIP pair.
    score: Option<Arc<LearnedScore<f32, Transformer>>>,
    denoiser: Box<dyn Denoiser>,
    next_token: Box<dyn NextToken>,
    pub report: TrainingReport,
}

impl LearnedModels {
    /// The CLIP score `S(x, y) = ⟨f(x), g(y)⟩/τ` (`None` for the joint class).
    pub fn score(&self) -> Option<&dyn Score> {
        self.score.as_deref().map(|s| s as &dyn Score)
    }
    pub fn denoiser(&self) -> &dyn Denoiser {
        self.denoiser.as_ref()
    }
    pub fn next_token(&self) -> &dyn NextToken {
        self.next_token.as_ref()
    }
    /// Class, encoder form and sizes, negatives, the CLIP peak learning rate, steps per part,
    /// seconds, budget: the note of every row the model gives.
    pub fn describe(&self) -> String {
        let r = &self.report;
        let part = |name: &str, done: usize, planned: usize, resumed: usize, secs: f64| {
            let cut = if done < planned {
                format!(" (of {planned} planned; stopped by the time budget)")
            } else {
                String::new()
            };
            // A continued part was timed only since its checkpoint: say so, not "N steps in s".
            if resumed > 0 {
                format!("{name} {done} steps{cut}, continued from its checkpoint at step {resumed}: the last {} in {secs:.1} s", done - resumed)
            } else {
                format!("{name} {done} steps{cut} in {secs:.1} s")
            }
        };
        let budget = r.budget.map_or("fixed step counts".to_string(), |b| {
            format!("budget {:.0} s{}", b.seconds, if b.quick { ", quick" } else { "" })
        });
        let heads = format!(
            "denoiser ({} blocks, width {}) {}; next-token ({} blocks, width {}) {}",
            r.plan.denoiser_head.layers,
            r.plan.denoiser_head.width,
            part("", r.done.denoiser, r.planned.denoiser, r.resumed.denoiser, r.seconds[1]).trim_start(),
            r.plan.next_token_head.layers,
            r.plan.next_token_head.width,
            part("", r.done.next_token, r.planned.next_token, r.resumed.next_token, r.seconds[2]).trim_start(),
        );
        if r.class == LearnedClass::Joint {
            return format!("joint models on both modalities' tokens (no CLIP): {heads}; {budget}");
        }
        let form = match (r.plan.encoder_form, r.plan.encoder.heads) {
            (EncoderForm::Ours, _) => String::new(),
            (EncoderForm::Paper, 1) => "the paper's encoder with 1 attention head, learned pool, ".to_string(),
            (EncoderForm::Paper, h) => format!("the paper's encoder with {h} attention heads, learned pool, "),
        };
        let clipping = if r.plan.clip_norm == CLIP_MAX_NORM {
            String::new()
        } else {
            format!(", gradient clip {}", r.plan.clip_norm)
        };
        format!(
            "{} encoders ({form}{} blocks, width {}, out {}, negatives {}, lr {:e} cosine{clipping}): {}; {heads}; {budget}",
            r.class.name(),
            r.plan.encoder.layers,
            r.plan.encoder.width,
            r.plan.out,
            r.plan.scheme.describe(),
            r.plan.clip_lr.0,
            part("CLIP", r.done.clip, r.planned.clip, r.resumed.clip, r.seconds[0]),
        )
    }
}

/// The denoiser of a learned model: the frozen text tower, then [`DenoiserHead`].
pub struct LearnedDenoiser {
    clip: Arc<LearnedScore<f32, Transformer>>,
    head: DenoiserHead,
    params: Vec<f32>,
    name: String,
}

impl Denoiser for LearnedDenoiser {
    fn name(&self) -> String {
        self.name.clone()
    }
    /// NaN for a text that does not fit the text tower (no pass on tokens it has no weights for).
    fn denoise(&self, noisy: &[f64], y: &[usize]) -> Vec<f64> {
        if self.clip.check(false, y).is_err() {
            return vec![f64::NAN; noisy.len()];
        }
        self.denoise_batch(&[noisy.to_vec()], &[y]).remove(0)
    }
    /// Every image in one batched pass: the texts encoded together, the head run in chunks in
    /// parallel (each row's numbers do not depend on the others, so they are those of
    /// [`Denoiser::denoise`]); NaN rows for texts that do not fit.
    fn denoise_batch(&self, noisy: &[Vec<f64>], texts: &[&[usize]]) -> Vec<Vec<f64>> {
        let fits = |y: &[usize]| self.clip.check(false, y).is_ok();
        denoise_fitting(&self.head, &self.params, noisy, texts, fits, |ys| self.clip.encode(false, ys))
    }
}

/// The next-token model of a learned model: the frozen image tower, then [`NextTokenHead`].
pub struct LearnedNextToken {
    clip: Arc<LearnedScore<f32, Transformer>>,
    head: NextTokenHead,
    params: Vec<f32>,
    name: String,
}

impl NextToken for LearnedNextToken {
    fn name(&self) -> String {
        self.name.clone()
    }
    /// NaN for an image that does not fit the image tower or a text token out of the vocabulary.
    fn next_token_log_probs(&self, x: &[usize], y: &[usize]) -> Vec<f64> {
        if self.clip.check(true, x).is_err() || y.iter().any(|&t| t >= self.head.vocab) {
            return vec![f64::NAN; y.len() * self.head.vocab];
        }
        let f = self.clip.encode(true, &[x.to_vec()]);
        let inp: Vec<f32> = y.iter().map(|&v| v as f32).collect();
        let mut cache = ConditionalHead::<f32>::new_cache(&self.head, 1);
        self.head.forward(&self.params, &inp, &f, 1, &mut cache);
        self.head.outputs(&cache, 1)[..y.len() * self.head.vocab].iter().map(|&v| v as f64).collect()
    }
}

/// A denoising head run on every image whose noisy values fill the head and whose text `fits`,
/// in one batched pass ([`HeadRunner::outputs`]: chunks in parallel, each row's numbers those
/// of a batch of one); `condition` turns the fitting texts into the head's conditions. The
/// other rows are NaN.
fn denoise_fitting<H: ConditionalHead<f32>>(
    head: &H,
    params: &[f32],
    noisy: &[Vec<f64>],
    texts: &[&[usize]],
    fits: impl Fn(&[usize]) -> bool,
    condition: impl FnOnce(&[Vec<usize>]) -> Vec<f32>,
) -> Vec<Vec<f64>> {
    let t = head.seq_len();
    let good: Vec<usize> = (0..noisy.len()).filter(|&i| noisy[i].len() == t && fits(texts[i])).collect();
    let mut out: Vec<Vec<f64>> = noisy.iter().map(|x| vec![f64::NAN; x.len()]).collect();
    if good.is_empty() {
        return out;
    }
    let ys: Vec<Vec<usize>> = good.iter().map(|&i| texts[i].to_vec()).collect();
    let inp: Vec<f32> = good.iter().flat_map(|&i| noisy[i].iter().map(|&v| v as f32)).collect();
    let rows = HeadRunner::default().outputs(head, params, &inp, &condition(&ys));
    for (&i, row) in good.iter().zip(rows.chunks(t)) {
        out[i] = row.iter().map(|&v| v as f64).collect();
    }
    out
}

/// The joint denoiser of a learned model: the text's tokens are its condition.
pub struct JointLearnedDenoiser {
    head: JointDenoiser,
    params: Vec<f32>,
    text_vocab: usize,
}

impl JointLearnedDenoiser {
    /// Whether `y` fits the model (length and alphabet).
    fn fits(&self, y: &[usize]) -> bool {
        y.len() == self.head.cond_len && y.iter().all(|&t| t < self.text_vocab)
    }
}

impl Denoiser for JointLearnedDenoiser {
    fn name(&self) -> String {
        LearnedClass::Joint.name().to_string()
    }
    /// NaN for a text that does not fit the model.
    fn denoise(&self, noisy: &[f64], y: &[usize]) -> Vec<f64> {
        self.denoise_batch(&[noisy.to_vec()], &[y]).remove(0)
    }
    /// Every image in one batched pass (chunks in parallel, the same numbers as one by one).
    fn denoise_batch(&self, noisy: &[Vec<f64>], texts: &[&[usize]]) -> Vec<Vec<f64>> {
        let as_reals = |ys: &[Vec<usize>]| ys.iter().flatten().map(|&v| v as f32).collect();
        denoise_fitting(&self.head, &self.params, noisy, texts, |y| self.fits(y), as_reals)
    }
}

/// The joint next-token model of a learned model: the image's tokens are its condition.
pub struct JointLearnedNextToken {
    head: JointNextToken,
    params: Vec<f32>,
}

impl NextToken for JointLearnedNextToken {
    fn name(&self) -> String {
        LearnedClass::Joint.name().to_string()
    }
    /// NaN for an image or text that does not fit the model.
    fn next_token_log_probs(&self, x: &[usize], y: &[usize]) -> Vec<f64> {
        let h = &self.head;
        let fits = x.len() == h.cond_len && x.iter().all(|&t| t < h.cond_vocab) && y.len() == h.len;
        if !fits || y.iter().any(|&t| t >= h.vocab) {
            return vec![f64::NAN; y.len() * h.vocab];
        }
        let inp: Vec<f32> = y.iter().map(|&v| v as f32).collect();
        let cond: Vec<f32> = x.iter().map(|&v| v as f32).collect();
        let mut cache = ConditionalHead::<f32>::new_cache(h, 1);
        h.forward(&self.params, &inp, &cond, 1, &mut cache);
        h.outputs(&cache, 1).iter().map(|&v| v as f64).collect()
    }
}

/// How long a part trains.
#[derive(Clone, Copy, Debug)]
enum Horizon {
    /// Exactly this many steps.
    Steps(usize),
    /// Within this many seconds: the first step is timed, the horizon set to
    /// `S = max(1, ⌊seconds / t_first⌋)` steps, and the part also stops when the time is used.
    Seconds(f64),
}

impl Horizon {
    /// The step horizon after a first step that took `first` seconds.
    fn steps_after_first(&self, first: f64) -> usize {
        match *self {
            Horizon::Steps(n) => n,
            Horizon::Seconds(secs) => ((secs / first.max(1e-9)) as usize).max(1),
        }
    }
    fn max_seconds(&self) -> Option<f64> {
        match *self {
            Horizon::Steps(_) => None,
            Horizon::Seconds(secs) => Some(secs),
        }
    }
}

/// Trains the three parts of `class` within `budget`: shares of 50%, 25%, 25% of the seconds
/// (module doc), each part's horizon fixed from its timed first step.
pub fn train_learned(
    model: &Jghm,
    class: LearnedClass,
    budget: &Budget,
    protocol: &Protocol,
    seed: u64,
) -> Result<LearnedModels, String> {
    if !(budget.seconds.is_finite() && budget.seconds > 0.0) {
        return Err(format!("the training budget must be a positive number of seconds (got {})", budget.seconds));
    }
    let plan = Plan::new(class, budget.quick, protocol);
    let secs = budget.seconds;
    // The joint class has no CLIP part: its two models share the budget.
    let horizons = match class {
        LearnedClass::Joint => [Horizon::Steps(0), Horizon::Seconds(0.5 * secs), Horizon::Seconds(0.5 * secs)],
        _ => [Horizon::Seconds(0.5 * secs), Horizon::Seconds(0.25 * secs), Horizon::Seconds(0.25 * secs)],
    };
    let mut models = train_parts(model, &plan, horizons, seed, None)?;
    models.report.budget = Some(*budget);
    Ok(models)
}

/// Trains the three parts for exactly `steps`. Reproducible from `seed`: [`train_learned`]
/// with the same plan gives the same models whenever it plans the same steps.
///
/// With `checkpoints`, each part saves its checkpoint there periodically ([`Checkpoints`]) and
/// continues from it when it is there, with the same parameters as an uninterrupted run.
pub fn train_learned_steps(
    model: &Jghm,
    plan: &Plan,
    steps: Steps,
    seed: u64,
    checkpoints: Option<&Checkpoints>,
) -> Result<LearnedModels, String> {
    let horizons = [Horizon::Steps(steps.clip), Horizon::Steps(steps.denoiser), Horizon::Steps(steps.next_token)];
    train_parts(model, plan, horizons, seed, checkpoints)
}

fn check_model(model: &Jghm) -> Result<(), String> {
    if model.has_trunk() {
        return Err("the learned models of `reproduce` are for two-tower models (this one has a shared trunk)".into());
    }
    Ok(())
}

/// The three trainings in order: CLIP, then the heads on its frozen features.
fn train_parts(
    model: &Jghm,
    plan: &Plan,
    horizons: [Horizon; 3],
    seed: u64,
    checkpoints: Option<&Checkpoints>,
) -> Result<LearnedModels, String> {
    check_model(model)?;
    if plan.class == LearnedClass::Joint {
        return train_joint(model, plan, [horizons[1], horizons[2]], seed, checkpoints);
    }
    let shared = Arc::new(model.clone());
    let t0 = Instant::now();
    let clip = train_clip(model, &shared, plan, horizons[0], seed, checkpoints)?;
    let score = Arc::new(clip.0);
    let t1 = Instant::now();
    let mut dn_head = DenoiserHead::new(model.image_len(), model.image_vocab(), plan.out, plan.denoiser_head);
    dn_head.body = dn_head.body.with_products(plan.products);
    let mut nt_head = NextTokenHead::new(model.text_len(), model.text_vocab(), plan.out, plan.next_token_head);
    nt_head.body = nt_head.body.with_products(plan.products);
    let features = Condition::Features(&score);
    let heads = [horizons[1], horizons[2]];
    let (dn, nt) = train_heads(model, features, &dn_head, &nt_head, plan, heads, seed, checkpoints)?;
    let name = plan.class.name().to_string();
    Ok(LearnedModels {
        denoiser: Box::new(LearnedDenoiser {
            clip: score.clone(),
            head: dn_head,
            params: dn.params,
            name: name.clone(),
        }),
        next_token: Box::new(LearnedNextToken { clip: score.clone(), head: nt_head, params: nt.params, name }),
        score: Some(score),
        report: TrainingReport {
            class: plan.class,
            planned: Steps { clip: clip.1.planned, denoiser: dn.planned, next_token: nt.planned },
            done: Steps { clip: clip.1.done, denoiser: dn.done, next_token: nt.done },
            resumed: Steps { clip: clip.1.resumed_at, denoiser: dn.resumed_at, next_token: nt.resumed_at },
            seconds: [(t1 - t0).as_secs_f64(), dn.seconds, nt.seconds],
            budget: None,
            final_losses: [clip.1.final_loss, dn.final_loss, nt.final_loss],
            plan: plan.clone(),
        },
    })
}

/// The joint class: its two models trained end to end from the raw tokens (no CLIP part).
fn train_joint(
    model: &Jghm,
    plan: &Plan,
    horizons: [Horizon; 2],
    seed: u64,
    checkpoints: Option<&Checkpoints>,
) -> Result<LearnedModels, String> {
    let (nx, ny, vx, vy) = (model.image_len(), model.text_len(), model.image_vocab(), model.text_vocab());
    let mut dn_head = JointDenoiser::new(nx, vx, ny, vy, plan.denoiser_head);
    dn_head.body = dn_head.body.with_products(plan.products);
    let mut nt_head = JointNextToken::new(ny, vy, nx, vx, plan.next_token_head);
    nt_head.body = nt_head.body.with_products(plan.products);
    let (dn, nt) = train_heads(model, Condition::Tokens, &dn_head, &nt_head, plan, horizons, seed, checkpoints)?;
    let none = Steps { clip: 0, denoiser: dn.done, next_token: nt.done };
    Ok(LearnedModels {
        score: None,
        denoiser: Box::new(JointLearnedDenoiser { head: dn_head, params: dn.params, text_vocab: vy }),
        next_token: Box::new(JointLearnedNextToken { head: nt_head, params: nt.params }),
        report: TrainingReport {
            class: plan.class,
            planned: Steps { clip: 0, denoiser: dn.planned, next_token: nt.planned },
            done: none,
            resumed: Steps { clip: 0, denoiser: dn.resumed_at, next_token: nt.resumed_at },
            seconds: [0.0, dn.seconds, nt.seconds],
            budget: None,
            final_losses: [f64::NAN, dn.final_loss, nt.final_loss],
            plan: plan.clone(),
        },
    })
}

/// The denoiser, then the next-token model, each trained on `condition` for its horizon.
#[allow(clippy::too_many_arguments)]
fn train_heads<D: ConditionalHead<f32>, N: ConditionalHead<f32>>(
    model: &Jghm,
    condition: Condition,
    denoiser: &D,
    next_token: &N,
    plan: &Plan,
    horizons: [Horizon; 2],
    seed: u64,
    checkpoints: Option<&Checkpoints>,
) -> Result<(HeadDone, HeadDone), String> {
    let (dn_seed, nt_seed) = (rng::Purpose::DenoiserHead.seed(seed), rng::Purpose::NextTokenHead.seed(seed));
    let dn = train_head(model, condition, denoiser, Task::Denoise, plan, horizons[0], dn_seed, checkpoints)?;
    let nt = train_head(model, condition, next_token, Task::NextToken, plan, horizons[1], nt_seed, checkpoints)?;
    Ok((dn, nt))
}

/// What a head is conditioned on.
#[derive(Clone, Copy)]
enum Condition<'a> {
    /// The frozen CLIP features of the other modality.
    Features(&'a LearnedScore<f32, Transformer>),
    /// The other modality's tokens themselves (the joint class).
    Tokens,
}

/// What one part's training did.
struct PartDone {
    planned: usize,
    done: usize,
    /// The step it continued from a checkpoint at (0: trained from the start in this sitting).
    resumed_at: usize,
    final_loss: f64,
}

/// Trains one CLIP pair with [`train`]: the first step alone (its learning rate does not
/// depend on the horizon), then, the horizon fixed, the rest from that checkpoint.
fn run_clip<E: crate::learn::Encoder<f32>>(
    pair: &mut ClipPair<f32, E>,
    model: &Jghm,
    plan: &Plan,
    horizon: Horizon,
    seed: u64,
    saved: Option<&Checkpoints>,
) -> Result<(Params<f32>, PartDone), String> {
    if let (Horizon::Steps(steps), Some(saved)) = (horizon, saved) {
        return run_clip_saved(pair, model, plan, steps, seed, saved);
    }
    let err = |e: crate::learn::train::TrainError| format!("CLIP training of the {} class: {e}", plan.class.name());
    let mut data = Data::Fresh { model, seed };
    let mut losses = vec![];
    let checked = |cfg: TrainConfig| cfg.check(model).map_err(|e| format!("the {} class: {e}", plan.class.name()));
    let t0 = Instant::now();
    let ck = clip_first_step(pair, model, plan, seed, &mut losses)?;
    let steps = horizon.steps_after_first(t0.elapsed().as_secs_f64());
    let cfg = checked(plan.clip_config(steps))?;
    let rest = Run {
        config: &cfg,
        seed,
        model_sha256: String::new(),
        steps,
        max_seconds: horizon.max_seconds().map(|m| m - t0.elapsed().as_secs_f64()),
    };
    let ck = train(pair, &mut data, &rest, Some(ck), &mut |r| losses.push(r.loss), &mut |_| Ok(())).map_err(err)?;
    let done = PartDone { planned: steps, done: ck.step, resumed_at: 0, final_loss: tail_mean(&losses) };
    Ok((ck.params, done))
}

/// The first CLIP step alone, at the peak learning rate whatever the horizon (one warm-up
/// step), so that it can be timed before the horizon is fixed.
fn clip_first_step<E: crate::learn::Encoder<f32>>(
    pair: &mut ClipPair<f32, E>,
    model: &Jghm,
    plan: &Plan,
    seed: u64,
    losses: &mut Vec<f64>,
) -> Result<Checkpoint<f32>, String> {
    let cfg = plan.clip_config(1).check(model).map_err(|e| format!("the {} class: {e}", plan.class.name()))?;
    let first = Run { config: &cfg, seed, model_sha256: String::new(), steps: 1, max_seconds: None };
    let mut data = Data::Fresh { model, seed };
    train(pair, &mut data, &first, None, &mut |r| losses.push(r.loss), &mut |_| Ok(()))
        .map_err(|e| format!("CLIP training of the {} class: {e}", plan.class.name()))
}

/// CLIP steps between the checkpoints of a run fixed by steps (a few minutes at the paper's
/// sizes on two cores).
pub const CLIP_CHECKPOINT_EVERY: usize = 50;

/// Head steps between the checkpoints of a run fixed by steps (a few minutes at the paper's
/// sizes on two cores).
pub const HEAD_CHECKPOINT_EVERY: usize = 200;

/// Where a training fixed by steps keeps its checkpoints ([`train_learned_steps`]): the CLIP
/// pair's at `<stem>-clip.safetensors` (its losses beside it, `<stem>-clip.losses.json`), the
/// heads' at `<stem>-denoiser.safetensors` and `<stem>-next-token.safetensors`. A part whose
/// checkpoint is there continues from it; one of another training (configuration, steps, seed,
/// model, or for a head the frozen CLIP pair) is refused.
#[derive(Clone, Debug)]
pub struct Checkpoints {
    pub stem: std::path::PathBuf,
    /// Stop at this instant with the current part's checkpoint saved (a job with a time limit),
    /// to be continued from it later; no parameter depends on where the run is cut.
    pub deadline: Option<Instant>,
}

impl Checkpoints {
    fn path(&self, part: &str) -> std::path::PathBuf {
        let mut name = self.stem.clone().into_os_string();
        name.push(format!("-{part}.safetensors"));
        name.into()
    }
    /// Seconds left before the deadline (at least one step is always done).
    fn seconds_left(&self) -> Option<f64> {
        self.deadline.map(|d| d.saturating_duration_since(Instant::now()).as_secs_f64())
    }
    fn past_deadline(&self) -> bool {
        self.deadline.is_some_and(|d| Instant::now() >= d)
    }
}

/// The error of a part cut at its deadline.
fn cut(part: &str, step: usize, steps: usize, path: &Path) -> String {
    format!(
        "{part} stopped at step {step} of {steps} at the time asked for; its checkpoint {} continues it (--resume)",
        path.display()
    )
}

/// [`run_clip`] for exactly `steps` steps, saving a checkpoint to `path` every
/// [`CLIP_CHECKPOINT_EVERY`] steps (and the training losses so far beside it, `path` with the
/// extension `losses.json`), and continuing from that checkpoint when it is there. The batches
/// are a function of the seed and the step ([`Data::Fresh`]) and the checkpoint holds the
/// parameters and the optimiser's moments, so an interrupted and continued run gives the same
/// parameters as an uninterrupted one. A checkpoint of another configuration, seed or model is
/// refused.
fn run_clip_saved<E: crate::learn::Encoder<f32>>(
    pair: &mut ClipPair<f32, E>,
    model: &Jghm,
    plan: &Plan,
    steps: usize,
    seed: u64,
    saved: &Checkpoints,
) -> Result<(Params<f32>, PartDone), String> {
    let (path, class) = (saved.path("clip"), plan.class.name());
    let path = path.as_path();
    let mut cfg = plan.clip_config(steps);
    cfg.checkpoint_every = CLIP_CHECKPOINT_EVERY;
    let cfg = cfg.check(model).map_err(|e| format!("the {class} class: {e}"))?;
    let hash = sha256_hex(model.to_json().as_bytes());
    let losses_path = path.with_extension("losses.json");
    let (start, losses, resumed_at) = match read_clip_checkpoint(path, &losses_path)? {
        Some((ck, losses)) => {
            if ck.config != *cfg || ck.seed != seed || ck.model_sha256 != hash {
                return Err(format!(
                    "{}: a CLIP checkpoint of another training (configuration, seed or model); remove it to start afresh",
                    path.display()
                ));
            }
            let at = ck.step;
            (ck, losses, at)
        }
        None => {
            let mut losses = vec![];
            let mut ck = clip_first_step(pair, model, plan, seed, &mut losses)?;
            (ck.config, ck.model_sha256) = ((*cfg).clone(), hash.clone());
            (ck, losses, 0)
        }
    };
    let losses = std::cell::RefCell::new(losses);
    let max_seconds = saved.seconds_left();
    let rest = Run { config: &cfg, seed, model_sha256: hash, steps, max_seconds };
    let mut save = |ck: &Checkpoint<f32>| -> Result<(), SaveError> {
        // The losses first: a checkpoint is never newer than the losses beside it.
        let json = serde_json::to_vec(&*losses.borrow()).expect("finite losses serialise");
        write_atomic(&losses_path, &json)?;
        write_atomic(path, &ck.to_bytes())?;
        Ok(())
    };
    let mut data = Data::Fresh { model, seed };
    let ck = train(pair, &mut data, &rest, Some(start), &mut |r| losses.borrow_mut().push(r.loss), &mut save)
        .map_err(|e| format!("CLIP training of the {class} class: {e}"))?;
    if ck.step < steps {
        return Err(cut(&format!("the CLIP training of the {class} class"), ck.step, steps, path));
    }
    let losses = losses.into_inner();
    Ok((ck.params, PartDone { planned: steps, done: ck.step, resumed_at, final_loss: tail_mean(&losses) }))
}

/// A CLIP checkpoint and the training losses of its steps.
type SavedClip = (Checkpoint<f32>, Vec<f64>);

/// The checkpoint at `path` and the losses of its steps, if there is one.
fn read_clip_checkpoint(path: &Path, losses_path: &Path) -> Result<Option<SavedClip>, String> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("{}: {e}", path.display())),
    };
    let ck = Checkpoint::<f32>::from_bytes(&bytes).map_err(|e| format!("{}: {e}", path.display()))?;
    let text = std::fs::read(losses_path).map_err(|e| format!("{}: {e}", losses_path.display()))?;
    let mut losses: Vec<f64> = serde_json::from_slice(&text).map_err(|e| format!("{}: {e}", losses_path.display()))?;
    if losses.len() < ck.step {
        return Err(format!("{}: {} losses for a checkpoint at step {}", losses_path.display(), losses.len(), ck.step));
    }
    losses.truncate(ck.step);
    Ok(Some((ck, losses)))
}

/// Trains the CLIP pair of the plan's class; returns the score of the trained towers.
fn train_clip(
    model: &Jghm,
    shared: &Arc<Jghm>,
    plan: &Plan,
    horizon: Horizon,
    seed: u64,
    saved: Option<&Checkpoints>,
) -> Result<(LearnedScore<f32, Transformer>, PartDone), String> {
    let cfg = plan.clip_config(1).check(model).map_err(|e| format!("the {} class: {e}", plan.class.name()))?;
    let (head, scheme) = (cfg.head(model), cfg.scheme);
    let (ti, tt) = (cfg.transformer(model, Part::Image), cfg.transformer(model, Part::Text));
    let (params, done) = if plan.class == LearnedClass::Guided {
        // weight = λ / samples encoded per step, so the penalty is λ × its mean over the step
        let weight = plan.lambda / scheme.encoded(plan.clip_batch) as f64;
        let gi = GuidedTransformer::new(ti.clone(), shared.clone(), Part::Image, weight).map_err(|e| e.to_string())?;
        let gt = GuidedTransformer::new(tt.clone(), shared.clone(), Part::Text, weight).map_err(|e| e.to_string())?;
        let mut pair: ClipPair<f32, GuidedTransformer> = ClipPair::new(gi.clone(), gt.clone(), head, scheme);
        let (p, done) = run_clip(&mut pair, model, plan, horizon, seed, saved)?;
        let params =
            Params { image: gi.inner_params(&p.image).to_vec(), text: gt.inner_params(&p.text).to_vec(), head: p.head };
        (params, done)
    } else {
        let mut pair: ClipPair<f32, Transformer> = ClipPair::new(ti.clone(), tt.clone(), head, scheme);
        run_clip(&mut pair, model, plan, horizon, seed, saved)?
    };
    Ok((LearnedScore::new(ti, tt, params, head), done))
}

/// Which head is trained.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Task {
    Denoise,
    NextToken,
}

impl Task {
    fn name(self) -> &'static str {
        match self {
            Task::Denoise => "denoiser",
            Task::NextToken => "next-token",
        }
    }
}

/// The mean of the last 10% of a run's losses (at least the last one).
fn tail_mean(losses: &[f64]) -> f64 {
    let tail = &losses[losses.len() - losses.len().div_ceil(10)..];
    tail.iter().sum::<f64>() / tail.len() as f64
}

/// One batch of a head: inputs, conditions (frozen features), targets, as `f32` rows.
fn head_batch(
    model: &Jghm,
    condition: Condition,
    task: Task,
    b: usize,
    seed: u64,
    step: usize,
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let as_reals = |rows: &[Vec<usize>]| rows.iter().flatten().map(|&v| v as f32).collect::<Vec<f32>>();
    let mut rng = rng::stream(seed, 1 + step as u64);
    let pairs = sample_pairs(model, b, rng.random::<u64>(), false);
    match task {
        Task::Denoise => {
            // x̃_i = v_i + σ ε_i on the image; the condition is g(y)
            let ys: Vec<Vec<usize>> = pairs.iter().map(|p| p.text.clone()).collect();
            let cond = match condition {
                Condition::Features(score) => score.encode(false, &ys),
                Condition::Tokens => as_reals(&ys),
            };
            let target: Vec<f32> = pairs.iter().flat_map(|p| p.image.iter().map(|&v| v as f32)).collect();
            let inp: Vec<f32> = target.iter().map(|&v| DENOISING.observe(v as f64, &mut rng) as f32).collect();
            (inp, cond, target)
        }
        Task::NextToken => {
            let xs: Vec<Vec<usize>> = pairs.iter().map(|p| p.image.clone()).collect();
            let cond = match condition {
                Condition::Features(score) => score.encode(true, &xs),
                Condition::Tokens => as_reals(&xs),
            };
            let target: Vec<f32> = pairs.iter().flat_map(|p| p.text.iter().map(|&v| v as f32)).collect();
            (target.clone(), cond, target)
        }
    }
}

/// Trains a head on the frozen features (fresh pairs every step); the first step times the
/// part when the horizon is in seconds.
#[allow(clippy::too_many_arguments)]
fn train_head<H: ConditionalHead<f32>>(
    model: &Jghm,
    condition: Condition,
    head: &H,
    task: Task,
    plan: &Plan,
    horizon: Horizon,
    seed: u64,
    checkpoints: Option<&Checkpoints>,
) -> Result<HeadDone, String> {
    let saved = match (horizon, checkpoints) {
        (Horizon::Steps(steps), Some(c)) => {
            Some((c, c.path(task.name()), head_training_key(model, condition, task, plan, steps, seed)))
        }
        _ => None,
    };
    let mut state = match &saved {
        Some((_, path, key)) => HeadState::read(path, key)?,
        None => None,
    }
    .unwrap_or_else(|| {
        let params = Params { image: head.init(&mut rng::stream(seed, 0)), text: vec![], head: vec![] };
        HeadState { opt: AdamW::new(&params), params, losses: vec![] }
    });
    let resumed_at = state.losses.len();
    let mut grads = state.params.zeros_like();
    let mut runner = HeadRunner::default();
    let t0 = Instant::now();
    // A fresh training fixes its horizon after the first step (see `Horizon`); a continued one
    // has it already.
    let mut steps = match (horizon, state.losses.is_empty()) {
        (Horizon::Steps(n), false) => n,
        _ => 1,
    };
    let mut schedule = plan.schedule(plan.head_lr, plan.head_clip_norm, steps);
    while state.losses.len() < steps {
        let s = state.losses.len();
        let (inp, cond, target) = head_batch(model, condition, task, plan.head_batch, seed, s);
        let loss = runner.loss_and_grad(head, &state.params.image, &inp, &cond, &target, &mut grads.image);
        if !loss.is_finite() {
            return Err(format!("head training diverged at step {s} (loss {loss})"));
        }
        state.opt.step(&schedule, s, &mut state.params, &mut grads);
        state.losses.push(loss);
        let elapsed = t0.elapsed().as_secs_f64();
        if s == 0 {
            steps = horizon.steps_after_first(elapsed);
            schedule = plan.schedule(plan.head_lr, plan.head_clip_norm, steps);
        }
        if let Some((c, path, key)) = &saved {
            let done = state.losses.len();
            if done.is_multiple_of(HEAD_CHECKPOINT_EVERY) || done == steps || c.past_deadline() {
                write_atomic(path, &state.to_bytes(key)).map_err(|e| e.to_string())?;
            }
            if done < steps && c.past_deadline() {
                return Err(cut(
                    &format!("the {} head of the {} class", task.name(), plan.class.name()),
                    done,
                    steps,
                    path,
                ));
            }
        }
        if horizon.max_seconds().is_some_and(|m| elapsed >= m) {
            break;
        }
    }
    let seconds = t0.elapsed().as_secs_f64();
    let (planned, done) = (steps, state.losses.len());
    Ok(HeadDone {
        planned,
        done,
        resumed_at,
        final_loss: tail_mean(&state.losses),
        params: state.params.image,
        seconds,
    })
}

/// What identifies a head's training, for its checkpoint: the task, the plan, the steps, the
/// seed, the data model and what the head is conditioned on (the frozen CLIP pair's
/// parameters, or the raw tokens).
fn head_training_key(model: &Jghm, condition: Condition, task: Task, plan: &Plan, steps: usize, seed: u64) -> String {
    let condition = match condition {
        Condition::Features(score) => {
            let p = score.params();
            let bytes: Vec<u8> = p.blocks().iter().flat_map(|b| b.iter().flat_map(|v| v.to_le_bytes())).collect();
            format!("CLIP pair {}", sha256_hex(&bytes))
        }
        Condition::Tokens => "tokens".to_string(),
    };
    serde_json::json!({
        "task": task.name(),
        "plan": plan,
        "steps": steps,
        "seed": seed,
        "model_sha256": sha256_hex(model.to_json().as_bytes()),
        "condition": condition,
    })
    .to_string()
}

/// A head's training after `losses.len()` steps: enough to continue it exactly.
struct HeadState {
    params: Params<f32>,
    opt: AdamW<f32>,
    losses: Vec<f64>,
}

/// The format tag of a head checkpoint.
const HEAD_FORMAT: &str = "jghm-head-checkpoint-v1";

impl HeadState {
    /// Safetensors: the parameters and the optimiser's moments (F32), the losses (F64); the
    /// format, the training's key and the optimiser's step count as metadata.
    fn to_bytes(&self, key: &str) -> Vec<u8> {
        use safetensors::tensor::{Dtype, TensorView};
        let raw: Vec<(&str, Dtype, Vec<u8>)> = vec![
            ("param", Dtype::F32, self.params.image.iter().flat_map(|v| v.to_le_bytes()).collect()),
            ("adam_m", Dtype::F32, self.opt.m.image.iter().flat_map(|v| v.to_le_bytes()).collect()),
            ("adam_v", Dtype::F32, self.opt.v.image.iter().flat_map(|v| v.to_le_bytes()).collect()),
            ("losses", Dtype::F64, self.losses.iter().flat_map(|v| v.to_le_bytes()).collect()),
        ];
        let views: Vec<(String, TensorView)> = raw
            .iter()
            .map(|(name, dtype, b)| {
                let len = b.len() / dtype.size();
                (name.to_string(), TensorView::new(*dtype, vec![len], b).expect("length matches the dtype"))
            })
            .collect();
        let meta: std::collections::HashMap<String, String> = [
            ("format".to_string(), HEAD_FORMAT.to_string()),
            ("training".to_string(), key.to_string()),
            ("adam_t".to_string(), self.opt.t.to_string()),
        ]
        .into();
        let bytes = safetensors::serialize(views, &Some(meta)).expect("in-memory serialisation");
        crate::arrays::canonical_header(bytes)
    }

    /// The state saved at `path`, if there is one; refuses a checkpoint of another training.
    fn read(path: &Path, key: &str) -> Result<Option<HeadState>, String> {
        use safetensors::tensor::{Dtype, SafeTensors};
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(format!("{}: {e}", path.display())),
        };
        let bad = |what: &str| format!("{}: not a head checkpoint of this build ({what})", path.display());
        let (_, meta) = SafeTensors::read_metadata(&bytes).map_err(|e| bad(&e.to_string()))?;
        let meta = meta.metadata().clone().unwrap_or_default();
        if meta.get("format").map(String::as_str) != Some(HEAD_FORMAT) {
            return Err(bad("format"));
        }
        if meta.get("training").map(String::as_str) != Some(key) {
            return Err(format!(
                "{}: a head checkpoint of another training (configuration, steps, seed, model or CLIP pair); remove it to start afresh",
                path.display()
            ));
        }
        let t: usize = meta.get("adam_t").and_then(|v| v.parse().ok()).ok_or_else(|| bad("adam_t"))?;
        let st = SafeTensors::deserialize(&bytes).map_err(|e| bad(&e.to_string()))?;
        let f32s = |name: &str| -> Result<Vec<f32>, String> {
            let v = st.tensor(name).map_err(|_| bad(name))?;
            if v.dtype() != Dtype::F32 {
                return Err(bad(name));
            }
            Ok(v.data().chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes"))).collect())
        };
        let losses = st.tensor("losses").map_err(|_| bad("losses"))?;
        if losses.dtype() != Dtype::F64 {
            return Err(bad("losses"));
        }
        let losses: Vec<f64> =
            losses.data().chunks_exact(8).map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes"))).collect();
        let block = |v: Vec<f32>| Params { image: v, text: vec![], head: vec![] };
        let (params, m, v) = (f32s("param")?, f32s("adam_m")?, f32s("adam_v")?);
        if m.len() != params.len() || v.len() != params.len() || t != losses.len() {
            return Err(bad("sizes"));
        }
        Ok(Some(HeadState { params: block(params), opt: AdamW { m: block(m), v: block(v), t }, losses }))
    }
}

/// What a head's training did, with its parameters.
struct HeadDone {
    planned: usize,
    done: usize,
    /// The step it continued from a checkpoint at (0: trained from the start in this sitting).
    resumed_at: usize,
    final_loss: f64,
    params: Vec<f32>,
    /// Wall seconds of the training.
    seconds: f64,
}
