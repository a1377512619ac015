//! `jghm bench`: throughput of exact inference ([`crate::bench`]) and of CLIP training.

use anyhow::{Context, Result};
use clap::{Args, Subcommand};

use crate::bench::{bench_bp, BpBench};

#[derive(Subcommand, Debug)]
pub enum BenchCommand {
    /// Root posteriors p(z | x) per second by batched BP (sampling excluded), and PMI per second.
    #[command(
        after_help = "Example:\n  jghm bench bp --states 10 --children 3 --depth 4 --batch 100000 --threads 2 --json\n  \
        prints {\"posteriors_per_second\": .., \"pmi_per_second\": .., ..}\n\
        Compare: python bp_torch.py --states 10 --children 3 --depth 4 --batch 100000 --threads 2"
    )]
    Bp(BenchBpArgs),
    /// CLIP training throughput (pairs/s) of the standard two-tower transformer configuration.
    #[command(after_help = "Example:\n  jghm bench train --threads 2 --json\n  \
        prints {\"pairs_per_second\": .., \"ms_per_step\": .., ..}\n\
        Compare: python clip_train_torch.py --threads 2\n  jghm bench train --preset paper --threads 2  (prints the reference arguments to compare)")]
    Train(super::bench_train::BenchTrainArgs),
    /// The machine's FMA peak (f32 256- and 512-bit, BF16 dot): GFLOP/s on one thread and on all.
    #[command(after_help = "Example:\n  jghm bench peak --threads 2")]
    Peak(super::bench_train::BenchPeakArgs),
}

#[derive(Args, Debug)]
pub struct BenchBpArgs {
    /// States S at the root and every level (and the vocabulary).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub states: u32,
    /// Children per node.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub children: u32,
    /// Levels of each tower.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub depth: u32,
    /// Levels of a shared trunk above both towers.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u32).range(0..=32))]
    pub shared_depth: u32,
    /// Observations per timed pass.
    #[arg(long, default_value_t = 100_000, value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    pub batch: u64,
    /// Timed repeats (the mean and the best are reported).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub reps: u32,
    /// Worker threads [default: all cores, or RAYON_NUM_THREADS].
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub threads: Option<u32>,
    /// Seed of the model and of the pairs.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

pub fn run(command: &BenchCommand, json: bool) -> Result<()> {
    match command {
        BenchCommand::Train(a) => super::bench_train::run(a, json),
        BenchCommand::Peak(a) => super::bench_train::run_peak(a, json),
        BenchCommand::Bp(a) => {
            let mut pool = rayon::ThreadPoolBuilder::new();
            if let Some(t) = a.threads {
                pool = pool.num_threads(t as usize);
            }
            let pool = pool.build().context("cannot start the worker threads")?;
            pool.install(|| print_bench_bp(a, json))
        }
    }
}

fn print_bench_bp(a: &BenchBpArgs, json: bool) -> Result<()> {
    let spec = BpBench {
        states: a.states as usize,
        children: a.children as usize,
        depth: a.depth as usize,
        shared_depth: a.shared_depth as usize,
        batch: a.batch as usize,
        reps: a.reps,
        seed: a.seed,
    };
    let t = bench_bp(&spec)?;
    if json {
        // Through a JSON value, whose keys are sorted, as every command's output.
        println!("{}", serde_json::to_value(&t)?);
        return Ok(());
    }
    println!(
        "bench bp: states={} children={} depth={} shared_depth={} batch={} threads={} reps={}",
        t.states, t.children, t.depth, t.shared_depth, t.batch, t.threads, t.reps
    );
    let g = super::grouped;
    println!(
        "  root posteriors p(z|x): {:.1} ms per batch, {} posteriors/s (best {})",
        t.posterior_batch_seconds * 1e3,
        g(t.posteriors_per_second),
        g(t.posteriors_per_second_best)
    );
    println!(
        "  PMI (log p(x,y), log p(x), log p(y)): {:.1} ms per batch, {} pairs/s (best {})",
        t.pmi_batch_seconds * 1e3,
        g(t.pmi_per_second),
        g(t.pmi_per_second_best)
    );
    println!(
        "  reference log-domain Workspace, 1 thread: {} posteriors/s",
        g(t.reference_posteriors_per_second_one_thread)
    );
    println!(
        "  every node's marginal p(z_u|x): {} observations/s (reference bp::marginals, 1 thread: {}/s)",
        g(t.marginals_per_second),
        g(t.reference_marginals_per_second_one_thread)
    );
    println!(
        "  marginals of pairs p(z_u|x,y): {}/s; streamed to a consumer (whole batch): {}/s",
        g(t.pair_marginals_per_second),
        g(t.streamed_marginals_per_second)
    );
    println!("  text leaves' marginals p(y_j|x) only: {} observations/s", g(t.text_leaf_marginals_per_second));
    println!("  log p(x,y): {} pairs/s", g(t.log_pxy_per_second));
    Ok(())
}
