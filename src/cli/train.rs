//! `jghm train`: trains a learned pair by the CLIP loss and writes safetensors checkpoints.
//! The loop, the data and the checkpoint format live in [`crate::learn`]; this file parses,
//! dispatches on the class, draws the progress bar and writes files atomically.

use anyhow::{bail, Context, Result};
use clap::Args;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::files::write_atomic;
use crate::learn::checkpoint::{check_tensors, resume_config, Checkpoint, CheckpointError, ModelFile};
use crate::learn::data::Data;
use crate::learn::train::{train_reporting_selection, Run, SaveError, StepReport};
use crate::learn::{with_encoders, CheckedConfig, Class, ClipPair, Encoder, Real, TrainConfig, WithEncoders};
use crate::model::{Jghm, Part};

#[derive(Args, Debug)]
pub struct TrainArgs {
    /// Model file (JSON) whose pairs are the training data.
    #[arg(long)]
    pub model: PathBuf,
    /// Encoder class.
    #[arg(long, value_enum)]
    pub class: Option<Class>,
    /// Configuration file (JSON, fields of learn::TrainConfig; missing fields take the class's defaults).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Total optimisation steps (also the horizon of the cosine schedule) [default: the config's].
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=100_000_000))]
    pub steps: Option<u64>,
    /// Stop after this many seconds (checkpointing first), whichever of --steps and this comes first.
    #[arg(long)]
    pub max_seconds: Option<f64>,
    /// Train on a fixed data set of this many sampled pairs (epochs, 10% held out) instead of fresh pairs every step.
    #[arg(long, value_parser = clap::value_parser!(u64).range(2..=100_000_000))]
    pub n: Option<u64>,
    /// Seed of the parameters and of every batch.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Checkpoint file (safetensors), written periodically and atomically.
    #[arg(long)]
    pub out: PathBuf,
    /// Continue the interrupted run whose checkpoint is --out (same model, seed and configuration).
    #[arg(long)]
    pub resume: bool,
    /// Refuse a run that would need more than this many bytes [default: the machine's memory].
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub max_memory: Option<u64>,
}

/// The configuration of a run: the class's defaults, overridden by the file, then the flags.
fn configure(a: &TrainArgs) -> Result<TrainConfig> {
    let mut cfg = match &a.config {
        Some(path) => TrainConfig::from_file(path, a.class)?,
        None => TrainConfig::for_class(a.class.unwrap_or(Class::Transformer)),
    };
    if let Some(class) = a.class {
        cfg.class = class;
    }
    if let Some(steps) = a.steps {
        cfg.schedule.steps = steps as usize;
    }
    if let Some(n) = a.n {
        cfg.n = Some(n as usize);
    }
    Ok(cfg)
}

pub fn run(a: &TrainArgs, json_out: bool) -> Result<()> {
    let model = ModelFile::read(&a.model)?;
    if let Some(t) = a.max_seconds {
        if !(t.is_finite() && t > 0.0) {
            bail!("--max-seconds must be a positive number of seconds");
        }
    }
    let mut cfg = configure(a)?;
    let budget = a.max_memory.or_else(crate::learn::memory::machine_bytes);
    let resume_bytes = if a.resume {
        let b =
            std::fs::read(&a.out).with_context(|| format!("--resume: cannot read checkpoint '{}'", a.out.display()))?;
        let flags = a.config.is_some() || a.steps.is_some() || a.n.is_some();
        cfg = resume_config(&b, &model.sha256, cfg, flags, a.class).map_err(|e| match e {
            CheckpointError::ModelMismatch { .. } | CheckpointError::ResumeConfig => anyhow::Error::from(e),
            e => anyhow::Error::from(e).context(format!("--resume: '{}'", a.out.display())),
        })?;
        Some(b)
    } else {
        None
    };
    let cfg = cfg.check_within(&model.model, budget)?;
    if let Some(b) = &resume_bytes {
        check_tensors(b, &cfg, &model.model).with_context(|| format!("--resume: '{}'", a.out.display()))?;
    }
    let ctx = Ctx {
        model: &model.model,
        cfg: &cfg,
        hash: model.sha256.clone(),
        args: a,
        json: json_out,
        resume: resume_bytes,
    };
    with_encoders(&cfg, &model.model, ctx)
}

