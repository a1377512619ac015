//! `jghm bench train`: CLIP training throughput of the standard configuration
//! ([`crate::bench::train`]), to compare side by side with `clip_train_torch.py`.

use anyhow::{Context, Result};
use clap::Args;

use crate::bench::train::bench_train;

#[derive(Args, Debug)]
pub struct BenchTrainArgs {
    /// Timed steps.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub steps: u64,
    /// Pairs per step.
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u64).range(2..=65_536))]
    pub batch: u64,
    /// Worker threads [default: all cores].
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=1024))]
    pub threads: Option<u64>,
}

pub fn run(a: &BenchTrainArgs, json_out: bool) -> Result<()> {
    let mut pool = rayon::ThreadPoolBuilder::new();
    if let Some(t) = a.threads {
        pool = pool.num_threads(t as usize);
    }
    let pool = pool.build().context("cannot start the worker threads")?;
    let t = pool.install(|| bench_train(a.steps as usize, a.batch as usize))?;
    if json_out {
        println!("{}", serde_json::to_value(&t)?);
    } else {
        println!(
            "jghm threads={}: {:.1} ms/step, {} pairs/s (batch {}, {} timed steps)",
            t.threads,
            t.ms_per_step,
            super::grouped(t.pairs_per_second),
            t.batch,
            t.steps
        );
    }
    Ok(())
}
