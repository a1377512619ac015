//! Reproducing the paper's simulations (the book, Reproducing the paper): the four risks of a two-tower JGHM of the
//! standard random family — CLIP, zero-shot, conditional denoising, vision-language — for the
//! Bayes predictor (exact BP, Monte Carlo over samples with a standard error) and for learned
//! models, and the three figures of `jghm reproduce risks|prompts|ood`; on the standard random
//! family, on the paper's own model draw (compared point for point with its published Bayes
//! values, [`published`]), or on user model files ([`experiments::Family`]).
//!
//! The learned side plugs in through the predictor traits of [`crate::downstream::predictors`]:
//! a learned pair of encoders is a [`crate::score::Score`]; a denoiser is a [`Denoiser`]; a
//! next-token model is a [`NextToken`]. The Bayes predictors of [`crate::downstream::bayes`]
//! implement each trait with exact BP, so one risk estimator serves both.

pub mod control_variate;
pub mod experiments;
pub mod learned;
pub mod published;
pub mod risks;
pub mod run;

pub use crate::downstream::bayes::{BayesDenoiser, BayesNextToken};
pub use crate::downstream::predictors::{Denoiser, NextToken};
pub use risks::{
    clip_risk, clip_risks, denoise_risk, denoise_risks, denoise_risks_with, vlm_risk, vlm_risks, zero_shot_risk,
    zero_shot_risks, Classifier, DenoiseOptions, Moments, PredictorRisk, RiskError, Task, TaskRisk,
};
