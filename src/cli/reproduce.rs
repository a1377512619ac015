//! `jghm reproduce risks|prompts|ood`: the paper's simulations (the book, Reproducing the paper). Parses, calls
//! [`crate::reproduce::run`] and [`crate::plot::reproduce`], prints.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Result;
use clap::{Args, Subcommand};
use serde_json::json;

use crate::learn::Products;
use crate::plot::reproduce::{draw_figures, PromptFits};
use crate::reproduce::experiments::Family;
use crate::reproduce::experiments::Row;
use crate::reproduce::learned::{ClipLr, EncoderForm, HeadSizes, LearnedClass, Negatives, Protocol, Steps};
use crate::reproduce::published::{compare, comparison_table, Comparison};
use crate::reproduce::run::{run as run_figure, table, Figure, Options, Vary};
use crate::runs::Shard;

pub const REPRODUCE_HELP: &str = "Model: the standard random family as in the paper: both towers 4 levels x 3 children
(81 tokens), 10 states, uniform root, scale 1, flip ε on both towers; model seeds 1..=k (the
draws are shared across ε). --family paper: the paper's own tree instead (its generator, NumPy's
legacy RandomState seeded 42, text tower first; model seed 42), with each Bayes value printed next
to the paper's published one; --models PATTERN: user files, one per flip ({flip} in the path);
ood --vary image|text: one tower's flip varies, the other stays at 0.2. Risks in the paper's conventions: CLIP = l_4(X->Y) + l_4(Y->X) (sum,
K = 4); zero-shot = cross-entropy of the first text token (score classifiers: 32 prompts per
class in risks/ood); denoising = squared error summed over the 81 image leaves (σ = 1);
vision-language = next-token cross-entropy averaged over text positions 2..81.
Default samples give Bayes standard errors below 0.005 at every flip (denoising: 10^6 pairs
with an unbiased control variate; --quick: a tenth of each, standard errors about 3x larger).
Writes DIR/<command>.csv (every number; rewritten after each point, so --resume continues),
DIR/<command>.{svg,png} and DIR/<command>-settings.json (checked by --resume).

Examples:
  jghm reproduce risks --bayes-only --out plots/reproduce
  jghm reproduce risks --flips 0.2 --budget-seconds 120 --out run
  jghm reproduce prompts --prompts 1,2,4,8,16,32,64 --bayes-only --out run
  jghm reproduce ood --quick --budget-seconds 60 --out run --json
  jghm reproduce risks --out run --resume
  jghm reproduce risks --bayes-only --family paper --flips 0.02,0.2,0.4 --out run
  jghm reproduce ood --bayes-only --family paper --vary image --out run";

#[derive(Subcommand, Debug)]
pub enum ReproduceCommand {
    /// The four risks against ε for Bayes and each learned class (the paper's Fig. 2).
    #[command(after_help = REPRODUCE_HELP)]
    Risks(ReproduceArgs),
    /// Zero-shot risk against the number of prompts M, with fits a + b/M (Figs. 5-6).
    #[command(after_help = REPRODUCE_HELP)]
    Prompts(ReproduceArgs),
    /// Out of distribution: predictors built at ε = 0.2, evaluated at every ε (Figs. 8-9).
    #[command(after_help = REPRODUCE_HELP)]
    Ood(ReproduceArgs),
}

