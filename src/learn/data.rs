//! Where a training step's pairs come from: fresh samples every step, or a fixed data set of
//! `n` pairs (epochs over its training part; the rest held out). Every draw is a function of
//! `(seed, step)` only, so a run is reproducible and `--resume` continues it exactly.

use rand::seq::SliceRandom;
use rand::Rng as _;

use super::clip_loss::Scheme;
use crate::model::Jghm;
use crate::rng;
use crate::sample::{sample_pairs, Pair};

/// Stream offsets of the seed (stream 0 initialises the parameters). The fixed data set of `n`
/// pairs is drawn with the seed of [`rng::Purpose::TrainingData`].
const STEP_STREAM: u64 = 1 << 40;
const EPOCH_STREAM: u64 = 2 << 40;
const NEGATIVE_STREAM: u64 = 3 << 40;
/// Restart candidate `r ≥ 1` initialises its parameters from stream `RESTART_STREAM + r`
/// ([`super::train::select_start`]).
pub const RESTART_STREAM: u64 = 4 << 40;

/// The source of training batches.
pub enum Data<'m> {
    Fresh { model: &'m Jghm, seed: u64 },
    Fixed { train: Vec<Pair>, held_out: Vec<Pair>, seed: u64, order: Option<(usize, Vec<usize>)> },
}

/// Flattened tokens of a batch: `scheme.encoded(B)` images and texts, the positives first
/// ([`Scheme::positives`] of them).
#[derive(Default, Clone, Debug)]
pub struct Batch {
    pub images: Vec<u32>,
    pub texts: Vec<u32>,
}

impl Batch {
    fn push(&mut self, image: &[usize], text: &[usize]) {
        self.images.extend(image.iter().map(|&t| t as u32));
        self.texts.extend(text.iter().map(|&t| t as u32));
    }

    /// A batch in the scheme's layout from its positive pairs and, for K-way, the negatives:
    /// images from `neg_images`, texts from `neg_texts` (`b(K−1)` each).
    pub fn assemble(positives: &[&Pair], neg_images: &[&Pair], neg_texts: &[&Pair]) -> Batch {
        let mut batch = Batch::default();
        for p in positives {
            batch.push(&p.image, &p.text);
        }
        for (pi, pt) in neg_images.iter().zip(neg_texts) {
            batch.push(&pi.image, &pt.text);
        }
        batch
    }
}

impl<'m> Data<'m> {
    /// A fixed data set of `n` pairs, the last `round(holdout·n)` held out (the pairs are
    /// i.i.d., so the tail is a random split).
    pub fn fixed(model: &Jghm, n: usize, holdout: f64, seed: u64) -> Data<'m> {
        let mut train = sample_pairs(model, n, rng::Purpose::TrainingData.seed(seed), false);
        let held_out = train.split_off(n - (n as f64 * holdout).round() as usize);
        Data::Fixed { train, held_out, seed, order: None }
    }

    /// The batch of step `step`: `b` positive pairs per direction (`2b` when the scheme
    /// splits them) and `b(K−1)` negatives per side.
    pub fn batch(&mut self, step: usize, b: usize, scheme: Scheme) -> Batch {
        let p = scheme.positives(b);
        let negatives = scheme.encoded(b) - p;
        match self {
            Data::Fresh { model, seed } => {
                // One seed per step: pairs 0..p positive, then independent pairs whose images
                // and texts serve as negatives.
                let step_seed = rng::stream(*seed, STEP_STREAM + step as u64).random::<u64>();
                let pairs = sample_pairs(model, p + 2 * negatives, step_seed, false);
                let refs: Vec<&Pair> = pairs.iter().collect();
                Batch::assemble(&refs[..p], &refs[p..p + negatives], &refs[p + negatives..])
            }
            Data::Fixed { train, seed, order, .. } => {
                let per_epoch = train.len() / p;
                let (epoch, at) = (step / per_epoch, step % per_epoch);
                if order.as_ref().map(|o| o.0) != Some(epoch) {
                    let mut perm: Vec<usize> = (0..train.len()).collect();
                    perm.shuffle(&mut rng::stream(*seed, EPOCH_STREAM + epoch as u64));
                    *order = Some((epoch, perm));
                }
                let perm = &order.as_ref().expect("just set").1;
                let idx = &perm[at * p..(at + 1) * p];
                let positives: Vec<&Pair> = idx.iter().map(|&i| &train[i]).collect();
                // K-way negatives: uniform draws from the training set, never the anchor itself.
                let mut rng = rng::stream(*seed, NEGATIVE_STREAM + step as u64);
                let mut draw = |anchor: usize| loop {
                    let j = rng.random_range(0..train.len());
                    if j != anchor || train.len() == 1 {
                        break &train[j];
                    }
                };
                // X→Y's anchors are idx[..b], Y→X's idx[p − b..] (the same unless split).
                let k1 = negatives / b.max(1);
                let neg_texts: Vec<&Pair> =
                    idx[..b].iter().flat_map(|&i| (0..k1).map(|_| draw(i)).collect::<Vec<_>>()).collect();
                let neg_images: Vec<&Pair> =
                    idx[p - b..].iter().flat_map(|&i| (0..k1).map(|_| draw(i)).collect::<Vec<_>>()).collect();
                Batch::assemble(&positives, &neg_images, &neg_texts)
            }
        }
    }

    /// Held-out batches (fixed data set only): consecutive groups of the scheme's positives
    /// (`b`, or `2b` when split) of held-out pairs, with K-way negatives drawn from the held-out
    /// set under a fixed stream.
    pub fn held_out_batches(&self, b: usize, scheme: Scheme) -> Vec<Batch> {
        let Data::Fixed { held_out, seed, .. } = self else { return vec![] };
        let p = scheme.positives(b);
        if held_out.len() < p.max(2) {
            return vec![];
        }
        let k1 = (scheme.encoded(b) - p) / b;
        let mut rng = rng::stream(*seed, NEGATIVE_STREAM - 1);
        held_out
            .chunks_exact(p)
            .map(|chunk| {
                let positives: Vec<&Pair> = chunk.iter().collect();
                let mut draw = || &held_out[rng.random_range(0..held_out.len())];
                let neg_texts: Vec<&Pair> = (0..b * k1).map(|_| draw()).collect();
                let neg_images: Vec<&Pair> = (0..b * k1).map(|_| draw()).collect();
                Batch::assemble(&positives, &neg_images, &neg_texts)
            })
            .collect()
    }
}
