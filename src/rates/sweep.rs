//! One sweep: for every class, sample size `n` and seed, draw `n` pre-training pairs, train by
//! the CLIP loss with early stopping on a held-out split, and measure the kept parameters
//! exactly ([`super::measure`]). the book, T12.
//!
//! # A run
//! * data: `n` pairs `sample_pairs(model, n, ·)`, the last `holdout·n` held out;
//! * training: [`crate::learn::train::train`] with the class's configuration
//!   ([`Settings::config`]) for at most `steps` steps (`bp_steps` for the BP class); every `eval_every` steps the held-out CLIP
//!   loss (in-batch, `batch` pairs per group) is measured, the parameters with the lowest one are
//!   kept, and training stops after `patience` evaluations without improvement;
//! * measurement: the kept pair's score on every enumerated pair, exact figures.
//!
//! The BP class is built with `bp_states_factor` times the model's hidden states (root and
//! internal levels): it still contains the truth, and at the true size its CLIP loss has local
//! minima where two root states merge (most seeds end there; see proofs/T12). `bp_restarts > 1`
//! is the other remedy: several initialisations on the same data, the lowest held-out loss kept.
//!
//! Every run has its own seed, a function of the sweep seed, the class and `n` and the seed
//! index ([`run_seed`]), so runs are independent (the fit's bootstrap relies on it) and each is
//! reproducible whatever the thread count (training and measurement are, see their modules).

use std::time::Instant;

use rand::Rng as _;
use serde::Serialize;

use super::measure::{figures, Figures};
use super::results::Row;
use crate::contrastive::Exact;
use crate::eval::LearnedScore;
use crate::learn::checkpoint::Checkpoint;
use crate::learn::data::Data;
use crate::learn::train::{train, Run, SaveError, StepReport, TrainError};
use crate::learn::{
    with_encoders, CheckedConfig, Class, ClipPair, ConfigError, Encoder, Params, PositionInit, Real, TrainConfig,
    WithEncoders,
};
use crate::model::{Jghm, Part};
use crate::rng;

/// Everything that fixes a sweep besides the model.
#[derive(Clone, Debug, PartialEq, Serialize, serde::Deserialize)]
pub struct Settings {
    pub classes: Vec<Class>,
    /// Pre-training pairs per run (training + held-out).
    pub ns: Vec<usize>,
    /// Seeds per `(class, n)`.
    pub seeds: usize,
    /// The sweep's seed (every run seed derives from it).
    pub seed: u64,
    /// Step budget of a run.
    pub steps: usize,
    /// Held-out evaluations every this many steps.
    pub eval_every: usize,
    /// Stop after this many held-out evaluations without improvement.
    pub patience: usize,
    /// Positive pairs per step (in-batch negatives), also the held-out group size.
    pub batch: usize,
    /// Fraction of the `n` pairs held out.
    pub holdout: f64,
    /// Transformer width and layers; MLP hidden width.
    pub transformer_width: usize,
    pub transformer_layers: usize,
    pub mlp_width: usize,
    /// Initialisations of the BP class per run; each trains in full, the one with the lowest
    /// held-out loss is kept (an alternative to `bp_states_factor` against local minima).
    pub bp_restarts: usize,
    /// Peak learning rate of the BP class.
    pub bp_lr: f64,
    /// Step budget (and cosine horizon) of the BP class: with a longer horizon its learning rate
    /// stays high for long, and early stopping fires on the noise plateau of that phase.
    pub bp_steps: usize,
    /// Hidden states of the BP class per true hidden state (root and internal levels; the
    /// leaves keep the vocabulary). Above 1 the class still contains the truth (well-specified)
    /// but has room to split states, which removes the merged-state local minima.
    pub bp_states_factor: usize,
}

impl Settings {
    /// The default sweep (`--quick`: fewer `n`, seeds and steps). Documented in `jghm rates --help`.
    pub fn default_sweep(quick: bool) -> Settings {
        Settings {
            classes: Class::ALL.to_vec(),
            ns: if quick { vec![256, 1024, 4096, 16384] } else { vec![256, 512, 1024, 2048, 4096, 8192, 16384, 32768] },
            seeds: if quick { 3 } else { 5 },
            seed: 1,
            steps: if quick { 1500 } else { 4000 },
            eval_every: 50,
            patience: if quick { 8 } else { 10 },
            batch: 32,
            holdout: 0.2,
            transformer_width: 32,
            transformer_layers: 2,
            mlp_width: 128,
            bp_restarts: 1,
            bp_lr: 0.2,
            bp_steps: 1500,
            bp_states_factor: 2,
        }
    }