#[derive(Args, Debug)]
pub struct ReproduceArgs {
    /// Flips ε, comma-separated [default: 0.02,0.04,...,0.40; prompts: 0.2].
    #[arg(long, value_delimiter = ',')]
    pub flips: Option<Vec<f64>>,
    /// Only the Bayes predictors (and mis-specified BP for ood, the exact score for prompts).
    #[arg(long)]
    pub bayes_only: bool,
    /// Learned classes, comma-separated (joint: the paper's Joint Training, denoising and vision-language only; not in the prompts figure).
    #[arg(long, value_delimiter = ',', default_value = "standard,shallow,guided,joint")]
    pub classes: Vec<LearnedClass>,
    /// Model seeds 1..=k (the spread over them is shown).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=100))]
    pub seeds: u64,
    /// Reduced grid (ε = 0.02, 0.1, 0.2, 0.3, 0.4; a tenth of the samples; halved training batches).
    #[arg(long)]
    pub quick: bool,
    /// Monte Carlo samples of every task (batches of 4 pairs for CLIP, images for zero-shot, pairs otherwise).
    #[arg(long, value_parser = clap::value_parser!(u64).range(2..=100_000_000))]
    pub samples: Option<u64>,
    /// Monte Carlo samples of every task for the learned predictors [default: 2000, 1024, 2000, 1000; --quick: 200, 256, 200, 200].
    #[arg(long, value_parser = clap::value_parser!(u64).range(2..=100_000_000))]
    pub learned_samples: Option<u64>,
    /// Wall-time budget of one learned model (CLIP encoders and both heads), seconds.
    #[arg(long, default_value_t = 120.0)]
    pub budget_seconds: f64,
    /// Numbers of prompts per class for the prompts figure, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1,2,4,8,16,32,64,128")]
    pub prompts: Vec<usize>,
    /// The paper's grid of prompts per class for the prompts figure, M = 5, 10, ..., 250 (replaces --prompts).
    #[arg(long)]
    pub paper_prompts: bool,
    /// Base seed of the Monte Carlo draws.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Output folder.
    #[arg(long, default_value = "reproduce")]
    pub out: PathBuf,
    /// Continue an interrupted run in --out (same settings): finished points are kept.
    #[arg(long)]
    pub resume: bool,
    /// Model family: standard (seeds 1..=k) or paper (the paper's own draw, np.random.seed(42), compared with its published Bayes values).
    #[arg(long, default_value = "standard", value_parser = ["standard", "paper"], conflicts_with = "models")]
    pub family: String,
    /// User model files, one per flip: a path with {flip} for the flip (e.g. models/m-{flip}.json).
    #[arg(long)]
    pub models: Option<String>,
    /// ood only: the tower whose flip varies, the other fixed at 0.2 (image: denoising of Fig. 9; text: vision-language).
    #[arg(long, default_value = "both", value_parser = ["both", "image", "text"])]
    pub vary: String,
    /// Run one shard of the points (model seed, flip), seeds the outer loop, K/N (1 <= K <= N): unit i of the unsharded run belongs to
    /// shard i mod N + 1. Combine the N shard folders with `jghm merge OUT DIR..`.
    #[arg(long, value_name = "K/N")]
    pub shard: Option<Shard>,
    /// Negatives of the learned models' CLIP loss: K (K − 1 independent negatives per positive and direction, the two directions sharing the positives; the paper's K is 4), K-split (each direction with its own positives), paper (4-split, the paper's batches), or in-batch.
    #[arg(long, default_value = "4")]
    pub negatives: Negatives,
    /// Sizes of the learned heads: small (2 blocks of width 64, batch 64) or paper (9 blocks of width 128 / 256, batch 128).
    #[arg(long, value_enum, default_value_t = HeadSizes::Small)]
    pub heads: HeadSizes,
    /// How the learned models' blocks multiply: exact (f32) or bf16 (BF16 inputs, f32 sums; a CPU with AVX512_BF16).
    #[arg(long, value_enum, default_value_t = Products::Exact)]
    pub products: Products,
    /// Peak learning rate of the CLIP encoders, cosine to a thousandth of it: a rate in (0, 1] for every class (ours: 3e-4), or paper (the paper's figure runs: 3e-4 for standard and shallow, 1e-3 for guided).
    #[arg(long, default_value = "3e-4", value_name = "LR")]
    pub clip_lr: ClipLr,
    /// How the CLIP encoders are built: ours (GPT-2's block, 4 heads, mean pool) or paper (the paper's EncoderTransformer: no qkv biases, no attention output projection, no final LayerNorm, 1 head, learned pool, N(0, 1) embeddings).
    #[arg(long, value_enum, default_value_t = EncoderForm::Ours)]
    pub encoder: EncoderForm,
    /// The CLIP encoders' gradient clipping: the largest norm of the gradient of our loss, the mean of the two directions' (ours: 1; the paper's 1.0 on its summed loss is 0.5 here).
    #[arg(long, default_value_t = 1.0, value_name = "NORM")]
    pub clip_max_norm: f64,
    /// Fixed step counts CLIP,DENOISER,NEXT-TOKEN instead of --budget-seconds (the paper's: 3000,30000,30000); the run is then fixed by steps.
    #[arg(long, value_delimiter = ',', num_args = 1, value_parser = clap::value_parser!(usize), conflicts_with = "budget_seconds")]
    pub steps: Option<Vec<usize>>,
    /// With --steps: stop after this many wall seconds, the current training's checkpoint saved in OUT/FIGURE-checkpoints, for --resume to continue (a job with a time limit; no number depends on it).
    #[arg(long, requires = "steps", value_name = "SECONDS")]
    pub stop_after: Option<f64>,
}

