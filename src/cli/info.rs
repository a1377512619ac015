//! `jghm info`, `jghm clip-loss`, `jghm sufficiency`: the exact information theory of T2-T7.
//!
//! Each command is exact by enumeration when the model is small enough (limits in
//! [`crate::info`]), otherwise Monte Carlo; `--exact` refuses at once when enumeration is too
//! large, `--samples N` forces Monte Carlo. The method is always printed.

use anyhow::Result;
use clap::{Args, ValueEnum};
use serde_json::Value;

use crate::contrastive::{Batch, ClipLossReport};
use crate::eval::ScoreSpec;
use crate::files::load_model;
use crate::info::{self, fixed, Enumeration};
use crate::learn::checkpoint::ModelFile;
use crate::learn::memory::machine_bytes;
use crate::model::{Jghm, Part};
use crate::score::Score;
use crate::sufficiency::{Evaluator, Report, Statistic, SufficiencyError};

/// Monte Carlo sample size when enumeration is too large and `--samples` is not given.
pub const DEFAULT_SAMPLES: usize = 10_000;

/// How to compute: exact, Monte Carlo, or exact when feasible.
#[derive(Args, Debug, Clone)]
pub struct MethodArgs {
    /// Require exact enumeration (refused at once if too large).
    #[arg(long, conflicts_with = "samples")]
    pub exact: bool,
    /// Monte Carlo with this many samples (batches for clip-loss).
    #[arg(long, value_parser = clap::value_parser!(u64).range(2..=100_000_000))]
    pub samples: Option<u64>,
    /// Seed of the Monte Carlo draws (results do not depend on the thread count).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

#[derive(Args, Debug)]
pub struct InfoArgs {
    /// Model file (JSON).
    #[arg(long)]
    pub model: std::path::PathBuf,
    #[command(flatten)]
    pub method: MethodArgs,
}

#[derive(Args, Debug)]
pub struct ClipLossArgs {
    /// Model file (JSON).
    #[arg(long)]
    pub model: std::path::PathBuf,
    /// Batch size K (at least 1), or `inf` for the large-batch loss ℓ_∞.
    #[arg(long)]
    pub batch: String,
    /// Score: pmi | t7 (log-weighted inner product of posteriors) | perturbed:AMP or perturbed:AMP:SEED (PMI plus
    /// a pseudo-random AMP·u(x,y)) | through:STATISTIC (the best score through an image statistic)
    /// | ckpt:PATH (a checkpoint of `jghm train` on this model).
    #[arg(long, default_value = "pmi")]
    pub score: String,
    #[command(flatten)]
    pub method: MethodArgs,
}

/// Which side a statistic reads.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum Side {
    Image,
    Text,
}

#[derive(Args, Debug)]
pub struct SufficiencyArgs {
    /// Model file (JSON).
    #[arg(long)]
    pub model: std::path::PathBuf,
    /// root-posterior | separator-posterior | map-root | masked-posterior:K | first-tokens:K | layer-posterior:D
    #[arg(long)]
    pub statistic: String,
    /// The side the statistic reads (image: Suff_Y(f); text: Suff_X(g)).
    #[arg(long, value_enum, default_value = "image")]
    pub side: Side,
    #[command(flatten)]
    pub method: MethodArgs,
}

fn finite(fields: &[(&str, f64)]) -> Result<()> {
    super::ensure_finite(fields, "a pair of probability zero under the model?")
}

fn print(json: bool, value: &Value, human: impl FnOnce()) {
    if json {
        println!("{value}");
    } else {
        human();
    }
}

/// Whether to enumerate: `--exact` (refused if too large), `--samples` (never), else if feasible.
fn use_exact(model: &Jghm, m: &MethodArgs) -> Result<bool> {
    if m.exact {
        info::exact_work(model)?;
        return Ok(true);
    }
    Ok(m.samples.is_none() && info::exact_work(model).is_ok())
}