    /// The training configuration of `class` at `n` pairs: the class's defaults with this
    /// sweep's batch, hold-out, step budget and sizes.
    pub fn config(&self, class: Class, n: usize) -> TrainConfig {
        let mut cfg = TrainConfig::for_class(class);
        cfg.batch = self.batch;
        cfg.holdout = self.holdout;
        cfg.n = Some(n);
        cfg.schedule.steps = self.steps;
        cfg.schedule.warmup = cfg.schedule.warmup.min(self.steps / 10);
        cfg.checkpoint_every = self.eval_every;
        cfg.width = if class == Class::Mlp { self.mlp_width } else { self.transformer_width };
        cfg.layers = self.transformer_layers;
        if class == Class::Transformer {
            // The sweeps' figures were measured with these (the transformer's defaults of that
            // time); `jghm train`'s default has since been tuned for accuracy in 4 minutes.
            (cfg.normalise, cfg.schedule.lr, cfg.position_init) = (false, 1e-3, PositionInit::Normal);
        }
        // A sweep's restarts are whole runs ([`Settings::restarts`]), as its figures were measured.
        cfg.restarts = 1;
        if class == Class::Bp {
            cfg.bp_states_factor = self.bp_states_factor;
            cfg.schedule.lr = self.bp_lr;
            cfg.schedule.steps = self.bp_steps;
            cfg.schedule.warmup = cfg.schedule.warmup.min(self.bp_steps / 10);
        }
        cfg
    }

    /// Initialisations per run of `class`.
    pub fn restarts(&self, class: Class) -> usize {
        if class == Class::Bp {
            self.bp_restarts.max(1)
        } else {
            1
        }
    }

    /// Checks the sizes against `model`; the error names the field and its limit.
    pub fn validate(&self, model: &Jghm) -> Result<(), SettingsError> {
        for (field, len) in [("classes", self.classes.len()), ("ns", self.ns.len()), ("seeds", self.seeds)] {
            if len == 0 {
                return Err(SettingsError::Empty { field });
            }
        }
        for (field, value) in [
            ("steps", self.steps),
            ("bp_steps", self.bp_steps),
            ("eval_every", self.eval_every),
            ("patience", self.patience),
        ] {
            if value == 0 {
                return Err(SettingsError::Zero { field });
            }
        }
        for &n in &self.ns {
            let held = (n as f64 * self.holdout).round() as usize;
            if held < self.batch {
                let min_n = (self.batch as f64 / self.holdout).ceil();
                return Err(SettingsError::HeldOut { n, held, batch: self.batch, min_n });
            }
        }
        for &class in &self.classes {
            self.config(class, self.ns[0]).check(model).map_err(|source| SettingsError::Config { class, source })?;
        }
        Ok(())
    }

    /// Training steps a run of `class` takes at most (the progress bar's unit of work).
    pub fn work(&self, class: Class) -> usize {
        self.restarts(class) * if class == Class::Bp { self.bp_steps } else { self.steps }
    }

    /// Total runs.
    pub fn runs(&self) -> usize {
        self.classes.len() * self.ns.len() * self.seeds
    }
}

/// Why sweep settings are refused, naming the field and its limit.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("settings: {field} is empty; a sweep needs at least one class, one n and one seed")]
    Empty { field: &'static str },
    #[error("settings: {field} is 0; it must be at least 1")]
    Zero { field: &'static str },
    #[error("settings: n = {n} holds out {held} pairs, fewer than one held-out group of {batch} (batch; early stopping needs one): use n ≥ {min_n}")]
    HeldOut { n: usize, held: usize, batch: usize, min_n: f64 },
    #[error("settings of the {} class: {source}", class.meta().name)]
    Config { class: Class, source: ConfigError },
}

/// The seed of run `(class, n, seed index)`: an independent stream of the sweep seed.
pub fn run_seed(sweep_seed: u64, class: Class, n: usize, seed: usize) -> u64 {
    let class_id = class as u64;
    rng::stream(sweep_seed, (class_id << 56) ^ ((seed as u64) << 40) ^ n as u64).random::<u64>()
}

/// Why a run failed.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("{class:?}, n = {n}, seed {seed}: {source}")]
    Config { class: Class, n: usize, seed: usize, source: ConfigError },
    #[error("{class:?}, n = {n}, seed {seed}: {source}")]
    Train { class: Class, n: usize, seed: usize, source: TrainError },
    #[error("{class:?}, n = {n}, seed {seed}: the learned score is not finite on some pair")]
    NotFinite { class: Class, n: usize, seed: usize },
}

/// The fixed inputs of the runs of one sweep on one model.
pub struct Sweep<'a, 'e, 'm> {
    pub model: &'m Jghm,
    pub model_sha256: String,
    pub exact: &'a Exact<'e, 'm>,
    pub settings: &'a Settings,
}

