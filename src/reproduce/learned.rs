//! The learned models of the paper's simulations (THEORY §8): a CLIP pair of transformer
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
//! CLIP: batch 128, AdamW (weight decay 1e-3), cosine learning rate 3e-4 → 3e-7 after a
//! warm-up of 5% of the steps, gradient clipping 1.0 (the paper's). Negatives are **in-batch**
//! (`K = B = 128` per direction), not the paper's `K = 4` independent draws: both have the PMI as
//! their exact minimiser (T2, for every `K`), and the in-batch scheme encodes `B` samples per
//! side per step instead of `4B`, so a wall-time budget buys 4× as many steps. The risk is still
//! measured at `K = 4` ([`super::risks`]).
//!
//! Heads (the paper: 9 blocks of width 128 for the denoiser, width 256 for the next-token
//! model, 30,000 steps each): here 2 blocks, 4 heads, width 64 each ([`Plan::head`]), batch 64,
//! AdamW (weight decay 1e-3), cosine 1e-3 → 1e-5, clipping 1.0, fresh samples every step. The
//! paper's sizes cost ~10× more per step, which a laptop budget of minutes cannot repay.
//!
//! # Budget
//! [`Budget::seconds`] is split 50 / 25 / 25 between CLIP, the denoiser and the next-token
//! model. Each part's step count is fixed up front from one timed (and discarded) step of that
//! part, so its cosine schedule runs to its end: `steps = ⌊share / t_step⌋` (at least 1); a
//! part also stops when its share of the time is used (then fewer steps are done and
//! [`LearnedModels::describe`] says so). `quick` halves the batches (64 and 32).
//!
//! # Reproducibility
//! Given the step counts ([`Steps`]), every parameter is a function of the seed only, whatever
//! the thread count ([`train_learned_steps`]; the CLIP loop of [`crate::learn::train`], and the
//! heads' chunked runner [`crate::learn::heads::HeadRunner`]). The step counts themselves come
//! from the wall clock and are recorded.

use std::sync::Arc;
use std::time::Instant;

use rand::Rng as _;
use rand_distr::{Distribution, StandardNormal};
use serde::{Deserialize, Serialize};

use super::{Denoiser, NextToken};
use crate::eval::LearnedScore;
use crate::learn::adamw::{AdamW, Schedule};
use crate::learn::data::Data;
use crate::learn::guided::GuidedTransformer;
use crate::learn::heads::{ConditionalHead, DenoiserHead, HeadRunner, HeadShape, NextTokenHead};
use crate::learn::train::{train, Run};
use crate::learn::{Class, ClipPair, Head, Params, Scheme, TrainConfig, Transformer, TransformerShape};
use crate::model::{Jghm, Part};
use crate::rng;
use crate::sample::sample_pairs;
use crate::score::Score;

/// The encoder class of a learned model (THEORY §8).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LearnedClass {
    /// 5 blocks, 4 heads, width 128, output 10.
    Standard,
    /// 1 block.
    Shallow,
    /// Standard plus the BP-message penalty on the hidden states.
    Guided,
}

impl LearnedClass {
    pub fn name(&self) -> &'static str {
        match self {
            LearnedClass::Standard => "standard",
            LearnedClass::Shallow => "shallow",
            LearnedClass::Guided => "guided",
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

/// The noise level of the denoising task (THEORY §8: σ = 1).
pub const SIGMA: f64 = 1.0;

/// Every size and rate of a learned model (module doc).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Plan {
    pub class: LearnedClass,
    pub encoder: HeadShape,
    /// Output dimension `P` of the encoders.
    pub out: usize,
    pub clip_batch: usize,
    pub clip_lr: (f64, f64),
    /// Weight `λ` of the guided class's penalty.
    pub lambda: f64,
    pub head: HeadShape,
    pub head_batch: usize,
    pub head_lr: (f64, f64),
    pub weight_decay: f64,
    pub clip_norm: f64,
}

impl Plan {
    /// The module doc's plan for `class`.
    pub fn new(class: LearnedClass, quick: bool) -> Plan {
        let layers = if class == LearnedClass::Shallow { 1 } else { 5 };
        Plan {
            class,
            encoder: HeadShape { width: 128, layers, heads: 4 },
            out: 10,
            clip_batch: if quick { 64 } else { 128 },
            clip_lr: (3e-4, 3e-7),
            lambda: 1.0,
            head: HeadShape { width: 64, layers: 2, heads: 4 },
            head_batch: if quick { 32 } else { 64 },
            head_lr: (1e-3, 1e-5),
            weight_decay: 1e-3,
            clip_norm: 1.0,
        }
    }

