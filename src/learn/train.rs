//! The training loop: batches from [`super::data`], one [`ClipPair`] step, AdamW, periodic
//! checkpoints, stop at the step budget or the time budget, whichever comes first.
//!
//! Reproducible: parameters start from `rng::stream(seed, 0)`; step `s`'s batch depends on
//! `(seed, s)` only; the schedule depends on `s` only; the towers' gradients are reduced in
//! fixed chunk order. So the parameters after `s` steps are the same whatever the thread count
//! and whether or not the run was interrupted and resumed from a checkpoint. (A time budget
//! only decides *where* a run stops; the step count is in the checkpoint.)

use std::time::Instant;

use super::adamw::AdamW;
use super::checkpoint::Checkpoint;
use super::clip::ClipPair;
use super::config::CheckedConfig;
use super::data::{Data, RESTART_STREAM};
use super::encoder::Encoder;
use super::real::Real;
use crate::rng;

/// What the loop reports after every step (for a progress bar).
#[derive(Clone, Copy, Debug)]
pub struct StepReport {
    /// The step of the parameters being trained (a candidate's, during the restarts).
    pub step: usize,
    pub steps: usize,
    /// Steps of work done and in all, counting every restart candidate's ([`run_work`]).
    pub done: usize,
    pub work: usize,
    pub loss: f64,
    pub grad_norm: f64,
    pub lr: f64,
    /// Positive pairs per second since the start of this invocation.
    pub pairs_per_second: f64,
}

/// A run's fixed inputs.
pub struct Run<'a> {
    pub config: &'a CheckedConfig,
    pub seed: u64,
    pub model_sha256: String,
    /// Stop after this many steps in total.
    pub steps: usize,
    pub max_seconds: Option<f64>,
}

