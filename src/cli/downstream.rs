//! `jghm zero-shot`, `jghm generate`, `jghm diffuse`: the downstream tasks of THEORY §5 with
//! their exact references ([`crate::downstream`]).

use anyhow::{bail, Context, Result};
use clap::Args;
use serde_json::{json, Value};
use std::path::PathBuf;

use crate::downstream::diffusion::{self, Condition, Schedule};
use crate::downstream::generation::{self, Generator, KlSpec, T9Check, ThroughStatistic};
use crate::downstream::labels::Label;
use crate::downstream::zero_shot::{self, Prompts, Spec};
use crate::eval::ScoreSpec;
use crate::evidence::{parse_tokens, Evidence};
use crate::files::load_model;
use crate::info::{self, Estimate};
use crate::learn::checkpoint::ModelFile;
use crate::model::{Jghm, Part};
use crate::score::Score;
use crate::sufficiency::Statistic;

#[derive(Args, Debug)]
pub struct ZeroShotArgs {
    /// Model file (JSON).
    #[arg(long)]
    pub model: PathBuf,
    /// Score: pmi | t7 (the T7 representation) | perturbed:AMP[:SEED] | through:STATISTIC |
    /// ckpt:PATH (a checkpoint of `jghm train` on this model); see `jghm clip-loss --help`.
    #[arg(long, default_value = "pmi")]
    pub score: String,
    /// Label: text-token:J | text-map-root | root | channel:FILE (JSON {"channel": [[p(c|y)..], ..]},
    /// one row per text in mixed-radix order, first token most significant).
    #[arg(long)]
    pub label: String,
    /// Prompts per class (ensemble of exact draws from P(y | c)) [default: --exact when the texts
    /// are enumerable, else 64].
    #[arg(long, conflicts_with = "exact", value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub prompts: Option<u64>,
    /// The exact expectation over prompts (every text enumerated; refused if too many).
    #[arg(long)]
    pub exact: bool,
    /// Test images sampled from p(x) [default: every image weighted by p(x) when enumerable, else 2000].
    #[arg(long, value_parser = clap::value_parser!(u64).range(2..=100_000_000))]
    pub samples: Option<u64>,
    /// Seed of every random draw.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Outer pairs of the Monte Carlo contrastive excess (only when the model is not enumerable).
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u64).range(2..=10_000_000))]
    pub bound_samples: u64,
}

#[derive(Args, Debug)]
pub struct GenerateArgs {
    /// Model file (JSON).
    #[arg(long)]
    pub model: PathBuf,
    /// The image x, comma-separated tokens.
    #[arg(long)]
    pub image: String,
    /// Generator: exact (p(y|x) by BP) | a score as in `--score` of `jghm zero-shot` (Q^S by
    /// resampling) | statistic:NAME
    /// (P(y | f(x)), NAME a statistic of `jghm sufficiency`, image side enumerable).
    #[arg(long, default_value = "exact")]
    pub from: String,
    /// Number of texts to draw.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    pub n: u64,
    /// Seed (the output does not depend on the number of threads).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Pool of draws from p(y) per resampled text (Q^S generators).
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(2..=10_000_000))]
    pub pool: u64,
    /// Also print KL(p(y|x) ‖ generator): exact on enumerable texts, else Monte Carlo with stderr.
    #[arg(long)]
    pub kl: bool,
    /// Draws y ~ p(y|x) of the Monte Carlo KL.
    #[arg(long, default_value_t = 2000, value_parser = clap::value_parser!(u64).range(2..=10_000_000))]
    pub kl_samples: u64,
}

