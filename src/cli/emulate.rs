//! `jghm emulate`: the transformer with explicit weights that computes BP (T11). Parses, calls
//! [`crate::emulate::sweep`] (and [`crate::plot::emulation`] for a sweep), prints.

use anyhow::{bail, Result};
use clap::Args;
use serde_json::json;

use crate::emulate::sweep::{measure, run_sweep, table};
use crate::emulate::Nonlinearity;
use crate::eval::EvalSpec;
use crate::files::load_model;
use crate::model::Part;
use crate::runs::Shard;

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
    /// Sweep these widths (comma-separated): error against BP, and the emulated pair's
    /// excess risk and zero-shot accuracy; writes DIR/emulation.csv and rate plot (e).
    #[arg(long, conflicts_with_all = ["width", "exact_mlp"], requires = "out", value_delimiter = ',',
          value_parser = clap::value_parser!(u32).range(2..=1_000_000))]
    pub widths: Option<Vec<u32>>,
    /// Output folder of a sweep.
    #[arg(long)]
    pub out: Option<std::path::PathBuf>,
    /// Outer pairs of the large-batch excess-risk estimate, per width (sweep).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(2..=1_000_000))]
    pub eval_samples: u64,
    /// Test images of the zero-shot task, per width (sweep).
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub zero_shot_images: u64,
    /// Prompts per class of the zero-shot task (sweep).
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub prompts: u64,
    /// Which tower to emulate.
    #[arg(long, default_value = "image", value_parser = ["image", "text"])]
    pub side: String,
    /// Number of sampled inputs the error is measured on.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    pub samples: u64,
    /// Seed of the sampled inputs.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Sweep only: run one shard of the widths, K/N (1 <= K <= N): width i of the list belongs
    /// to shard i mod N + 1. Combine the N shard folders with `jghm merge OUT DIR..`.
    #[arg(long, value_name = "K/N", requires = "widths")]
    pub shard: Option<Shard>,
}

pub fn run(a: &EmulateArgs, json: bool) -> Result<()> {
    let model = load_model(&a.model)?;
    if let Some(widths) = &a.widths {
        return sweep(a, &model, &widths.iter().map(|&w| w as usize).collect::<Vec<_>>(), json);
    }
    let part = if a.side == "text" { Part::Text } else { Part::Image };
    let nonlinearity = match (a.width, a.exact_mlp) {
        (_, true) => Nonlinearity::Exact,
        (Some(w), false) => Nonlinearity::Relu { width: w as usize },
        (None, false) => {
            bail!("give --width W (ReLU units per nonlinearity), --widths W1,W2,.. --out DIR, or --exact-mlp")
        }
    };
    let (net, err) = measure(&model, part, nonlinearity, a.samples as usize, a.seed)?;
    if json {
        let mut out = serde_json::to_value(&err)?;
        out["side"] = json!(a.side);
        out["stream_width"] = json!(net.stream_width());
        println!("{out}");
        return Ok(());
    }
    let (side, layers, stream, parameters) = (&a.side, err.layers, net.stream_width(), err.parameters);
    println!(
        "transformer emulating BP on the {side} tower: {layers} blocks, stream width {stream}, {parameters} parameters"
    );
    let w = if a.exact_mlp { "exact nonlinearities".to_string() } else { format!("width {}", err.width) };
    println!(
        "{w}: |log p̂(z|x) − log p(z|x)| over {} sampled inputs: max {:.3e}, mean {:.3e}",
        err.samples, err.max_abs_error, err.mean_abs_error
    );
    Ok(())
}

fn sweep(a: &EmulateArgs, model: &crate::model::Jghm, widths: &[usize], json: bool) -> Result<()> {
    let dir = a.out.as_ref().expect("clap requires --out with --widths");
    let spec = EvalSpec {
        samples: a.eval_samples as usize,
        zero_shot_images: a.zero_shot_images as usize,
        prompts: a.prompts as usize,
        grid: 64,
        seed: a.seed,
    };
    let start = std::time::Instant::now();
    let mut bar = super::progress::Progress::new(widths.len() as u64, "emulate");
    let mut done = 0;
    let rows = run_sweep(model, widths, a.samples as usize, &spec, dir, a.shard, &mut |row| {
        done += 1;
        bar.set_message(format!("width {} done, max error {:.3e}", row.width, row.max_abs_error));
        bar.set_position(done);
    })?;
    bar.finish();
    if let Some(shard) = a.shard {
        let (dir, n) = (dir.display(), rows.len());
        eprintln!("shard {shard}: {n} widths in {dir}/emulation.csv; `jghm merge` of all shards draws rate plot (e)");
        return Ok(());
    }
    crate::plot::emulation::plot_sweep(&rows, dir)?;
    if json {
        println!("{}", serde_json::to_string(&rows)?);
        return Ok(());
    }
    print!("{}", table(&rows));
    let seconds = start.elapsed().as_secs_f64();
    println!("wrote {}/emulation.csv and rate plot (e) emulation_*.svg/png in {seconds:.1} s", dir.display());
    Ok(())
}