/// Why training failed.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error("the loss became {loss} at step {step} (diverged; lower the learning rate)")]
    Diverged { step: usize, loss: f64 },
    #[error(transparent)]
    Save(#[from] SaveError),
    #[error("the training pairs do not fit the encoders: {0}")]
    Tokens(#[from] super::encoder::TokenError),
}

/// Why the checkpoint callback of [`train`] ended the run.
#[derive(Debug, thiserror::Error)]
pub enum SaveError {
    /// The caller stops the run after this checkpoint (early stopping); not a failure.
    #[error("stopped by the caller after this checkpoint")]
    Stop,
    #[error(transparent)]
    File(#[from] crate::files::FileError),
}

/// Held-out loss of `params` (mean over the held-out batches), if the data set has any; an
/// error when its pairs do not fit the encoders.
pub fn held_out_loss<R: Real, E: Encoder<R>>(
    pair: &mut ClipPair<R, E>,
    params: &super::clip::Params<R>,
    data: &Data,
    b: usize,
) -> Result<Option<f64>, super::encoder::TokenError> {
    let batches = data.held_out_batches(b, pair.scheme);
    if batches.is_empty() {
        return Ok(None);
    }
    let mut total = 0.0;
    for bt in &batches {
        total += pair.loss(params, &bt.images, &bt.texts)?.loss;
    }
    Ok(Some(total / batches.len() as f64))
}

/// Trains from `start` (a checkpoint to resume, or `None` for fresh parameters) and returns the
/// final checkpoint; `save` is called with every periodic checkpoint and the final one.
///
/// A fresh run with `restarts = R > 1` first trains `R` candidate initialisations for
/// `restart_steps` steps each ([`select_start`]) and continues the one with the lowest
/// selection loss; no checkpoint is saved before the choice, so a resumed run never continues
/// a candidate that was not chosen.
pub fn train<R: Real, E: Encoder<R>>(
    pair: &mut ClipPair<R, E>,
    data: &mut Data,
    run: &Run,
    start: Option<Checkpoint<R>>,
    progress: &mut dyn FnMut(&StepReport),
    save: &mut dyn FnMut(&Checkpoint<R>) -> Result<(), SaveError>,
) -> Result<Checkpoint<R>, TrainError> {
    train_reporting_selection(pair, data, run, start, progress, save).map(|(ck, _)| ck)
}

/// Which restart candidate a run continued, and every candidate's selection loss.
#[derive(Clone, Debug, PartialEq)]
pub struct Selection {
    pub index: usize,
    pub losses: Vec<f64>,
}

/// [`train`], also returning the restarts' [`Selection`] (`None` without restarts or when
/// resuming).
pub fn train_reporting_selection<R: Real, E: Encoder<R>>(
    pair: &mut ClipPair<R, E>,
    data: &mut Data,
    run: &Run,
    start: Option<Checkpoint<R>>,
    progress: &mut dyn FnMut(&StepReport),
    save: &mut dyn FnMut(&Checkpoint<R>) -> Result<(), SaveError>,
) -> Result<(Checkpoint<R>, Option<Selection>), TrainError> {
    let t0 = Instant::now();
    let (mut ck, done, selection) = match start {
        Some(ck) => {
            let done = work_before(run.config, ck.step);
            (ck, done, None)
        }
        None if run.config.restarts > 1 => {
            let chosen = select_start(pair, data, run, t0, progress)?;
            save(&chosen.checkpoint)?;
            let selection = Selection { index: chosen.index, losses: chosen.losses };
            if chosen.out_of_time {
                return Ok((chosen.checkpoint, Some(selection)));
            }
            (chosen.checkpoint, chosen.work, Some(selection))
        }
        None => (candidate_start(pair, run, 0), 0, None),
    };
    let mut counter = Counter { done, work: run_work(run), first: done, t0 };
    advance(pair, data, run, &mut ck, run.steps, &mut counter, progress, Some(save))?;
    Ok((ck, selection))
}

/// The total number of steps a run of `run.steps` steps takes, counting every candidate's
/// steps: `R · P + (steps − P)` with `P = min(restart_steps, steps)` when `R = restarts > 1`.
pub fn run_work(run: &Run) -> usize {
    let cfg = run.config;
    if cfg.restarts > 1 {
        let probe = cfg.restart_steps.min(run.steps);
        cfg.restarts * probe + (run.steps - probe)
    } else {
        run.steps
    }
}

/// Steps of work done by a run whose chosen parameters are at `step`.
fn work_before(cfg: &CheckedConfig, step: usize) -> usize {
    if cfg.restarts > 1 && step >= cfg.restart_steps {
        (cfg.restarts - 1) * cfg.restart_steps + step
    } else {
        step
    }
}

/// The initialisation stream of candidate `r`: candidate 0 draws from stream 0, as a run
/// without restarts does, so `restarts = 1` is that run and candidate 0 continued is too.
fn init_stream(r: usize) -> u64 {
    if r == 0 {
        0
    } else {
        RESTART_STREAM + r as u64
    }
}

/// The fresh checkpoint (step 0) of restart candidate `r`: its parameters from stream
/// `init_stream(r)` of the run's seed, a new optimiser state.
pub fn candidate_start<R: Real, E: Encoder<R>>(pair: &mut ClipPair<R, E>, run: &Run, r: usize) -> Checkpoint<R> {
    let params = pair.init(&mut rng::stream(run.seed, init_stream(r)));
    let opt = AdamW::new(&params);
    Checkpoint {
        config: run.config.config().clone(),
        model_sha256: run.model_sha256.clone(),
        seed: run.seed,
        step: 0,
        params,
        opt,
        train_loss: f64::NAN,
        held_out_loss: None,
    }
}

/// The outcome of [`select_start`].
pub struct Chosen<R: Real> {
    /// The chosen candidate after its `restart_steps` steps.
    pub checkpoint: Checkpoint<R>,
    /// Which candidate (0-based) and every candidate's selection loss, in order.
    pub index: usize,
    pub losses: Vec<f64>,
    /// Steps of work done by all candidates.
    pub work: usize,
    /// The time budget ran out during the selection.
    pub out_of_time: bool,
}

/// Restarts chosen by a held-out loss. Candidate `r` starts from its own initialisation
/// (stream [`RESTART_STREAM`]` + r` of the seed; candidate 0 from stream 0) and trains for
/// `P = restart_steps` steps on the same batches and schedule as every other candidate (a
/// batch depends on `(seed, step)` only). Its selection loss is the held-out loss when the
/// data set holds pairs out, and otherwise the mean training loss of its last `⌈P/4⌉` steps:
/// with fresh pairs every step, each of those batches is scored before the step that learns
/// from it, so that mean is an out-of-sample estimate too. The lowest selection loss wins.
///
/// Why: gradient descent on the BP class settles early into the basin of a local optimum
/// (the excess risk hardly changes after the first few hundred steps), so a few short
/// candidate runs find a good basin for a fraction of the full budget. If the time budget
/// runs out, the candidates that finished their `P` steps are compared (or the one running, if
/// none finished).
pub fn select_start<R: Real, E: Encoder<R>>(
    pair: &mut ClipPair<R, E>,
    data: &mut Data,
    run: &Run,
    t0: Instant,
    progress: &mut dyn FnMut(&StepReport),
) -> Result<Chosen<R>, TrainError> {
    let cfg = run.config;
    let probe = cfg.restart_steps.min(run.steps);
    let mut counter = Counter { done: 0, work: run_work(run), first: 0, t0 };
    let mut best: Option<(f64, usize, Checkpoint<R>)> = None;
    let mut losses = vec![];
    let mut out_of_time = false;
    for r in 0..cfg.restarts {
        let mut ck = candidate_start(pair, run, r);
        let mut tail = Tail::new(probe.div_ceil(4));
        let mut report = |s: &StepReport| {
            tail.push(s.step, probe, s.loss);
            progress(s);
        };
        out_of_time = advance(pair, data, run, &mut ck, probe, &mut counter, &mut report, None)?;
        if out_of_time && ck.step < probe && best.is_some() {
            break;
        }
        ck.held_out_loss = held_out_loss(pair, &ck.params, data, cfg.batch)?;
        let loss = ck.held_out_loss.unwrap_or(tail.mean());
        losses.push(loss);
        if best.as_ref().is_none_or(|b| loss < b.0) {
            best = Some((loss, r, ck));
        }
        if out_of_time {
            break;
        }
    }
    let (_, index, checkpoint) = best.expect("at least one candidate");
    Ok(Chosen { checkpoint, index, losses, work: counter.done, out_of_time })
}

/// The mean of the losses of the last `len` steps before step `end`.
struct Tail {
    len: usize,
    sum: f64,
    count: usize,
}

impl Tail {
    fn new(len: usize) -> Self {
        Tail { len, sum: 0.0, count: 0 }
    }
    fn push(&mut self, step: usize, end: usize, loss: f64) {
        if step + self.len > end {
            self.sum += loss;
            self.count += 1;
        }
    }
    fn mean(&self) -> f64 {
        if self.count == 0 {
            f64::INFINITY
        } else {
            self.sum / self.count as f64
        }
    }
}

/// The checkpoint callback of [`train`].
type SaveFn<'a, R> = dyn FnMut(&Checkpoint<R>) -> Result<(), SaveError> + 'a;

/// Steps of work done and to do, for the reports.
struct Counter {
    done: usize,
    work: usize,
    first: usize,
    t0: Instant,
}

/// Steps `ck` until `until` (or the time budget); saves periodic checkpoints when `save` is
/// given. Returns whether the time budget ran out.
#[allow(clippy::too_many_arguments)]
fn advance<R: Real, E: Encoder<R>>(
    pair: &mut ClipPair<R, E>,
    data: &mut Data,
    run: &Run,
    ck: &mut Checkpoint<R>,
    until: usize,
    counter: &mut Counter,
    progress: &mut dyn FnMut(&StepReport),
    mut save: Option<&mut SaveFn<R>>,
) -> Result<bool, TrainError> {
    let cfg = run.config;
    let mut grads = ck.params.zeros_like();
    let mut window = (0.0, 0usize);
    while ck.step < until {
        let s = ck.step;
        let batch = data.batch(s, cfg.batch, cfg.scheme);
        let parts = pair.loss_and_grad(&ck.params, &batch.images, &batch.texts, &mut grads)?;
        if !parts.loss.is_finite() {
            return Err(TrainError::Diverged { step: s, loss: parts.loss });
        }
        let grad_norm = ck.opt.step(&cfg.schedule, s, &mut ck.params, &mut grads);
        ck.step += 1;
        counter.done += 1;
        window = (window.0 + parts.loss, window.1 + 1);
        let elapsed = counter.t0.elapsed().as_secs_f64();
        progress(&StepReport {
            step: ck.step,
            steps: run.steps,
            done: counter.done,
            work: counter.work,
            loss: parts.loss,
            grad_norm,
            lr: cfg.schedule.lr_at(s),
            pairs_per_second: ((counter.done - counter.first) * cfg.batch) as f64 / elapsed.max(1e-9),
        });
        let out_of_time = run.max_seconds.is_some_and(|m| elapsed >= m);
        if let Some(save) = save.as_mut() {
            if ck.step.is_multiple_of(cfg.checkpoint_every) || ck.step == run.steps || out_of_time {
                ck.train_loss = window.0 / window.1 as f64;
                window = (0.0, 0);
                ck.held_out_loss = held_out_loss(pair, &ck.params, data, cfg.batch)?;
                save(ck)?;
            }
        } else if ck.step == until || out_of_time {
            ck.train_loss = window.0 / window.1 as f64;
        }
        if out_of_time {
            return Ok(true);
        }
    }
    Ok(false)
}
