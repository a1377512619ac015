//! `jghm zero-shot`, `jghm generate`, `jghm diffuse`: the downstream tasks of the book, T8-T10 with
//! their exact references ([`crate::downstream`]).

use anyhow::Result;
use clap::Args;
use serde_json::Value;
use std::path::PathBuf;

use crate::downstream::diffusion::{self, DiffuseSpec};
use crate::downstream::generation::{self, Generator, KlSpec, ThroughStatistic};
use crate::downstream::labels::Label;
use crate::downstream::zero_shot::{self, Spec};
use crate::eval::ScoreSpec;
use crate::evidence::parse_checked_tokens;
use crate::files::load_model;
use crate::info::Estimate;
use crate::learn::checkpoint::ModelFile;
use crate::model::Part;
use crate::score::Score;
use crate::sufficiency::Statistic;

#[derive(Args, Debug)]
pub struct ZeroShotArgs {
    /// Model file (JSON).
    #[arg(long)]
    pub model: PathBuf,
    /// Score: pmi | t7 (the T7 representation) | perturbed:AMP or perturbed:AMP:SEED | through:STATISTIC |
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
    /// Refuse a --score ckpt:PATH whose evaluation would need more than this many bytes
    /// [default: the machine's memory].
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub max_memory: Option<u64>,
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

fn finite(fields: &[(&str, f64)]) -> Result<()> {
    super::ensure_finite(fields, "a class or text of probability zero under the score?")
}

pub fn run_zero_shot(a: &ZeroShotArgs, json_out: bool) -> Result<()> {
    let file = ModelFile::read(&a.model)?;
    let budget = a.max_memory.or_else(crate::learn::memory::machine_bytes);
    let score = a.score.parse::<ScoreSpec>()?.build(&file, budget)?;
    let model = &file.model;
    let label = Label::from_spec(&a.label)?;
    let (prompts, images) = (a.prompts.map(|m| m as usize), a.samples.map(|n| n as usize));
    let spec = Spec::with_defaults(model, a.exact, prompts, images, a.seed, a.bound_samples as usize);
    let r = zero_shot::evaluate(model, &*score, &label, &spec)?;
    finite(&[
        ("the accuracy", r.accuracy.value),
        ("the log-loss", r.log_loss.value),
        ("the excess log-loss", r.excess_log_loss.value),
        ("the contrastive excess", r.bound.contrastive_excess.value),
    ])?;
    if json_out {
        println!("{}", r.flat_json());
        return Ok(());
    }
    let pm = |e: &Estimate| e.display(6);
    println!("zero-shot, label {} ({} classes), score {}:", r.label, r.classes, r.score);
    println!("  accuracy        {}   Bayes {}", pm(&r.accuracy), pm(&r.bayes_accuracy));
    println!("  log-loss        {}   Bayes {}", pm(&r.log_loss), pm(&r.bayes_log_loss));
    println!("  excess log-loss {}   (E_X KL(P_C|X ‖ P̂_C|X))", pm(&r.excess_log_loss));
    let b = &r.bound;
    let eps = &b.contrastive_excess;
    if b.applies {
        let sqrt_excess = Estimate::exact(b.zero_one_bound_from_label);
        println!(
            "  T8: excess log-loss {} ≤ ε = {}: {}",
            pm(&r.excess_log_loss),
            pm(eps),
            r.excess_log_loss.at_most(eps)
        );
        println!(
            "  T8: 0-1 excess {} ≤ √(2 excess log-loss) = {:.6}: {}; ≤ √(2ε) = {:.6}",
            pm(&r.zero_one_excess),
            b.zero_one_bound_from_label,
            r.zero_one_excess.at_most(&sqrt_excess),
            b.zero_one_bound
        );
    } else {
        println!(
            "  T8 not applicable (the label is not a channel of the text, or the prompts are a finite ensemble): no inequality is asserted; ε = {} for reference",
            pm(eps)
        );
    }
    println!("  method: {}", r.method);
    Ok(())
}

pub fn run_generate(a: &GenerateArgs, json_out: bool) -> Result<()> {
    let file = ModelFile::read(&a.model)?;
    let model = &file.model;
    let x = parse_checked_tokens(model, Part::Image, &a.image)?;
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
    let kl = a.kl.then_some(KlSpec { samples: a.kl_samples as usize, pool: a.pool as usize, seed: a.seed });
    let r = generation::generate(model, &generator, &x, a.n as usize, a.seed, kl.as_ref())?;
    if let Some(kl) = &r.kl {
        finite(&[("the divergence", kl.value)])?;
    }
    if json_out {
        println!("{}", serde_json::to_value(&r)?);
        return Ok(());
    }
    for y in &r.samples {
        println!("{}", y.iter().map(|t| t.to_string()).collect::<Vec<_>>().join(","));
    }
    let number = |v: f64| Value::from(v);
    if let Some(kl) = &r.kl {
        eprintln!("KL(p(y|x) ‖ {}) = {} ± {} ({})", r.generator, number(kl.value), number(kl.stderr), kl.method);
        if let (Some(e), Some(t9)) = (r.expected_kl, r.t9_reference) {
            eprintln!("T9: E_X KL = {}, closed form (T4 excess risk, or Suff_Y(f)) = {}", number(e), number(t9));
        }
    }
    Ok(())
}

pub fn run_diffuse(a: &DiffuseArgs, json_out: bool) -> Result<()> {
    let model = load_model(&a.model)?;
    let spec = DiffuseSpec {
        text: parse_checked_tokens(&model, Part::Text, &a.text)?,
        condition: a.condition.parse()?,
        condition_name: a.condition.clone(),
        steps: a.steps as usize,
        samples: a.samples as usize,
        seed: a.seed,
        keep_images: a.print_samples,
        t10: a.t10.map(|m| m as usize),
    };
    let r = diffusion::diffuse(&model, &spec)?;
    if json_out {
        println!("{}", serde_json::to_value(&r)?);
        return Ok(());
    }
    for x in r.images.iter().flatten() {
        println!("{}", x.iter().map(|t| t.to_string()).collect::<Vec<_>>().join(","));
    }
    let n = r.samples;
    match (r.tv_to_exact, r.tv_reference) {
        (Some(tv), Some(floor)) => println!(
            "DDPM ({} steps, cosine schedule, exact Bayes denoiser by BP), {n} images, condition {}:\n  TV to exact p(x | condition) = {tv:.4}; TV of {n} exact BP draws (noise floor) = {floor:.4}",
            a.steps, a.condition
        ),
        _ => println!("{n} images generated ({} steps); the image side is too large for an exact TV", a.steps),
    }
    if let Some(rows) = &r.t10 {
        println!("  T10: E||D - D_g||^2 <= 2 N_X I(X;Y|X_t,G) <= 2 N_X Suff_X(g) (Monte Carlo ± one standard error):");
        for row in rows {
            let d = &row.squared_distance;
            let distance = Estimate { value: d.value, stderr: d.stderr, ci95: [f64::NAN; 2] };
            let bound =
                Estimate { value: row.bound_information, stderr: row.bound_information_stderr, ci95: [f64::NAN; 2] };
            println!(
                "    t = {}  sigma = {:.4}  {} <= {}: {}; <= {:.6} (exact): {}",
                row.t,
                row.sigma,
                distance.display(6),
                bound.display(6),
                distance.at_most(&bound),
                row.bound_sufficiency,
                bound.at_most(&Estimate::exact(row.bound_sufficiency)),
            );
        }
    }
    Ok(())
}