fn samples(m: &MethodArgs) -> usize {
    m.samples.map_or(DEFAULT_SAMPLES, |n| n as usize)
}

pub fn run_info(a: &InfoArgs, json: bool) -> Result<()> {
    let model = load_model(&a.model)?;
    let info = if use_exact(&model, &a.method)? {
        info::exact(&Enumeration::new(&model)?)
    } else {
        info::monte_carlo(&model, samples(&a.method), a.method.seed)?
    };
    let rows = info.rows();
    finite(&rows.map(|(n, e)| (n, e.value)))?;
    let out = info.flat_json();
    print(json, &out, || {
        println!("method: {}", info.method);
        for (name, e) in rows {
            match e.stderr > 0.0 {
                true => println!(
                    "{name:<24} {:>16} nats  (stderr {:.3e}, 95% [{:.6}, {:.6}])",
                    fixed(e.value, 12),
                    e.stderr,
                    e.ci95[0],
                    e.ci95[1]
                ),
                false => println!("{name:<24} {:>16} nats", fixed(e.value, 12)),
            }
        }
    });
    Ok(())
}

pub fn run_clip_loss(a: &ClipLossArgs, json: bool) -> Result<()> {
    let file = ModelFile::read(&a.model)?;
    let model = &file.model;
    let batch: Batch = a.batch.parse().map_err(|e: String| anyhow::anyhow!("--batch {e}"))?;
    let exact = use_exact(model, &a.method)?;
    let en = if exact { Some(Enumeration::new(model)?) } else { None };
    let score = a.score.parse::<ScoreSpec>()?.build(&file, machine_bytes())?;
    let (n, seed) = (samples(&a.method), a.method.seed);
    let r = ClipLossReport::exact_or_monte_carlo(model, en.as_ref(), a.method.exact, score.as_ref(), batch, n, seed)?;
    finite(&[("the loss", r.loss.value), ("the optimum", r.optimum.value), ("the excess", r.excess.value)])?;
    let out = r.flat_json(batch, &score.name());
    print(json, &out, || {
        println!("method: {}", r.method);
        println!("score {}, batch {}", score.name(), a.batch);
        println!("L_K(S)      = {}", r.loss.display(12));
        println!("  X->Y      = {}", fixed(r.directions[0], 12));
        println!("  Y->X      = {}", fixed(r.directions[1], 12));
        println!("L_K(PMI)    = {}", r.optimum.display(12));
        println!("excess      = {}", r.excess.display(12));
    });
    Ok(())
}

pub fn run_sufficiency(a: &SufficiencyArgs, json: bool) -> Result<()> {
    let model = load_model(&a.model)?;
    let statistic: Statistic = a.statistic.parse()?;
    let (side, side_name) = match a.side {
        Side::Image => (Part::Image, "image"),
        Side::Text => (Part::Text, "text"),
    };
    Evaluator::new(&model, side, statistic)?;
    let r = match use_exact(&model, &a.method)? {
        true => Report::exact(&model, side, statistic)?,
        false => {
            let (n, seed) = (samples(&a.method), a.method.seed);
            match Report::monte_carlo(&model, side, statistic, n, seed) {
                Err(SufficiencyError::SideTooLarge { .. }) => Report::sampled_fibres(&model, side, statistic, n, seed)?,
                r => r?,
            }
        }
    };
    finite(&[("the sufficiency gap", r.sufficiency), ("I(X; Y)", r.mutual_information)])?;
    let out = serde_json::to_value(&r)?;
    print(json, &out, || {
        println!("method: {}", r.method);
        println!("statistic {statistic} of the {side_name}");
        for key in ["sufficiency", "stderr", "mutual_information", "statistic_information"] {
            println!("{key:<22} {}", fixed(out[key].as_f64().unwrap_or(f64::NAN), 12));
        }
        for (key, v) in [("information_form", r.information_form), ("variational_form", r.variational_form)] {
            if let Some(v) = v {
                println!("{key:<22} {}", fixed(v, 12));
            }
        }
    });
    Ok(())
}