#[derive(Args, Debug)]
pub struct DiffuseArgs {
    /// Model file (JSON).
    #[arg(long)]
    pub model: PathBuf,
    /// The text y, comma-separated tokens.
    #[arg(long)]
    pub text: String,
    /// Reverse steps T of the cosine schedule.
    #[arg(long, default_value_t = 400, value_parser = clap::value_parser!(u64).range(2..=100_000))]
    pub steps: u64,
    /// Number of images to generate (and of exact reference draws).
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    pub samples: u64,
    /// Seed (the output does not depend on the number of threads).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// What the denoiser sees: text | statistic:NAME (g(y), texts enumerable) | none.
    #[arg(long, default_value = "text")]
    pub condition: String,
    /// Print the generated images.
    #[arg(long)]
    pub print_samples: bool,
    /// Check T10 at 8 noise levels of the schedule with this many Monte Carlo pairs each
    /// (needs --condition statistic:NAME and an enumerable model).
    #[arg(long, value_parser = clap::value_parser!(u64).range(2..=10_000_000))]
    pub t10: Option<u64>,
}

/// A score by name ([`ScoreSpec`]).
fn load_score<'m>(file: &'m ModelFile, spec: &str) -> Result<Box<dyn Score + Send + 'm>> {
    Ok(spec.parse::<ScoreSpec>()?.build(file, crate::learn::memory::machine_bytes())?)
}

fn tokens(model: &Jghm, part: Part, text: &str) -> Result<Vec<usize>> {
    let t = parse_tokens(part, text)?;
    let (x, y) = if part == Part::Image { (Some(&t[..]), None) } else { (None, Some(&t[..])) };
    Evidence::tokens(model, x, y)?;
    Ok(t)
}

fn label(model: &Jghm, spec: &str) -> Result<Label> {
    if let Some(path) = spec.strip_prefix("channel:") {
        let text = std::fs::read_to_string(path).with_context(|| format!("cannot read channel file '{path}'"))?;
        #[derive(serde::Deserialize)]
        struct File {
            channel: Vec<Vec<f64>>,
        }
        let file: File = serde_json::from_str(&text).with_context(|| format!("channel file '{path}'"))?;
        let l = Label::Channel(file.channel);
        l.check(model)?;
        return Ok(l);
    }
    let l: Label = spec.parse()?;
    l.check(model)?;
    Ok(l)
}

fn estimate(e: &Estimate) -> Value {
    json!({ "value": e.value, "stderr": e.stderr })
}

fn finite(fields: &[(&str, f64)]) -> Result<()> {
    for (name, v) in fields {
        if !v.is_finite() {
            bail!("{name} is {v}, not a finite number (a class or text of probability zero under the score?)");
        }
    }
    Ok(())
}

pub fn run_zero_shot(a: &ZeroShotArgs, json_out: bool) -> Result<()> {
    let file = ModelFile::read(&a.model)?;
    let score = load_score(&file, &a.score)?;
    let model = &file.model;
    let label = label(model, &a.label)?;
    let texts_enumerable = info::side_size(model, Part::Text) <= info::SIDE_LIMIT;
    let prompts = match (a.exact, a.prompts) {
        (true, _) => Prompts::Exact,
        (false, Some(m)) => Prompts::Ensemble { size: m as usize, seed: a.seed },
        (false, None) if texts_enumerable => Prompts::Exact,
        (false, None) => Prompts::Ensemble { size: 64, seed: a.seed },
    };
    let images_enumerable = info::side_size(model, Part::Image) <= info::SIDE_LIMIT;
    let images = match a.samples {
        Some(n) => Some((n as usize, a.seed)),
        None if images_enumerable => None,
        None => Some((2000, a.seed)),
    };
    let spec = Spec { prompts, images, bound_samples: a.bound_samples as usize };
    let r = zero_shot::evaluate(model, &*score, &label, &spec)?;
    finite(&[
        ("the accuracy", r.accuracy.value),
        ("the log-loss", r.log_loss.value),
        ("the excess log-loss", r.excess_log_loss.value),
        ("the contrastive excess", r.bound.contrastive_excess.value),
    ])?;
    if json_out {
        println!(
            "{}",
            json!({
                "accuracy": r.accuracy.value, "accuracy_stderr": r.accuracy.stderr,
                "bayes_accuracy": r.bayes_accuracy.value, "bayes_accuracy_stderr": r.bayes_accuracy.stderr,
                "log_loss": r.log_loss.value, "log_loss_stderr": r.log_loss.stderr,
                "bayes_log_loss": r.bayes_log_loss.value, "bayes_log_loss_stderr": r.bayes_log_loss.stderr,
                "excess_log_loss": r.excess_log_loss.value, "excess_log_loss_stderr": r.excess_log_loss.stderr,
                "zero_one_excess": estimate(&r.zero_one_excess),
                "bound": r.bound, "label": r.label, "score": r.score, "classes": r.classes, "method": r.method,
            })
        );
        return Ok(());
    }
    let pm = |e: &Estimate| {
        if e.stderr > 0.0 {
            format!("{:.6} ± {:.6}", e.value, e.stderr)
        } else {
            format!("{:.10}", e.value)
        }
    };
    println!("zero-shot, label {} ({} classes), score {}:", r.label, r.classes, r.score);
    println!("  accuracy        {}   Bayes {}", pm(&r.accuracy), pm(&r.bayes_accuracy));
    println!("  log-loss        {}   Bayes {}", pm(&r.log_loss), pm(&r.bayes_log_loss));
    println!("  excess log-loss {}   (E_X KL(P_C|X ‖ P̂_C|X))", pm(&r.excess_log_loss));
    let b = &r.bound;
    println!(
        "  T8: excess log-loss <= eps = {} ; 0-1 excess {} <= sqrt(2 excess log-loss) = {:.6} <= sqrt(2 eps) = {:.6}",
        pm(&b.contrastive_excess),
        pm(&r.zero_one_excess),
        b.zero_one_bound_from_label,
        b.zero_one_bound
    );
    match b.holds {
        Some(h) => println!("  T8 applies; bounds hold: {h}"),
        None => println!("  T8 does not apply (root label or finite prompt ensemble): bounds shown for reference"),
    }
    println!("  method: {}", r.method);
    Ok(())
}