    fn schedule(&self, lr: (f64, f64), steps: usize) -> Schedule {
        Schedule {
            lr: lr.0,
            lr_min: lr.1,
            warmup: (steps / 20).max(1),
            steps,
            weight_decay: self.weight_decay,
            clip: self.clip_norm,
        }
    }

    fn clip_config(&self, steps: usize) -> TrainConfig {
        let mut cfg = TrainConfig::for_class(Class::Transformer);
        cfg.width = self.encoder.width;
        cfg.layers = self.encoder.layers;
        cfg.heads = self.encoder.heads;
        cfg.out = self.out;
        cfg.batch = self.clip_batch;
        cfg.scheme = Scheme::InBatch;
        cfg.schedule = self.schedule(self.clip_lr, steps);
        cfg.checkpoint_every = usize::MAX;
        cfg
    }
}

/// Steps per part.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
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
    /// Wall seconds of each part.
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
    score: Arc<LearnedScore<f32, Transformer>>,
    denoiser: LearnedDenoiser,
    next_token: LearnedNextToken,
    pub report: TrainingReport,
}

impl LearnedModels {
    /// The CLIP score `S(x, y) = ⟨f(x), g(y)⟩/τ`.
    pub fn score(&self) -> &dyn Score {
        self.score.as_ref()
    }
    pub fn denoiser(&self) -> &dyn Denoiser {
        &self.denoiser
    }
    pub fn next_token(&self) -> &dyn NextToken {
        &self.next_token
    }
    /// Class, steps per part, seconds, budget.
    pub fn describe(&self) -> String {
        let r = &self.report;
        let part = |name: &str, done: usize, planned: usize, secs: f64| {
            let cut = if done < planned {
                format!(" (of {planned} planned; stopped by the time budget)")
            } else {
                String::new()
            };
            format!("{name} {done} steps{cut} in {secs:.1} s")
        };
        let budget = r.budget.map_or("fixed step counts".to_string(), |b| {
            format!("budget {:.0} s{}", b.seconds, if b.quick { ", quick" } else { "" })
        });
        format!(
            "{} encoders ({} blocks, width {}, out {}): {}; denoiser {}; next-token {}; {budget}",
            r.class.name(),
            r.plan.encoder.layers,
            r.plan.encoder.width,
            r.plan.out,
            part("CLIP", r.done.clip, r.planned.clip, r.seconds[0]),
            part("", r.done.denoiser, r.planned.denoiser, r.seconds[1]).trim_start(),
            part("", r.done.next_token, r.planned.next_token, r.seconds[2]).trim_start(),
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
    fn denoise(&self, noisy: &[f64], y: &[usize]) -> Vec<f64> {
        let g = self.clip.encode(false, &[y.to_vec()]);
        let inp: Vec<f32> = noisy.iter().map(|&v| v as f32).collect();
        let mut cache = ConditionalHead::<f32>::new_cache(&self.head, 1);
        self.head.forward(&self.params, &inp, &g, 1, &mut cache);
        self.head.outputs(&cache, 1).iter().map(|&v| v as f64).collect()
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
    fn next_token_log_probs(&self, x: &[usize], y: &[usize]) -> Vec<f64> {
        let f = self.clip.encode(true, &[x.to_vec()]);
        let inp: Vec<f32> = y.iter().map(|&v| v as f32).collect();
        let mut cache = ConditionalHead::<f32>::new_cache(&self.head, 1);
        self.head.forward(&self.params, &inp, &f, 1, &mut cache);
        self.head.outputs(&cache, 1)[..y.len() * self.head.vocab].iter().map(|&v| v as f64).collect()
    }
}

/// Stream offsets of the seed: CLIP uses `seed` itself (its loop's own streams), the heads these.
const DENOISER_SEED: u64 = 0xd3_0000;
const NEXT_TOKEN_SEED: u64 = 0x7e_0000;

/// Trains the three parts of `class` within `budget` (module doc: split, timed steps).
pub fn train_learned(model: &Jghm, class: LearnedClass, budget: &Budget, seed: u64) -> Result<LearnedModels, String> {
    check_model(model)?;
    if !(budget.seconds.is_finite() && budget.seconds > 0.0) {
        return Err(format!("the training budget must be a positive number of seconds (got {})", budget.seconds));
    }
    let plan = Plan::new(class, budget.quick);
    let t0 = Instant::now();
    let per_step = time_one_step_each(model, &plan, seed)?;
    let left = (budget.seconds - t0.elapsed().as_secs_f64()).max(0.0);
    let shares = [0.5 * left, 0.25 * left, 0.25 * left];
    let steps = Steps {
        clip: ((shares[0] / per_step[0]) as usize).max(1),
        denoiser: ((shares[1] / per_step[1]) as usize).max(1),
        next_token: ((shares[2] / per_step[2]) as usize).max(1),
    };
    let mut models = train_learned_steps(model, &plan, steps, seed, Some(shares))?;
    models.report.budget = Some(*budget);
    Ok(models)
}

fn check_model(model: &Jghm) -> Result<(), String> {
    if model.has_trunk() {
        return Err("the learned models of `reproduce` are for two-tower models (this one has a shared trunk)".into());
    }
    Ok(())
}

/// Seconds of one step of each part (CLIP, denoiser, next-token) at fresh parameters.
fn time_one_step_each(model: &Jghm, plan: &Plan, seed: u64) -> Result<[f64; 3], String> {
    let one = Steps { clip: 1, denoiser: 1, next_token: 1 };
    let m = train_learned_steps(model, plan, one, seed, None)?;
    Ok(m.report.seconds.map(|s| s.max(1e-6)))
}

/// Trains the three parts for exactly `steps` (each part also stopping when its entry of
/// `max_seconds` is used up). Reproducible from `seed` given the steps.
pub fn train_learned_steps(
    model: &Jghm,
    plan: &Plan,
    steps: Steps,
    seed: u64,
    max_seconds: Option<[f64; 3]>,
) -> Result<LearnedModels, String> {
    check_model(model)?;
    let shared = Arc::new(model.clone());
    let t0 = Instant::now();
    let (score, clip_done, clip_loss) = train_clip(model, &shared, plan, steps.clip, seed, max_seconds.map(|m| m[0]))?;
    let score = Arc::new(score);
    let t1 = Instant::now();
    let dn_head = DenoiserHead::new(model.image_len(), model.image_vocab(), plan.out, plan.head);
    let (dn_params, dn_done, dn_loss) = train_head(
        model,
        &score,
        &dn_head,
        Task::Denoise,
        plan,
        steps.denoiser,
        seed ^ DENOISER_SEED,
        max_seconds.map(|m| m[1]),
    )?;
    let t2 = Instant::now();
    let nt_head = NextTokenHead::new(model.text_len(), model.text_vocab(), plan.out, plan.head);
    let (nt_params, nt_done, nt_loss) = train_head(
        model,
        &score,
        &nt_head,
        Task::NextToken,
        plan,
        steps.next_token,
        seed ^ NEXT_TOKEN_SEED,
        max_seconds.map(|m| m[2]),
    )?;
    let t3 = Instant::now();
    let name = plan.class.name().to_string();
    Ok(LearnedModels {
        denoiser: LearnedDenoiser { clip: score.clone(), head: dn_head, params: dn_params, name: name.clone() },
        next_token: LearnedNextToken { clip: score.clone(), head: nt_head, params: nt_params, name },
        score,
        report: TrainingReport {
            class: plan.class,
            planned: steps,
            done: Steps { clip: clip_done, denoiser: dn_done, next_token: nt_done },
            seconds: [(t1 - t0).as_secs_f64(), (t2 - t1).as_secs_f64(), (t3 - t2).as_secs_f64()],
            budget: None,
            final_losses: [clip_loss, dn_loss, nt_loss],
            plan: plan.clone(),
        },
    })
}

/// Trains the CLIP pair; returns the score, the steps done and the mean loss of the last 10%.
fn train_clip(
    model: &Jghm,
    shared: &Arc<Jghm>,
    plan: &Plan,
    steps: usize,
    seed: u64,
    max_seconds: Option<f64>,
) -> Result<(LearnedScore<f32, Transformer>, usize, f64), String> {
    let cfg = plan.clip_config(steps);
    let shape = |part| TransformerShape {
        vocab: model.vocab_of(part),
        len: model.len_of(part),
        width: plan.encoder.width,
        layers: plan.encoder.layers,
        heads: plan.encoder.heads,
        out: plan.out,
    };
    let head = Head::Bilinear { normalise: false };
    let run = Run { config: &cfg, seed, model_sha256: String::new(), steps, max_seconds };
    let mut data = Data::Fresh { model, seed };
    let mut tail = Tail::new(steps);
    let mut progress = |r: &crate::learn::train::StepReport| tail.push(r.step, r.loss);
    let err = |e: crate::learn::train::TrainError| format!("CLIP training of the {} class: {e}", plan.class.name());
    let (ti, tt) = (Transformer::new(shape(Part::Image)), Transformer::new(shape(Part::Text)));
    let (params, done) = if plan.class == LearnedClass::Guided {
        let weight = plan.lambda / cfg.scheme.encoded(cfg.batch) as f64;
        let gi = GuidedTransformer::new(ti.clone(), shared.clone(), Part::Image, weight)?;
        let gt = GuidedTransformer::new(tt.clone(), shared.clone(), Part::Text, weight)?;
        let mut pair: ClipPair<f32, GuidedTransformer> = ClipPair::new(gi.clone(), gt.clone(), head, cfg.scheme);
        let ck = train(&mut pair, &mut data, &run, None, &mut progress, &mut |_| Ok(())).map_err(err)?;
        let p = &ck.params;
        let params = Params {
            image: gi.inner_params(&p.image).to_vec(),
            text: gt.inner_params(&p.text).to_vec(),
            head: p.head.clone(),
        };
        (params, ck.step)
    } else {
        let mut pair: ClipPair<f32, Transformer> = ClipPair::new(ti.clone(), tt.clone(), head, cfg.scheme);
        let ck = train(&mut pair, &mut data, &run, None, &mut progress, &mut |_| Ok(())).map_err(err)?;
        (ck.params, ck.step)
    };
    Ok((LearnedScore::new(ti, tt, params, head), done, tail.mean()))
}

/// Which head is trained.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Task {
    Denoise,
    NextToken,
}

/// The mean of the last 10% of a run's losses.
struct Tail {
    from: usize,
    sum: f64,
    n: usize,
}

impl Tail {
    fn new(steps: usize) -> Self {
        Tail { from: steps - steps.div_ceil(10), sum: 0.0, n: 0 }
    }
    /// `step` is 1-based (the step just done).
    fn push(&mut self, step: usize, loss: f64) {
        if step > self.from {
            self.sum += loss;
            self.n += 1;
        }
    }
    fn mean(&self) -> f64 {
        if self.n == 0 {
            f64::NAN
        } else {
            self.sum / self.n as f64
        }
    }
}

/// One batch of a head: inputs, conditions (frozen features), targets, as `f32` rows.
fn head_batch(
    model: &Jghm,
    score: &LearnedScore<f32, Transformer>,
    task: Task,
    b: usize,
    seed: u64,
    step: usize,
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let mut rng = rng::stream(seed, 1 + step as u64);
    let pairs = sample_pairs(model, b, rng.random::<u64>(), false);
    match task {
        Task::Denoise => {
            // x̃_i = v_i + σ ε_i on the image; the condition is g(y)
            let ys: Vec<Vec<usize>> = pairs.iter().map(|p| p.text.clone()).collect();
            let cond = score.encode(false, &ys);
            let target: Vec<f32> = pairs.iter().flat_map(|p| p.image.iter().map(|&v| v as f32)).collect();
            let inp: Vec<f32> = target
                .iter()
                .map(|&v| (v as f64 + SIGMA * Distribution::<f64>::sample(&StandardNormal, &mut rng)) as f32)
                .collect();
            (inp, cond, target)
        }
        Task::NextToken => {
            let xs: Vec<Vec<usize>> = pairs.iter().map(|p| p.image.clone()).collect();
            let cond = score.encode(true, &xs);
            let target: Vec<f32> = pairs.iter().flat_map(|p| p.text.iter().map(|&v| v as f32)).collect();
            (target.clone(), cond, target)
        }
    }
}

/// Trains a head on the frozen features; returns its parameters, the steps done and the mean
/// loss of the last 10% of steps.
#[allow(clippy::too_many_arguments)]
fn train_head<H: ConditionalHead<f32>>(
    model: &Jghm,
    score: &LearnedScore<f32, Transformer>,
    head: &H,
    task: Task,
    plan: &Plan,
    steps: usize,
    seed: u64,
    max_seconds: Option<f64>,
) -> Result<(Vec<f32>, usize, f64), String> {
    let schedule = plan.schedule(plan.head_lr, steps);
    let mut params = Params { image: head.init(&mut rng::stream(seed, 0)), text: vec![], head: vec![] };
    let mut grads = params.zeros_like();
    let mut opt = AdamW::new(&params);
    let mut runner = HeadRunner::default();
    let mut tail = Tail::new(steps);
    let t0 = Instant::now();
    let mut done = 0;
    while done < steps {
        let (inp, cond, target) = head_batch(model, score, task, plan.head_batch, seed, done);
        let loss = runner.loss_and_grad(head, &params.image, &inp, &cond, &target, &mut grads.image);
        if !loss.is_finite() {
            return Err(format!("head training diverged at step {done} (loss {loss})"));
        }
        opt.step(&schedule, done, &mut params, &mut grads);
        done += 1;
        tail.push(done, loss);
        if max_seconds.is_some_and(|m| t0.elapsed().as_secs_f64() >= m) {
            break;
        }
    }
    Ok((params.image, done, tail.mean()))
}
