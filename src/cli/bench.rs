//! `jghm bench`: throughput of exact inference, for the README's performance table.
//!
//! Timings live here (and in `benches/`), never in tests. `bench bp` draws a model of the
//! standard random family and a batch of pairs (untimed), then times, over `--reps` repeats:
//! root posteriors `p(z | x)` of the images by the fast batched BP (`bp::fast`), the PMI of the
//! pairs (three log-likelihoods each: `log p(x, y)`, `log p(x)`, `log p(y)`), `log p(x, y)`
//! alone, every node's marginal by `bp::marginals::BatchMarginals` (stored for a slice of at
//! most 10,000 observations — 2,410 numbers each in the standard configuration — of images and
//! of pairs; streamed to a consumer for the whole batch), the text leaves' marginals alone
//! (`BatchMarginals::selected`), and the simple log-domain
//! `bp::Workspace` / `bp::marginals` on a slice for comparison. Same configuration as
//! `shared/bench-ref/bp_torch.py`.

use std::time::Instant;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use serde_json::json;

use crate::bp::fast::FastBp;
use crate::bp::{PmiParts, Tokens, Workspace};
use crate::model::Part;
use crate::random_family::RandomSpec;
use crate::sample::sample_pairs;

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
        Compare: python clip_train_torch.py --threads 2")]
    Train(super::bench_train::BenchTrainArgs),
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
        BenchCommand::Bp(a) => {
            let mut pool = rayon::ThreadPoolBuilder::new();
            if let Some(t) = a.threads {
                pool = pool.num_threads(t as usize);
            }
            let pool = pool.build().context("cannot start the worker threads")?;
            pool.install(|| bench_bp(a, json))
        }
    }
}

/// Mean and best seconds of `reps` runs of `f` (after one untimed warm-up run).
fn time(reps: u32, mut f: impl FnMut()) -> (f64, f64) {
    f();
    let times: Vec<f64> = (0..reps)
        .map(|_| {
            let t0 = Instant::now();
            f();
            t0.elapsed().as_secs_f64()
        })
        .collect();
    (times.iter().sum::<f64>() / times.len() as f64, times.iter().copied().fold(f64::INFINITY, f64::min))
}

