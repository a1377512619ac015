//! `jghm eval`: a trained checkpoint measured against the exact ground truth ([`crate::eval`]).

use anyhow::Result;
use clap::Args;
use std::path::PathBuf;

use crate::eval::exact::{self, checkpoint_spec, evaluate_exact};
use crate::eval::{checkpoint_score, evaluate, finite_k_losses, report_json, training_k, EvalSpec, Learned};
use crate::info::{Enumeration, Estimate};
use crate::learn::checkpoint::{CheckpointFile, ModelFile};
use crate::learn::TrainConfig;
use crate::model::Jghm;

#[derive(Args, Debug)]
pub struct EvalArgs {
    /// The model file the checkpoint was trained on (its SHA-256 must match the checkpoint's).
    #[arg(long)]
    pub model: PathBuf,
    /// Checkpoint written by `jghm train`.
    #[arg(long, required_unless_present = "scores", conflicts_with = "scores")]
    pub checkpoint: Option<PathBuf>,
    /// Instead of a checkpoint, scores of an encoder trained elsewhere (safetensors, .npy, .npz,
    /// or the JSON of `jghm scores`): a matrix `scores` [|X|, |Y|] over every image and text of
    /// an enumerable model, or `image_embeddings` [N, p] and `text_embeddings` [N, p] of the rows
    /// of `images` and `texts` (in the file, or in --set). Exact where the model is enumerable
    /// and every sequence is given; else Monte Carlo on the rows as pairs of an exported set.
    #[arg(long)]
    pub scores: Option<PathBuf>,
    /// The exported set (`jghm export`) whose `images`, `texts` (and `roots`) the embeddings in
    /// --scores are of, in the same row order.
    #[arg(long, requires = "scores")]
    pub set: Option<PathBuf>,
    /// How embeddings make a score [default: the file's "score" metadata, else dot].
    #[arg(long, requires = "scores", value_parser = ["dot", "cosine"])]
    pub similarity: Option<String>,
    /// The factor of the similarity [default: the file's `logit_scale`, else 1].
    #[arg(long, requires = "scores", allow_negative_numbers = true)]
    pub logit_scale: Option<f64>,
    /// The batch size K of the finite-K loss of imported scores.
    #[arg(long, default_value_t = 4, requires = "scores", value_parser = clap::value_parser!(u64).range(2..=1024))]
    pub k: u64,
    /// Pairs per block of the Monte Carlo excess risk of imported embeddings (each pair's
    /// negatives are the other pairs of its block).
    #[arg(long, default_value_t = 1024, requires = "scores", value_parser = clap::value_parser!(u64).range(2..=8192))]
    pub block: u64,
    /// Outer pairs of the Monte Carlo estimate of the large-batch excess risk.
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u64).range(2..=10_000_000))]
    pub samples: u64,
    /// Test images of the zero-shot task.
    #[arg(long, default_value_t = 2000, value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    pub images: u64,
    /// Prompts per class of the zero-shot task.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub prompts: u64,
    /// Batches of the finite-K loss at the training K (its Monte Carlo estimate and the PMI's).
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u64).range(2..=1_000_000))]
    pub batches: u64,
    /// Seed of every Monte Carlo draw.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Exact evaluation by enumeration of every image and text (refused, with the size, on a
    /// model too large to enumerate): the same keys with standard errors 0, plus the full exact
    /// report under "exact".
    #[arg(long)]
    pub exact: bool,
    /// Refuse a checkpoint whose run would need more than this many bytes [default: the machine's memory].
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub max_memory: Option<u64>,
}

const DEGENERATE: &str = "the learned score is degenerate";

pub fn run(a: &EvalArgs, json_out: bool) -> Result<()> {
    if let Some(scores) = &a.scores {
        return run_imported(a, scores, json_out);
    }
    let checkpoint = a.checkpoint.as_ref().expect("clap requires --checkpoint without --scores");
    let budget = a.max_memory.or_else(crate::learn::memory::machine_bytes);
    let (model, file) = CheckpointFile::load(&a.model, checkpoint, budget)?;
    let model = &model.model;
    let cfg = file.config.clone();
    let spec = EvalSpec {
        samples: a.samples as usize,
        zero_shot_images: a.images as usize,
        prompts: a.prompts as usize,
        grid: 64,
        seed: a.seed,
    };
    let k = training_k(&cfg);
    let learned = checkpoint_score(model, &file)?;
    if a.exact {
        return run_exact(model, &*learned.score, learned.step, &cfg, k, json_out);
    }
    let (score, step) = (&*learned.score, learned.step);
    let finite = finite_k_losses(model, score, k, a.batches as usize, crate::rng::Purpose::EvalFiniteK.seed(a.seed))?;
    let r = evaluate(model, score, &spec)?;
    let fields = [
        ("excess_risk", r.excess_risk),
        ("pmi_correlation", r.pmi_correlation),
        ("excess_risk_stderr", r.excess_risk_stderr),
        ("finite_k_loss", finite.loss.value),
        ("finite_k_optimum", finite.optimum.value),
    ];
    super::ensure_finite(&fields, DEGENERATE)?;
    if json_out {
        println!("{}", report_json(&r, &finite, cfg.class, step));
    } else {
        println!("{:?} after {step} steps, measured against the exact ground truth:", cfg.class);
        println!(
            "  excess risk (l_inf(S) - l_inf(PMI), CLIP average)   {:.4} ± {:.4} nats",
            r.excess_risk, r.excess_risk_stderr
        );
        println!(
            "  T5 bounds: Suff_Y(f) <= {:.4} ± {:.4}, Suff_X(g) <= {:.4} ± {:.4}",
            r.sufficiency_bound_image,
            r.excess_risk_image_to_text.stderr,
            r.sufficiency_bound_text,
            r.excess_risk_text_to_image.stderr
        );
        println!(
            "  zero-shot accuracy on the root label: learned {:.3}, exact PMI {:.3}, Bayes {:.3} (± {:.3})",
            r.zero_shot_accuracy, r.oracle_zero_shot_accuracy, r.bayes_accuracy, r.accuracy_stderr
        );
        println!(
            "  CLIP loss at the training K = {}: {:.4} ± {:.4}; optimum L_K(PMI) {:.4} ± {:.4}; excess {:.4} ± {:.4}",
            finite.k,
            finite.loss.value,
            finite.loss.stderr,
            finite.optimum.value,
            finite.optimum.stderr,
            finite.excess.value,
            finite.excess.stderr
        );
        println!("  correlation with the PMI: {:.4}", r.pmi_correlation);
        println!("  method: {}", r.method);
    }
    Ok(())
}

