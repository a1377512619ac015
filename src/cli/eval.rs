//! `jghm eval`: a trained checkpoint measured against the exact ground truth ([`crate::eval`]).

use anyhow::{bail, Context, Result};
use clap::Args;
use serde_json::json;
use std::path::PathBuf;

use crate::eval::{evaluate, finite_k_losses, EvalReport, EvalSpec, FiniteK, LearnedScore};
use crate::files::load_model;
use crate::learn::checkpoint::{read_header, sha256_hex, Checkpoint};
use crate::learn::clip_loss::Scheme;
use crate::learn::{Class, Encoder, Mlp, Real};
use crate::model::{Jghm, Part};

#[derive(Args, Debug)]
pub struct EvalArgs {
    /// The model file the checkpoint was trained on (its SHA-256 must match the checkpoint's).
    #[arg(long)]
    pub model: PathBuf,
    /// Checkpoint written by `jghm train`.
    #[arg(long)]
    pub checkpoint: PathBuf,
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
}

pub fn run(a: &EvalArgs, json_out: bool) -> Result<()> {
    let model = load_model(&a.model)?;
    let hash = sha256_hex(&std::fs::read(&a.model).with_context(|| format!("cannot read '{}'", a.model.display()))?);
    let bytes =
        std::fs::read(&a.checkpoint).with_context(|| format!("cannot read checkpoint '{}'", a.checkpoint.display()))?;
    let (cfg, _) = read_header(&bytes).with_context(|| format!("checkpoint '{}'", a.checkpoint.display()))?;
    cfg.validate(&model).map_err(anyhow::Error::msg)?;
    let spec = EvalSpec {
        samples: a.samples as usize,
        zero_shot_images: a.images as usize,
        prompts: a.prompts as usize,
        grid: 64,
        seed: a.seed,
    };
    // The K the pair was trained at: the batch for in-batch negatives, k for the K-way scheme.
    let k = match cfg.scheme {
        Scheme::InBatch => cfg.batch,
        Scheme::KWay { k } => k,
    };
    let fk = Fk { k, batches: a.batches as usize, seed: a.seed };
    let go = |bytes: &[u8]| -> Result<(EvalReport, FiniteK, usize)> {
        match cfg.class {
            Class::Transformer => {
                let enc = |p| cfg.transformer(&model, p);
                measure::<f32, _>(&model, bytes, &hash, enc(Part::Image), enc(Part::Text), &spec, &fk)
            }
            Class::Mlp => {
                let enc = |p| Mlp::new(cfg.mlp_shape(&model, p));
                measure::<f32, _>(&model, bytes, &hash, enc(Part::Image), enc(Part::Text), &spec, &fk)
            }
            Class::Bp => {
                let enc = |p| cfg.bp_encoder(&model, p).expect("validated: no trunk");
                measure::<f64, _>(&model, bytes, &hash, enc(Part::Image), enc(Part::Text), &spec, &fk)
            }
        }
    };
    let (r, finite, step) = go(&bytes)?;
    for (name, v) in [
        ("excess_risk", r.excess_risk),
        ("pmi_correlation", r.pmi_correlation),
        ("excess_risk_stderr", r.excess_risk_stderr),
        ("finite_k_loss", finite.loss.value),
        ("finite_k_optimum", finite.optimum.value),
    ] {
        if !v.is_finite() {
            bail!("{name} is {v}, not a finite number (the learned score is degenerate)");
        }
    }
    if json_out {
        let mut v = serde_json::to_value(&r).expect("report serialises");
        v["class"] = json!(cfg.class);
        v["steps"] = json!(step);
        v["training_k"] = json!(finite.k);
        v["finite_k_loss"] = json!(finite.loss.value);
        v["finite_k_loss_stderr"] = json!(finite.loss.stderr);
        v["finite_k_optimum"] = json!(finite.optimum.value);
        v["finite_k_optimum_stderr"] = json!(finite.optimum.stderr);
        v["finite_k_excess"] = json!(finite.excess.value);
        v["finite_k_excess_stderr"] = json!(finite.excess.stderr);
        v["finite_k_method"] = json!(finite.method);
        println!("{v}");
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

fn measure<R: Real, E: Encoder<R>>(
    model: &Jghm,
    bytes: &[u8],
    hash: &str,
    image: E,
    text: E,
    spec: &EvalSpec,
    fk: &Fk,
) -> Result<(EvalReport, FiniteK, usize)> {
    let ck = Checkpoint::<R>::from_bytes(bytes)?;
    ck.check_model(hash)?;
    if ck.params.image.len() != image.num_params() || ck.params.text.len() != text.num_params() {
        bail!("the checkpoint's parameters do not fit its configuration on this model");
    }
    let head = ck.config.head(model);
    let score = LearnedScore::new(image, text, ck.params, head);
    let finite = finite_k_losses(model, &score, fk.k, fk.batches, fk.seed ^ 0xf1)?;
    Ok((evaluate(model, &score, spec)?, finite, ck.step))
}

/// The finite-K loss's settings.
struct Fk {
    k: usize,
    batches: usize,
    seed: u64,
}