pub fn run_generate(a: &GenerateArgs, json_out: bool) -> Result<()> {
    let file = ModelFile::read(&a.model)?;
    let model = &file.model;
    let x = tokens(model, Part::Image, &a.image)?;
    let mut score = None;
    let mut through = None;
    if let Some(name) = a.from.strip_prefix("statistic:") {
        let st: Statistic = name.parse()?;
        through = Some(ThroughStatistic::new(model, st)?);
    } else if a.from != "exact" {
        score = Some(load_score(&file, &a.from)?);
    }
    let generator = match (&score, &through) {
        (Some(s), _) => Generator::Induced { score: &**s, pool: a.pool as usize },
        (_, Some(t)) => Generator::Statistic(t),
        _ => Generator::Exact,
    };
    let samples = generation::sample(model, &generator, &x, a.n as usize, a.seed)?;
    let mut out = json!({ "generator": generator.name(), "samples": samples });
    if a.kl {
        let spec = KlSpec { samples: a.kl_samples as usize, pool: a.pool as usize, seed: a.seed };
        let d = generation::divergence(model, &generator, &x, &spec)?;
        finite(&[("the divergence", d.kl.value)])?;
        out["kl"] = json!({ "value": d.kl.value, "stderr": d.kl.stderr, "method": d.method });
        if let Some(t9) = T9Check::of(model, &generator)? {
            out["expected_kl"] = json!(t9.expected_kl);
            out["t9_reference"] = json!(t9.t9_reference);
        }
    }
    if json_out {
        println!("{out}");
        return Ok(());
    }
    for y in &samples {
        println!("{}", y.iter().map(|t| t.to_string()).collect::<Vec<_>>().join(","));
    }
    if let Some(kl) = out.get("kl") {
        eprintln!(
            "KL(p(y|x) ‖ {}) = {} ± {} ({})",
            generator.name(),
            kl["value"],
            kl["stderr"],
            kl["method"].as_str().unwrap_or("")
        );
        if let (Some(e), Some(r)) = (out.get("expected_kl"), out.get("t9_reference")) {
            eprintln!("T9: E_X KL = {e}, closed form (T4 excess risk, or Suff_Y(f)) = {r}");
        }
    }
    Ok(())
}