impl Sweep<'_, '_, '_> {
    /// Trains and measures run `(class, n, seed)`; `progress` sees every training step, numbered
    /// `0..settings.work(class)` across restarts.
    pub fn run(
        &self,
        class: Class,
        n: usize,
        seed: usize,
        progress: &mut dyn FnMut(&StepReport),
    ) -> Result<Row, RunError> {
        let cfg = self.settings.config(class, n).check(self.model).map_err(|source| RunError::Config {
            class,
            n,
            seed,
            source,
        })?;
        let rs = run_seed(self.settings.seed, class, n, seed);
        let t0 = Instant::now();
        let out = with_encoders(&cfg, self.model, Go { sweep: self, cfg: &cfg, run_seed: rs, progress });
        let trained = out.map_err(|source| RunError::Train { class, n, seed, source })?;
        let figures = trained.figures.ok_or(RunError::NotFinite { class, n, seed })?;
        Ok(Row {
            class,
            n,
            seed,
            run_seed: rs,
            steps: trained.steps,
            best_step: trained.best_step,
            stopped: if trained.early { "early" } else { "budget" }.into(),
            held_out_loss: trained.held_out_loss,
            seconds: t0.elapsed().as_secs_f64(),
            figures,
        })
    }

    fn go<R: Real, E: Encoder<R>>(
        &self,
        cfg: &CheckedConfig,
        run_seed: u64,
        make: &dyn Fn(Part) -> E,
        progress: &mut dyn FnMut(&StepReport),
    ) -> Result<Trained, TrainError> {
        let n = cfg.n.expect("a sweep trains on a fixed data set");
        let mut pair = ClipPair::new(make(Part::Image), make(Part::Text), cfg.head(self.model), cfg.scheme);
        let restarts = self.settings.restarts(cfg.class);
        // Restart r starts from the parameters of seed `run_seed + r`; every restart sees the
        // same data and batches (the data's seed is `run_seed`). The restart with the lowest
        // held-out loss is kept: an approximation of the empirical minimiser.
        let mut best: Option<(f64, usize, bool, Keeper<R>)> = None;
        for r in 0..restarts as u64 {
            let mut data = Data::fixed(self.model, n, cfg.holdout, run_seed);
            let run = self.training(cfg, run_seed.wrapping_add(r));
            let mut keeper = Keeper::new(self.settings.patience);
            let offset = r as usize * cfg.schedule.steps;
            let mut report = |s: &StepReport| progress(&StepReport { step: offset + s.step, ..*s });
            let out = train(&mut pair, &mut data, &run, None, &mut report, &mut |ck| keeper.see(ck));
            let (steps, early) = match out {
                Ok(ck) => (ck.step, false),
                Err(TrainError::Save(SaveError::Stop)) => (keeper.last_step, true),
                Err(e) => return Err(e),
            };
            let held = keeper.best.as_ref().map_or(f64::INFINITY, |b| b.0);
            if best.as_ref().is_none_or(|b| held < b.0) {
                best = Some((held, steps, early, keeper));
            }
        }
        let (_, steps, early, keeper) = best.expect("at least one restart");
        Ok(self.measure(cfg, make, steps, early, keeper))
    }

    fn training<'c>(&self, cfg: &'c CheckedConfig, seed: u64) -> Run<'c> {
        Run { config: cfg, seed, model_sha256: self.model_sha256.clone(), steps: cfg.schedule.steps, max_seconds: None }
    }

    /// The kept parameters' exact figures.
    fn measure<R: Real, E: Encoder<R>>(
        &self,
        cfg: &CheckedConfig,
        make: &dyn Fn(Part) -> E,
        steps: usize,
        early: bool,
        keeper: Keeper<R>,
    ) -> Trained {
        let (held_out_loss, best_step, params) = keeper.best.expect("the last step always checkpoints");
        let score = LearnedScore::new(make(Part::Image), make(Part::Text), params, cfg.head(self.model));
        let s = self.exact.scores(&score);
        let figures = s.iter().all(|v| v.is_finite()).then(|| figures(self.exact, &s));
        Trained { steps, best_step, early, held_out_loss, figures }
    }
}

/// One run's training and measurement, in its class's float type.
struct Go<'s, 'a, 'e, 'm, 'p> {
    sweep: &'s Sweep<'a, 'e, 'm>,
    cfg: &'s CheckedConfig,
    run_seed: u64,
    progress: &'p mut dyn FnMut(&StepReport),
}

impl WithEncoders for Go<'_, '_, '_, '_, '_> {
    type Output = Result<Trained, TrainError>;
    fn run<R: Real, E: Encoder<R> + 'static>(self, make: &dyn Fn(Part) -> E) -> Self::Output {
        self.sweep.go::<R, E>(self.cfg, self.run_seed, make, self.progress)
    }
}

/// Early stopping: keeps the parameters of the lowest held-out loss, and stops training (by
/// failing the checkpoint callback with [`SaveError::Stop`]) after `patience` evaluations without
/// improvement.
struct Keeper<R: Real> {
    best: Option<(f64, usize, Params<R>)>,
    last_step: usize,
    since: usize,
    patience: usize,
}

impl<R: Real> Keeper<R> {
    fn new(patience: usize) -> Self {
        Keeper { best: None, last_step: 0, since: 0, patience }
    }

    fn see(&mut self, ck: &Checkpoint<R>) -> Result<(), SaveError> {
        self.last_step = ck.step;
        let h = ck.held_out_loss.unwrap_or(f64::INFINITY);
        if self.best.as_ref().is_none_or(|b| h < b.0) {
            self.best = Some((h, ck.step, ck.params.clone()));
            self.since = 0;
        } else {
            self.since += 1;
            if self.since >= self.patience {
                return Err(SaveError::Stop);
            }
        }
        Ok(())
    }
}

struct Trained {
    steps: usize,
    best_step: usize,
    early: bool,
    held_out_loss: f64,
    figures: Option<Figures>,
}
