//! The main job on the default model (`jghm demo`): the paper's setting in miniature (the
//! standard random family with 10 states, 3 children, an image tower of depth 4 and a text tower
//! of depth 3, flip 0.3), a few sampled pairs, and their exact quantities by BP (T1): the
//! log-likelihoods, the PMI, and the root posterior given the image alone.

use serde::Serialize;

use crate::bp::{self, BpError, Tokens};
use crate::logspace::argmax;
use crate::model::ModelError;
use crate::random_family::RandomSpec;
use crate::sample::sample_pairs;

/// What stops the demo.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("building the default model: {0}")]
    Model(#[from] ModelError),
    #[error(transparent)]
    Bp(#[from] BpError),
}

/// The default model's parameters, as `jghm demo --json` reports them.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct DemoModel {
    pub states: usize,
    pub children: usize,
    pub image_depth: usize,
    pub text_depth: usize,
    pub flip: f64,
    pub seed: u64,
}

/// One sampled pair with its exact quantities (nats).
#[derive(Clone, Debug, Serialize)]
pub struct DemoPair {
    pub image: Vec<usize>,
    pub text: Vec<usize>,
    /// The root state the pair was drawn from.
    pub root: usize,
    pub pmi: f64,
    pub log_pxy: f64,
    pub log_px: f64,
    pub log_py: f64,
    /// `argmax_z p(z | x)`.
    pub map_root_from_image: usize,
    /// `p(z = root | x)`.
    pub posterior_of_true_root: f64,
}

/// The demo's model and pairs.
#[derive(Clone, Debug, Serialize)]
pub struct Demo {
    pub model: DemoModel,
    pub pairs: Vec<DemoPair>,
}

/// `n` pairs of the default model of seed `seed` (the same seed draws the pairs).
pub fn demo(seed: u64, n: usize) -> Result<Demo, DemoError> {
    let spec = RandomSpec { text_depth: 3, ..RandomSpec::symmetric(10, 3, 4, seed) };
    let model = spec.build()?;
    let pairs = sample_pairs(&model, n, seed, true)
        .into_iter()
        .map(|pair| {
            let p = bp::pmi(&model, &pair.image, &pair.text)?;
            let post = bp::root_posterior(&model, &Tokens { image: Some(&pair.image), text: None })?;
            let root = pair.hidden.as_ref().map_or(0, |h| h[0]);
            Ok(DemoPair {
                root,
                pmi: p.pmi,
                log_pxy: p.log_pxy,
                log_px: p.log_px,
                log_py: p.log_py,
                map_root_from_image: argmax(&post.root),
                posterior_of_true_root: post.root[root],
                image: pair.image,
                text: pair.text,
            })
        })
        .collect::<Result<_, DemoError>>()?;
    let model = DemoModel { states: 10, children: 3, image_depth: 4, text_depth: 3, flip: spec.flip, seed };
    Ok(Demo { model, pairs })
}