pub fn run(c: &ReproduceCommand, json_out: bool) -> Result<()> {
    let (figure, a) = match c {
        ReproduceCommand::Risks(a) => (Figure::Risks, a),
        ReproduceCommand::Prompts(a) => (Figure::Prompts, a),
        ReproduceCommand::Ood(a) => (Figure::Ood, a),
    };
    let t0 = Instant::now();
    if let Some(steps) = &a.steps {
        if steps.len() != 3 || steps.iter().any(|&n| !(1..=10_000_000).contains(&n)) {
            anyhow::bail!("--steps takes three counts CLIP,DENOISER,NEXT-TOKEN, each from 1 to 10000000 (the paper's: 3000,30000,30000)");
        }
    }
    if a.stop_after.is_some_and(|s| !(s.is_finite() && s > 0.0)) {
        anyhow::bail!("--stop-after takes a positive number of seconds");
    }
    if !(a.clip_max_norm.is_finite() && a.clip_max_norm > 0.0) {
        anyhow::bail!(
            "--clip-max-norm takes a positive gradient norm (ours: 1; the paper's: 0.5), got {}",
            a.clip_max_norm
        );
    }
    let options = Options {
        flips: a.flips.clone(),
        bayes_only: a.bayes_only,
        classes: a.classes.clone(),
        seeds: a.seeds,
        quick: a.quick,
        samples: a.samples.map(|n| n as usize),
        learned_samples: a.learned_samples.map(|n| n as usize),
        budget_seconds: a.budget_seconds,
        prompts: if a.paper_prompts { crate::reproduce::experiments::paper_prompts() } else { a.prompts.clone() },
        seed: a.seed,
        out: a.out.clone(),
        resume: a.resume,
        family: match (&a.models, a.family.as_str()) {
            (Some(pattern), _) => Family::Files(pattern.clone()),
            (None, "paper") => Family::Paper,
            (None, _) => Family::Standard,
        },
        vary: match a.vary.as_str() {
            "image" => Vary::Image,
            "text" => Vary::Text,
            _ => Vary::Both,
        },
        shard: a.shard,
        protocol: Protocol {
            negatives: a.negatives,
            heads: a.heads,
            products: a.products,
            clip_lr: a.clip_lr,
            encoder: a.encoder,
            clip_max_norm: a.clip_max_norm,
        },
        steps: a.steps.as_ref().map(|v| Steps { clip: v[0], denoiser: v[1], next_token: v[2] }),
        stop_after_seconds: a.stop_after,
    };
    let outcome = run_figure(figure, &options, &mut |line| eprintln!("{line}"))?;
    if let Some(shard) = a.shard {
        let (dir, name, rows) = (a.out.display(), figure.name(), outcome.rows.len());
        eprintln!("shard {shard}: {rows} rows in {dir}/{name}.csv; `jghm merge` of all shards draws the figure");
        return Ok(());
    }
    let fits = draw_figures(figure, &options, &outcome)?;
    let comparisons = match (options.family, figure, options.vary) {
        (Family::Paper, Figure::Risks, Vary::Both) => compare(&outcome.rows),
        _ => vec![],
    };
    report(figure, a, &outcome.rows, &fits, &comparisons, json_out, t0.elapsed().as_secs_f64());
    Ok(())
}

/// Prints the rows of a merged run and the figure's fits (a shorter report than a run's).
pub fn report_merged(figure: Figure, out: &std::path::Path, rows: &[Row], fits: &PromptFits, json_out: bool) {
    if json_out {
        let fits: Vec<_> = fits
            .iter()
            .map(|(m, a, b, r, from)| json!({ "model": m, "a": a, "b": b, "rms": r, "fit_from_m": from }))
            .collect();
        println!(
            "{}",
            json!({ "figure": figure.name(), "rows": rows, "fits": fits, "out": out.display().to_string() })
        );
        return;
    }
    print!("{}", table(rows));
    println!("Wrote {0}/{1}.csv and {0}/{1}.png (+ .svg).", out.display(), figure.name());
}

fn report(
    figure: Figure,
    a: &ReproduceArgs,
    rows: &[Row],
    fits: &PromptFits,
    comparisons: &[Comparison],
    json_out: bool,
    wall: f64,
) {
    if json_out {
        let fits: Vec<_> = fits
            .iter()
            .map(|(m, a, b, r, from)| json!({ "model": m, "a": a, "b": b, "rms": r, "fit_from_m": from }))
            .collect();
        let mut out = json!({ "rows": rows, "fits": fits, "out": a.out.display().to_string(), "wall_seconds": wall });
        if !comparisons.is_empty() {
            out["paper_comparison"] = comparisons.iter().map(Comparison::to_json).collect();
        }
        println!("{out}");
        return;
    }
    print!("{}", table(rows));
    for (m, a_, b, rms, from) in fits {
        println!("fit {m}: risk ≈ a + b/M over M ≥ {from}, a = {a_:.5}, b = {b:.5} (least squares; rms residual {rms:.2e}; points share prompts, no interval claimed)");
    }
    let bayes = rows.iter().filter(|r| r.model == "bayes");
    if let Some(worst) = bayes.max_by(|x, y| x.stderr.total_cmp(&y.stderr)) {
        println!("Largest Bayes standard error: {:.5} ({} at ε = {}).", worst.stderr, worst.task, worst.flip);
    }
    println!("Wrote {0}/{1}.csv and {0}/{1}.png (+ .svg) in {wall:.1} s.", a.out.display(), figure.name());
    if !comparisons.is_empty() {
        println!("Bayes risks on the paper's tree next to its published values (themselves Monte Carlo estimates):");
        print!("{}", comparison_table(comparisons));
    }
}