fn bench_bp(a: &BenchBpArgs, json: bool) -> Result<()> {
    let mut spec = RandomSpec::symmetric(a.states as usize, a.children as usize, a.depth as usize, a.seed);
    spec.shared_depth = a.shared_depth as usize;
    let model = spec.build()?;
    let n = a.batch as usize;
    let tokens = model.image_len() as f64 * n as f64;
    anyhow::ensure!(tokens <= 4e8, "--batch {n} with {} tokens per image needs too much memory", model.image_len());
    // Sampling is not timed.
    let pairs = sample_pairs(&model, n, a.seed, false);
    let (xs, ys): (Vec<Vec<usize>>, Vec<Vec<usize>>) = pairs.into_iter().map(|p| (p.image, p.text)).unzip();
    let fast = FastBp::new(&model);
    let s0 = model.root_states();
    let (mut post, mut ll) = (vec![0.0; n * s0], vec![0.0; n]);
    let (post_mean, post_best) = time(a.reps, || fast.root_posteriors_into(Part::Image, &xs, &mut post, &mut ll));
    let mut parts = vec![PmiParts { pmi: 0.0, log_pxy: 0.0, log_px: 0.0, log_py: 0.0 }; n];
    let (pmi_mean, pmi_best) = time(a.reps, || fast.pmi_into(&xs, &ys, &mut parts));
    let mut log_pxy = vec![0.0; n];
    let (pxy_mean, _) = time(a.reps, || fast.log_pxy_into(&xs, &ys, &mut log_pxy));
    // The simple reference, one thread, on a slice of the batch.
    let m = n.min(20_000);
    let (ref_mean, _) = time(1, || {
        let mut ws = Workspace::new(&model);
        let mut row = vec![0.0; s0];
        for x in &xs[..m] {
            ws.upward(&model, &Tokens { image: Some(x), text: None });
            ws.root_posterior_into(&model, &mut row);
        }
    });
    // Every node's marginal (S·nodes numbers per observation, so a slice of the batch; the
    // output buffer is allocated once, untimed), for images alone and for pairs (x, y).
    let k = n.min(10_000);
    let batch_marginals = crate::bp::marginals::BatchMarginals::new(&model);
    let images_all: Vec<Tokens> = xs.iter().map(|x| Tokens { image: Some(x), text: None }).collect();
    let images: Vec<Tokens> = xs[..k].iter().map(|x| Tokens { image: Some(x), text: None }).collect();
    let pairs: Vec<Tokens> = xs[..k].iter().zip(&ys).map(|(x, y)| Tokens { image: Some(x), text: Some(y) }).collect();
    let (mut marg, mut marg_ll) = (vec![0.0; k * model.tree().total_states], vec![0.0; k]);
    let (marg_mean, marg_best) = time(a.reps, || {
        batch_marginals.marginals_into(&images, &mut marg, &mut marg_ll);
    });
    let (pair_marg_mean, _) = time(a.reps, || {
        batch_marginals.marginals_into(&pairs, &mut marg, &mut marg_ll);
    });
    // Streamed (memory flat in the batch): the whole batch, each block's marginals handed to a
    // consumer (here: the sum of every node's largest marginal) instead of stored.
    let (stream_mean, _) = time(a.reps, || {
        let sums = batch_marginals.fold_chunks(
            &images_all,
            || 0.0,
            |acc, _, rows, _| {
                acc + rows
                    .chunks(model.tree().total_states)
                    .map(|r| r.iter().fold(0.0f64, |m, &v| m.max(v)))
                    .sum::<f64>()
            },
        );
        std::hint::black_box(sums);
    });
    // Only the text leaves' marginals p(y_j | x) (`BatchMarginals::selected`): the downward
    // pass through the text tower alone, one row of `len(y) × V` numbers per image.
    let text_leaves = crate::bp::marginals::BatchMarginals::selected(&model, &model.tree().text_leaves);
    let mut leaf_marg = vec![0.0; k * text_leaves.row_len()];
    let (leaf_mean, _) = time(a.reps, || {
        text_leaves.marginals_into(&images, &mut leaf_marg, &mut marg_ll);
    });
    let r = n.min(1_000);
    let (marg_ref, _) = time(1, || {
        for x in &xs[..r] {
            std::hint::black_box(crate::bp::marginals(&model, &Tokens { image: Some(x), text: None }).ok());
        }
    });
    let threads = rayon::current_num_threads();
    let per_second = |secs: f64| n as f64 / secs;
    if json {
        println!(
            "{}",
            json!({
                "states": a.states, "children": a.children, "depth": a.depth, "shared_depth": a.shared_depth,
                "batch": n, "reps": a.reps, "threads": threads, "image_tokens": model.image_len(),
                "posteriors_per_second": per_second(post_mean),
                "posteriors_per_second_best": per_second(post_best),
                "posterior_batch_seconds": post_mean,
                "pmi_per_second": per_second(pmi_mean),
                "pmi_per_second_best": per_second(pmi_best),
                "pmi_batch_seconds": pmi_mean,
                "reference_posteriors_per_second_one_thread": m as f64 / ref_mean,
                "marginals_per_second": k as f64 / marg_mean,
                "marginals_per_second_best": k as f64 / marg_best,
                "pair_marginals_per_second": k as f64 / pair_marg_mean,
                "streamed_marginals_per_second": per_second(stream_mean),
                "text_leaf_marginals_per_second": k as f64 / leaf_mean,
                "log_pxy_per_second": per_second(pxy_mean),
                "marginals_batch": k,
                "reference_marginals_per_second_one_thread": r as f64 / marg_ref,
                "mean_log_px": ll.iter().sum::<f64>() / n as f64,
                "mean_pmi": parts.iter().map(|p| p.pmi).sum::<f64>() / n as f64,
            })
        );
    } else {
        println!(
            "bench bp: states={} children={} depth={} shared_depth={} batch={n} threads={threads} reps={}",
            a.states, a.children, a.depth, a.shared_depth, a.reps
        );
        println!(
            "  root posteriors p(z|x): {:.1} ms per batch, {:.0} posteriors/s (best {:.0})",
            post_mean * 1e3,
            per_second(post_mean),
            per_second(post_best)
        );
        println!(
            "  PMI (log p(x,y), log p(x), log p(y)): {:.1} ms per batch, {:.0} pairs/s (best {:.0})",
            pmi_mean * 1e3,
            per_second(pmi_mean),
            per_second(pmi_best)
        );
        println!("  reference log-domain Workspace, 1 thread: {:.0} posteriors/s", m as f64 / ref_mean);
        println!(
            "  every node's marginal p(z_u|x): {:.0} observations/s (reference bp::marginals, 1 thread: {:.0}/s)",
            k as f64 / marg_mean,
            r as f64 / marg_ref
        );
        println!(
            "  marginals of pairs p(z_u|x,y): {:.0}/s; streamed to a consumer (whole batch): {:.0}/s",
            k as f64 / pair_marg_mean,
            per_second(stream_mean)
        );
        println!("  text leaves' marginals p(y_j|x) only: {:.0} observations/s", k as f64 / leaf_mean);
        println!("  log p(x,y): {:.0} pairs/s", per_second(pxy_mean));
    }
    Ok(())
}
