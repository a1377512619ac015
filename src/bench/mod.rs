//! Throughput of exact inference, for the README's performance table and `jghm bench bp`; the
//! CLIP training throughput of `jghm bench train` is in [`train`].
//!
//! Timings live here (and in `benches/`), never in tests. [`bench_bp`] draws a model of the
//! standard random family and a batch of pairs (untimed), then times, over `reps` repeats: root
//! posteriors `p(z | x)` of the images by the fast batched BP ([`crate::bp::fast`]), the PMI of
//! the pairs (three log-likelihoods each: `log p(x, y)`, `log p(x)`, `log p(y)`), `log p(x, y)`
//! alone, every node's marginal by [`crate::bp::marginals::BatchMarginals`] (stored for a slice of
//! at most 10,000 observations — 2,410 numbers each in the standard configuration — of images and
//! of pairs; streamed to a consumer for the whole batch), the text leaves' marginals alone
//! (`BatchMarginals::selected`), and the simple log-domain [`Workspace`] / [`crate::bp::marginals()`]
//! on a slice for comparison. The configuration matches the PyTorch reference script
//! `bp_torch.py` of the benchmark references, so the two can be timed in one run.

pub mod kernels;
pub mod peak;
pub mod train;

use std::time::Instant;

use serde::Serialize;

use crate::bp::fast::FastBp;
use crate::bp::marginals::BatchMarginals;
use crate::bp::{PmiParts, Tokens, Workspace};
use crate::model::{ModelError, Part};
use crate::random_family::RandomSpec;
use crate::sample::sample_pairs;

/// What stops a benchmark.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error("--batch {batch} with {tokens} tokens per image needs too much memory (at most 4e8 tokens in all)")]
    TooLarge { batch: usize, tokens: usize },
}

/// The configuration of [`bench_bp`]: a symmetric model of the standard random family and the
/// size of the timed batch.
#[derive(Clone, Copy, Debug)]
pub struct BpBench {
    /// States `S` at the root and every level (and the vocabulary).
    pub states: usize,
    pub children: usize,
    /// Levels of each tower.
    pub depth: usize,
    /// Levels of a shared trunk above both towers.
    pub shared_depth: usize,
    /// Observations per timed pass.
    pub batch: usize,
    /// Timed repeats (the mean and the best are reported).
    pub reps: u32,
    /// Seed of the model and of the pairs.
    pub seed: u64,
}

/// Throughputs measured by [`bench_bp`] (observations per second unless named otherwise).
#[derive(Clone, Debug, Serialize)]
pub struct BpThroughput {
    pub states: usize,
    pub children: usize,
    pub depth: usize,
    pub shared_depth: usize,
    pub batch: usize,
    pub reps: u32,
    pub threads: usize,
    pub image_tokens: usize,
    pub posteriors_per_second: f64,
    pub posteriors_per_second_best: f64,
    pub posterior_batch_seconds: f64,
    pub pmi_per_second: f64,
    pub pmi_per_second_best: f64,
    pub pmi_batch_seconds: f64,
    pub reference_posteriors_per_second_one_thread: f64,
    pub marginals_per_second: f64,
    pub marginals_per_second_best: f64,
    pub pair_marginals_per_second: f64,
    pub streamed_marginals_per_second: f64,
    pub text_leaf_marginals_per_second: f64,
    pub log_pxy_per_second: f64,
    /// Observations in the stored-marginals slice.
    pub marginals_batch: usize,
    pub reference_marginals_per_second_one_thread: f64,
    /// Checksums of the work done (the mean log-likelihood and PMI of the batch).
    pub mean_log_px: f64,
    pub mean_pmi: f64,
}

/// Mean and best seconds of `reps` runs of `f` (after one untimed warm-up run).
pub fn time(reps: u32, mut f: impl FnMut()) -> (f64, f64) {
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

/// Times exact inference on the configuration `a` with the current thread pool (module doc).
pub fn bench_bp(a: &BpBench) -> Result<BpThroughput, BenchError> {
    let mut spec = RandomSpec::symmetric(a.states, a.children, a.depth, a.seed);
    spec.shared_depth = a.shared_depth;
    let model = spec.build()?;
    let n = a.batch;
    if model.image_len() as f64 * n as f64 > 4e8 {
        return Err(BenchError::TooLarge { batch: n, tokens: model.image_len() });
    }
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
    let batch_marginals = BatchMarginals::new(&model);
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
    let text_leaves = BatchMarginals::selected(&model, &model.tree().text_leaves);
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
    let per_second = |secs: f64| n as f64 / secs;
    Ok(BpThroughput {
        states: a.states,
        children: a.children,
        depth: a.depth,
        shared_depth: a.shared_depth,
        batch: n,
        reps: a.reps,
        threads: rayon::current_num_threads(),
        image_tokens: model.image_len(),
        posteriors_per_second: per_second(post_mean),
        posteriors_per_second_best: per_second(post_best),
        posterior_batch_seconds: post_mean,
        pmi_per_second: per_second(pmi_mean),
        pmi_per_second_best: per_second(pmi_best),
        pmi_batch_seconds: pmi_mean,
        reference_posteriors_per_second_one_thread: m as f64 / ref_mean,
        marginals_per_second: k as f64 / marg_mean,
        marginals_per_second_best: k as f64 / marg_best,
        pair_marginals_per_second: k as f64 / pair_marg_mean,
        streamed_marginals_per_second: per_second(stream_mean),
        text_leaf_marginals_per_second: k as f64 / leaf_mean,
        log_pxy_per_second: per_second(pxy_mean),
        marginals_batch: k,
        reference_marginals_per_second_one_thread: r as f64 / marg_ref,
        mean_log_px: ll.iter().sum::<f64>() / n as f64,
        mean_pmi: parts.iter().map(|p| p.pmi).sum::<f64>() / n as f64,
    })
}
