//! `jghm bench train`: CLIP training throughput of a preset or a configuration file
//! ([`crate::bench::train`]), to compare side by side with `clip_train_torch.py`; and
//! `jghm bench peak`, the machine's FMA peak ([`crate::bench::peak`]).

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;

use crate::bench::kernels::{bench_kernels, KernelTiming};
use crate::bench::peak::{measure_peaks, Peaks};
use crate::bench::train::{bench_train, TrainPreset};
use crate::learn::{Class, Products, TrainConfig};

#[derive(Args, Debug)]
pub struct BenchTrainArgs {
    /// The model and encoder sizes: `standard` (the reference script's defaults) or `paper`
    /// (the paper's encoders on its 81 + 81-token tree).
    #[arg(long, value_enum, default_value_t = TrainPreset::Standard)]
    pub preset: TrainPreset,
    /// A training configuration (the JSON of `jghm train --config`) replacing the preset's encoder sizes and batch.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Timed steps.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub steps: u64,
    /// Pairs per step [default: the preset's].
    #[arg(long, value_parser = clap::value_parser!(u64).range(2..=65_536))]
    pub batch: Option<u64>,
    /// Worker threads [default: all cores].
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=1024))]
    pub threads: Option<u64>,
    /// How the blocks' matrix products multiply: exact (f32) or bf16 (BF16 inputs, f32 sums) [default: the preset's or the file's].
    #[arg(long, value_enum)]
    pub products: Option<Products>,
    /// Also time each kernel of a block alone on one chunk (one thread) and estimate its share of the step.
    #[arg(long)]
    pub kernels: bool,
}

#[derive(Args, Debug)]
pub struct BenchPeakArgs {
    /// Loop turns per timed run (each turn is 12 FMA instructions per thread).
    #[arg(long, default_value_t = 20_000_000, value_parser = clap::value_parser!(u64).range(1..=10_000_000_000))]
    pub iters: u64,
    /// Timed runs per kernel and thread count (the best is reported).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..=1000))]
    pub reps: u64,
    /// Worker threads [default: all cores].
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=1024))]
    pub threads: Option<u64>,
}

fn pool(threads: Option<u64>) -> Result<rayon::ThreadPool> {
    let mut pool = rayon::ThreadPoolBuilder::new();
    if let Some(t) = threads {
        pool = pool.num_threads(t as usize);
    }
    pool.build().context("cannot start the worker threads")
}

/// Turns of the peak measurement that `bench train` runs after its steps (about 0.1 s).
const TRAIN_PEAK_ITERS: usize = 4_000_000;

pub fn run(a: &BenchTrainArgs, json_out: bool) -> Result<()> {
    let model = a.preset.model()?;
    let mut cfg = match &a.config {
        Some(path) => TrainConfig::from_file(path, Some(Class::Transformer))?,
        None => a.preset.config(),
    };
    if let Some(b) = a.batch {
        cfg.batch = b as usize;
    }
    if let Some(p) = a.products {
        cfg.products = p;
    }
    let pool = pool(a.threads)?;
    let (t, peaks) = pool.install(|| -> Result<_> {
        let t = bench_train(&model, &cfg, a.steps as usize)?;
        Ok((t, measure_peaks(TRAIN_PEAK_ITERS, 3)))
    })?;
    let peak = peaks.f32_all_threads();
    let bf16_peak = if cfg.products == Products::Bf16 { peaks.bf16_all_threads() } else { None };
    let towers: Vec<(&str, Vec<KernelTiming>)> = if a.kernels {
        let checked = cfg.clone().check(&model)?;
        [("image", crate::model::Part::Image), ("text", crate::model::Part::Text)]
            .into_iter()
            .map(|(name, part)| {
                (
                    name,
                    bench_kernels(
                        &checked.transformer_shape(&model, part),
                        cfg.products,
                        checked.scheme.encoded(cfg.batch),
                        t.threads,
                        5,
                    ),
                )
            })
            .collect()
    } else {
        vec![]
    };
    if json_out {
        let mut v = serde_json::to_value(&t)?;
        v["f32_peak_gflop_per_second"] = serde_json::json!(peak);
        v["fraction_of_f32_peak"] = serde_json::json!(peak.map(|p| t.gflop_per_second / p));
        v["bf16_peak_gflop_per_second"] = serde_json::json!(bf16_peak);
        v["fraction_of_bf16_peak"] = serde_json::json!(bf16_peak.map(|p| t.gflop_per_second / p));
        if a.kernels {
            v["kernels"] = serde_json::to_value(
                towers.iter().map(|(n, k)| (n.to_string(), k)).collect::<std::collections::BTreeMap<_, _>>(),
            )?;
        }
        println!("{v}");
    } else {
        let mut of_peak = peak.map_or(String::new(), |p| {
            format!(", {:.0}% of the f32 FMA peak {p:.0} GFLOP/s", 100.0 * t.gflop_per_second / p)
        });
        if let Some(p) = bf16_peak {
            of_peak += &format!(" and {:.0}% of the BF16 peak {p:.0}", 100.0 * t.gflop_per_second / p);
        }
        println!(
            "jghm threads={}: {:.1} ms/step, {} pairs/s (batch {}, {} timed steps); {:.2} GFLOP per pair, {:.1} GFLOP/s{of_peak}",
            t.threads,
            t.ms_per_step,
            super::grouped(t.pairs_per_second),
            t.batch,
            t.steps,
            t.flop_per_pair / 1e9,
            t.gflop_per_second,
        );
        println!("{}", t.configuration);
        println!("compare: python clip_train_torch.py {} --threads {}", t.reference_arguments, t.threads);
        print_kernels(&towers, t.ms_per_step);
    }
    Ok(())
}

/// The kernel table of `--kernels`: per tower, each kernel's time per call, rate and estimated
/// share of the step, then how much of the measured step the kernels explain.
fn print_kernels(towers: &[(&str, Vec<KernelTiming>)], step_ms: f64) {
    let mut explained = 0.0;
    for (tower, rows) in towers {
        println!("{tower} tower, one chunk on one thread:");
        for r in rows {
            let rate =
                if r.flop_per_call > 0.0 { format!("{:7.1} GFLOP/s", r.gflop_per_second) } else { " ".repeat(15) };
            println!("  {:<52} {:8.3} ms/call {rate} {:8.1} ms/step", r.kernel, r.ms_per_call, r.ms_per_step);
            explained += r.ms_per_step;
        }
    }
    if !towers.is_empty() {
        println!(
            "the kernels explain {explained:.0} of {step_ms:.0} ms per step; the rest ({:.0} ms) is the embedding, pooling, loss, optimiser, gradient reduction and idle threads",
            step_ms - explained
        );
    }
}

pub fn run_peak(a: &BenchPeakArgs, json_out: bool) -> Result<()> {
    let pool = pool(a.threads)?;
    let peaks: Peaks = pool.install(|| measure_peaks(a.iters as usize, a.reps as usize));
    if json_out {
        println!("{}", serde_json::to_value(&peaks)?);
        return Ok(());
    }
    if peaks.kernels.is_empty() {
        println!("no FMA kernel for this CPU (x86-64 with AVX2+FMA, AVX-512F or AVX512_BF16 is measured)");
    }
    for k in &peaks.kernels {
        println!(
            "{:<32} {:>8.1} GFLOP/s on 1 thread, {:>8.1} on {}",
            k.kernel, k.one_thread, k.all_threads, peaks.threads
        );
    }
    Ok(())
}