/// `eval --exact`: the exact report ([`crate::eval::exact`]); the finite-K figures at the
/// training `K` are exact when its composition sum is within the work limit, else omitted
/// (named in `finite_k_method`).
fn run_exact(
    model: &Jghm,
    learned: &dyn Learned,
    step: usize,
    cfg: &TrainConfig,
    k: usize,
    json_out: bool,
) -> Result<()> {
    let en = Enumeration::new(model)?;
    let spec = checkpoint_spec(&en, k);
    let r = evaluate_exact(model, learned, &spec)?;
    super::ensure_finite(&[("excess_risk", r.excess_risk)], DEGENERATE)?;
    if !json_out {
        print_exact(&r, &format!("{:?} after {step} steps", cfg.class));
        return Ok(());
    }
    println!("{}", exact::report_json(&r, cfg.class, step, k));
    Ok(())
}

/// The text form of an exact report, headed by what was evaluated.
fn print_exact(r: &exact::ExactReport, what: &str) {
    println!("{what}, evaluated exactly ({} images, {} texts):", r.images, r.texts);
    for d in [&r.image_to_text, &r.text_to_image] {
        println!(
            "  {:?}: l_inf(S) {:.6}, l_inf(PMI) {:.6}, excess {:.6}; KL of Q^S {:.6}; Suff of the embedding {:.6} ({} level sets)",
            d.direction, d.loss, d.optimum, d.excess, d.generator_kl, d.statistic.sufficiency.kl_form, d.statistic.sufficiency.classes
        );
    }
    for z in &r.zero_shot {
        println!(
            "  zero-shot {}: accuracy {:.4} (Bayes {:.4}), excess log-loss {:.6}",
            z.label, z.accuracy.value, z.bayes_accuracy.value, z.excess_log_loss.value
        );
    }
    let (gap, bound) = (Estimate::exact(r.denoising.pure_noise_gap), Estimate::exact(r.denoising.bound));
    println!("  T10: pure-noise denoising gap {} <= {}: {}", gap.display(6), bound.display(6), gap.at_most(&bound));
    println!("  method: {}", r.method);
}

/// `eval --scores`: imported scores, exactly where the model is enumerable and every sequence is
/// given, else Monte Carlo on the rows as pairs ([`crate::eval::imported`]).
fn run_imported(a: &EvalArgs, path: &std::path::Path, json_out: bool) -> Result<()> {
    use crate::eval::imported::{evaluate, read_roots, read_scores, ImportSpec, ImportedReport, PairsSpec};
    let file = ModelFile::read(&a.model)?;
    let model = &file.model;
    let similarity = a.similarity.as_deref().map(|s| s.parse().expect("clap checks the value"));
    let score = read_scores(model, &file.sha256, path, a.set.as_deref(), similarity, a.logit_scale)?;
    let roots = read_roots(a.set.as_deref().unwrap_or(path), score.images.len(), model.root_states())?;
    let k = a.k as usize;
    let spec = ImportSpec {
        k,
        pairs: PairsSpec { block: a.block as usize, k, prompts: a.prompts as usize },
        require_exact: a.exact,
    };
    let report = evaluate(model, &score, roots.as_deref(), &spec)?;
    super::ensure_finite(&[("excess_risk", report.excess_risk())], DEGENERATE)?;
    if json_out {
        println!("{}", report.to_json(&score, k));
        return Ok(());
    }
    match &report {
        ImportedReport::Exact(r) => print_exact(r, &format!("imported {}", score.form)),
        ImportedReport::Pairs(r) => {
            let e = &r.report;
            println!("imported {} on {} pairs, measured against the exact ground truth:", score.form, r.pairs);
            println!("  excess risk (CLIP average)   {:.4} ± {:.4} nats", e.excess_risk, e.excess_risk_stderr);
            println!(
                "  image->text {} (T5 bound on Suff_Y(f)), text->image {} (on Suff_X(g))",
                e.excess_risk_image_to_text.display(4),
                e.excess_risk_text_to_image.display(4)
            );
            println!(
                "  CLIP loss at K = {k}: {}; optimum L_K(PMI) {}; excess {}",
                r.finite.loss.display(4),
                r.finite.optimum.display(4),
                r.finite.excess.display(4)
            );
            if r.zero_shot_images > 0 {
                println!(
                    "  zero-shot accuracy on the root label: imported {:.3}, exact PMI {:.3}, Bayes {:.3} (± {:.3})",
                    e.zero_shot_accuracy, e.oracle_zero_shot_accuracy, e.bayes_accuracy, e.accuracy_stderr
                );
            }
            println!("  correlation with the PMI: {:.4}", e.pmi_correlation);
            println!("  method: {}", e.method);
        }
    }
    Ok(())
}