pub fn run_diffuse(a: &DiffuseArgs, json_out: bool) -> Result<()> {
    let model = load_model(&a.model)?;
    let y = tokens(&model, Part::Text, &a.text)?;
    if crate::bp::log_py(&model, &y) == f64::NEG_INFINITY {
        bail!("the text has probability zero under the model, so p(x | y) is undefined");
    }
    let statistic = match a.condition.strip_prefix("statistic:") {
        Some(name) => Some(name.parse::<Statistic>()?),
        None if a.condition == "text" || a.condition == "none" => None,
        None => bail!("unknown condition '{}': use text, statistic:NAME or none", a.condition),
    };
    let cond = match (statistic, a.condition.as_str()) {
        (Some(st), _) => Condition::through(&model, st, &y)?,
        (None, "none") => Condition::None,
        _ => Condition::Text(y.clone()),
    };
    let schedule = Schedule::cosine(a.steps as usize);
    let n = a.samples as usize;
    let generated = diffusion::ddpm(&model, &cond, &schedule, n, a.seed)?;
    let tv_check = diffusion::total_variation_check(&model, &cond, &generated, a.seed)?;
    let enumerable = tv_check.is_some();
    let (tv, tv_ref) = (tv_check.map(|t| t[0]), tv_check.map(|t| t[1]));
    let mut out = json!({
        "tv_to_exact": tv, "tv_reference": tv_ref, "steps": a.steps, "samples": n,
        "condition": a.condition, "schedule": "cosine (Nichol & Dhariwal 2021, s = 0.008), variance preserving",
        "method": if enumerable {
            "TV between the empirical law of the N generated images and the exact p(x | condition) by BP; tv_reference: the same for N exact BP draws"
        } else {
            "the image side is too large to enumerate: no exact TV (tv_to_exact and tv_reference are null)"
        },
    });
    if a.print_samples {
        out["images"] = json!(generated);
    }
    if let Some(m) = a.t10 {
        let st = statistic.context("--t10 needs --condition statistic:NAME")?;
        let rows: Vec<Value> = diffusion::t10_grid(&model, st, &schedule, m as usize, a.seed)?
            .iter()
            .map(|b| {
                let r = &b.level;
                json!({
                    "t": b.step, "alpha": r.level.alpha, "sigma": r.level.sigma,
                    "squared_distance": estimate(&r.squared_distance),
                    "conditional_information": estimate(&r.conditional_information),
                    "bound_information": b.bound_information,
                    "bound_sufficiency": b.bound_sufficiency,
                    "sufficiency": r.sufficiency,
                })
            })
            .collect();
        out["t10"] = json!(rows);
    }
    if json_out {
        println!("{out}");
        return Ok(());
    }
    if a.print_samples {
        for x in &generated {
            println!("{}", x.iter().map(|t| t.to_string()).collect::<Vec<_>>().join(","));
        }
    }
    match (tv, tv_ref) {
        (Some(tv), Some(r)) => println!(
            "DDPM ({} steps, cosine schedule, exact Bayes denoiser by BP), {n} images, condition {}:\n  TV to exact p(x | condition) = {tv:.4}; TV of {n} exact BP draws (noise floor) = {r:.4}",
            a.steps, a.condition
        ),
        _ => println!("{n} images generated ({} steps); the image side is too large for an exact TV", a.steps),
    }
    if let Some(rows) = out.get("t10").and_then(|v| v.as_array()) {
        println!("  T10: E||D - D_g||^2 <= 2 N_X I(X;Y|X_t,G) <= 2 N_X Suff_X(g):");
        for r in rows {
            println!(
                "    t = {:>5}  sigma = {:.4}  {:.6} ± {:.6} <= {:.6} <= {:.6}",
                r["t"],
                r["sigma"].as_f64().unwrap_or(f64::NAN),
                r["squared_distance"]["value"].as_f64().unwrap_or(f64::NAN),
                r["squared_distance"]["stderr"].as_f64().unwrap_or(f64::NAN),
                r["bound_information"].as_f64().unwrap_or(f64::NAN),
                r["bound_sufficiency"].as_f64().unwrap_or(f64::NAN)
            );
        }
    }
    Ok(())
}