struct Ctx<'a> {
    model: &'a Jghm,
    cfg: &'a CheckedConfig,
    hash: String,
    args: &'a TrainArgs,
    json: bool,
    resume: Option<Vec<u8>>,
}

impl WithEncoders for Ctx<'_> {
    type Output = Result<()>;
    fn run<R: Real, E: Encoder<R> + 'static>(self, make: &dyn Fn(Part) -> E) -> Result<()> {
        let pair = ClipPair::new(make(Part::Image), make(Part::Text), self.cfg.head(self.model), self.cfg.scheme);
        self.go(pair)
    }
}

impl Ctx<'_> {
    fn go<R: Real, E: Encoder<R>>(&self, mut pair: ClipPair<R, E>) -> Result<()> {
        let a = self.args;
        let start = match &self.resume {
            Some(b) => {
                let ck = Checkpoint::<R>::from_bytes(b).with_context(|| format!("--resume: '{}'", a.out.display()))?;
                ck.check_model(&self.hash)?;
                if ck.seed != a.seed {
                    bail!("--resume: the checkpoint was trained with --seed {}, not {}", ck.seed, a.seed);
                }
                Some(ck)
            }
            None => None,
        };
        let mut data = match self.cfg.n {
            Some(n) => Data::fixed(self.model, n, self.cfg.holdout, a.seed),
            None => Data::Fresh { model: self.model, seed: a.seed },
        };
        let run = Run {
            config: self.cfg,
            seed: a.seed,
            model_sha256: self.hash.clone(),
            steps: self.cfg.schedule.steps,
            max_seconds: a.max_seconds,
        };
        let mut bar = super::progress::Progress::new(crate::learn::train::run_work(&run) as u64, "train");
        let t0 = Instant::now();
        let mut last = None;
        let mut progress = |r: &StepReport| {
            bar.set_message(format!(
                "loss {:.4}  {} pairs/s  lr {:.2e}",
                r.loss,
                super::grouped(r.pairs_per_second),
                r.lr
            ));
            bar.set_position(r.done as u64);
            last = Some(*r);
        };
        let out: &Path = &a.out;
        let mut save = |ck: &Checkpoint<R>| write_atomic(out, &ck.to_bytes()).map_err(SaveError::from);
        let (ck, selection) = train_reporting_selection(&mut pair, &mut data, &run, start, &mut progress, &mut save)?;
        bar.finish();
        let seconds = t0.elapsed().as_secs_f64();
        let pps = last.map_or(0.0, |r| r.pairs_per_second);
        if self.json {
            println!(
                "{}",
                json!({
                    "steps": ck.step, "train_loss": finite_or_null(ck.train_loss), "held_out_loss": ck.held_out_loss,
                    "pairs_per_second": pps, "seconds": seconds, "checkpoint": out.display().to_string(),
                    "class": self.cfg.class, "parameters": ck.params.len(),
                    "restart_losses": selection.as_ref().map(|s| s.losses.clone()),
                    "restart_chosen": selection.as_ref().map(|s| s.index),
                })
            );
        } else {
            if let Some(s) = &selection {
                let losses: Vec<String> = s.losses.iter().map(|l| format!("{l:.4}")).collect();
                println!(
                    "restarts: {} candidates of {} steps, selection losses [{}]; continued candidate {}",
                    s.losses.len(),
                    self.cfg.restart_steps.min(run.steps),
                    losses.join(", "),
                    s.index
                );
            }
            println!(
                "trained {:?} for {} steps in {seconds:.1} s ({} pairs/s): train loss {:.4}{}; checkpoint '{}'",
                self.cfg.class,
                ck.step,
                super::grouped(pps),
                ck.train_loss,
                ck.held_out_loss.map_or(String::new(), |h| format!(", held-out loss {h:.4}")),
                out.display()
            );
        }
        Ok(())
    }
}

fn finite_or_null(x: f64) -> serde_json::Value {
    if x.is_finite() {
        json!(x)
    } else {
        serde_json::Value::Null
    }
}
