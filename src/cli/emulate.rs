//! `jghm emulate`: the transformer with explicit weights that computes BP (T11).

use anyhow::{bail, Result};
use clap::Args;
use serde_json::json;

use super::files::load_model;
use crate::emulate::{BpTransformer, Nonlinearity};
use crate::model::Part;
use crate::sample::sample_pairs;

#[derive(Args, Debug)]
pub struct EmulateArgs {
    /// Model file (JSON), two towers without a trunk, strictly positive transitions.
    #[arg(long)]
    pub model: std::path::PathBuf,
    /// ReLU units per scalar nonlinearity of the MLPs (knots of the interpolants).
    #[arg(long, value_parser = clap::value_parser!(u32).range(2..=1_000_000))]
    pub width: Option<u32>,
    /// Use the exact nonlinearities instead of ReLU MLPs (checks the attention part alone).
    #[arg(long, conflicts_with = "width")]
    pub exact_mlp: bool,
    /// Which tower to emulate.
    #[arg(long, default_value = "image", value_parser = ["image", "text"])]
    pub side: String,
    /// Number of sampled inputs the error is measured on.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    pub samples: u64,
    /// Seed of the sampled inputs.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

pub fn run(a: &EmulateArgs, json: bool) -> Result<()> {
    let model = load_model(&a.model)?;
    let part = if a.side == "text" { Part::Text } else { Part::Image };
    let nonlinearity = match (a.width, a.exact_mlp) {
        (_, true) => Nonlinearity::Exact,
        (Some(w), false) => Nonlinearity::Relu { width: w as usize },
        (None, false) => bail!("give --width W (ReLU units per nonlinearity) or --exact-mlp"),
    };
    let net = BpTransformer::new(&model, part, nonlinearity).map_err(anyhow::Error::msg)?;
    let inputs: Vec<Vec<usize>> = sample_pairs(&model, a.samples as usize, a.seed, false)
        .into_iter()
        .map(|p| if part == Part::Image { p.image } else { p.text })
        .collect();
    let err = net.error_against_bp(&model, &inputs);
    if !(err.max_abs_error.is_finite() && err.mean_abs_error.is_finite()) {
        bail!("the emulator's output is not finite on some input (widths below 2 or extreme models)");
    }
    if json {
        println!(
            "{}",
            json!({
                "max_abs_error": err.max_abs_error, "mean_abs_error": err.mean_abs_error,
                "layers": err.layers, "width": err.width, "parameters": err.parameters,
                "samples": err.samples, "side": a.side, "stream_width": net.stream_width(),
            })
        );
    } else {
        println!(
            "transformer emulating BP on the {} tower: {} blocks, stream width {}, {} parameters",
            a.side,
            err.layers,
            net.stream_width(),
            err.parameters
        );
        let w = if a.exact_mlp { "exact nonlinearities".to_string() } else { format!("width {}", err.width) };
        println!(
            "{w}: |log p̂(z|x) − log p(z|x)| over {} sampled inputs: max {:.3e}, mean {:.3e}",
            err.samples, err.max_abs_error, err.mean_abs_error
        );
    }
    Ok(())
}
