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
use super::data::Data;
use super::encoder::Encoder;
use super::real::Real;
use crate::rng;

/// What the loop reports after every step (for a progress bar).
#[derive(Clone, Copy, Debug)]
pub struct StepReport {
    pub step: usize,
    pub steps: usize,
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

/// Held-out loss of `params` (mean over the held-out batches), if the data set has any.
pub fn held_out_loss<R: Real, E: Encoder<R>>(
    pair: &mut ClipPair<R, E>,
    params: &super::clip::Params<R>,
    data: &Data,
    b: usize,
) -> Option<f64> {
    let batches = data.held_out_batches(b, pair.scheme);
    if batches.is_empty() {
        return None;
    }
    let total: f64 = batches.iter().map(|bt| pair.loss(params, &bt.images, &bt.texts).loss).sum();
    Some(total / batches.len() as f64)
}

/// Trains from `start` (a checkpoint to resume, or `None` for fresh parameters) and returns the
/// final checkpoint; `save` is called with every periodic checkpoint and the final one.
pub fn train<R: Real, E: Encoder<R>>(
    pair: &mut ClipPair<R, E>,
    data: &mut Data,
    run: &Run,
    start: Option<Checkpoint<R>>,
    progress: &mut dyn FnMut(&StepReport),
    save: &mut dyn FnMut(&Checkpoint<R>) -> Result<(), SaveError>,
) -> Result<Checkpoint<R>, TrainError> {
    let cfg = run.config;
    let mut ck = match start {
        Some(ck) => ck,
        None => {
            let params = pair.init(&mut rng::stream(run.seed, 0));
            let opt = AdamW::new(&params);
            Checkpoint {
                config: cfg.config().clone(),
                model_sha256: run.model_sha256.clone(),
                seed: run.seed,
                step: 0,
                params,
                opt,
                train_loss: f64::NAN,
                held_out_loss: None,
            }
        }
    };
    let mut grads = ck.params.zeros_like();
    let t0 = Instant::now();
    let first = ck.step;
    let mut window = (0.0, 0usize);
    while ck.step < run.steps {
        let s = ck.step;
        let batch = data.batch(s, cfg.batch, cfg.scheme);
        let parts = pair.loss_and_grad(&ck.params, &batch.images, &batch.texts, &mut grads);
        if !parts.loss.is_finite() {
            return Err(TrainError::Diverged { step: s, loss: parts.loss });
        }
        let grad_norm = ck.opt.step(&cfg.schedule, s, &mut ck.params, &mut grads);
        ck.step += 1;
        window = (window.0 + parts.loss, window.1 + 1);
        let elapsed = t0.elapsed().as_secs_f64();
        progress(&StepReport {
            step: ck.step,
            steps: run.steps,
            loss: parts.loss,
            grad_norm,
            lr: cfg.schedule.lr_at(s),
            pairs_per_second: ((ck.step - first) * cfg.batch) as f64 / elapsed.max(1e-9),
        });
        let out_of_time = run.max_seconds.is_some_and(|m| elapsed >= m);
        if ck.step % cfg.checkpoint_every == 0 || ck.step == run.steps || out_of_time {
            ck.train_loss = window.0 / window.1 as f64;
            window = (0.0, 0);
            ck.held_out_loss = held_out_loss(pair, &ck.params, data, cfg.batch);
            save(&ck)?;
        }
        if out_of_time {
            break;
        }
    }
    Ok(ck)
}
