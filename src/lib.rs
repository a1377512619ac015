//! # jghm: the statistical theory of contrastive pre-training, made checkable
//!
//! On a Joint Generative Hierarchical Model (JGHM) every quantity of the theory has an exact
//! value, computed by belief propagation. The modules follow the concepts of
//! `../shared/THEORY.md`, in the order of its sections:
//!
//! | module | holds | theorem |
//! |---|---|---|
//! | [`model`] | JGHM types, JSON format and validation | §1 |
//! | [`random_family`] | the standard random family | §1 |
//! | [`sample`] | seeded ancestral sampling | §1 |
//! | [`files`] | reading a model, writing a result atomically | |
//! | [`runs`] | run folders: settings checked on resume, result rows as CSV rewritten atomically | |
//! | [`evidence`] | observed / missing / soft leaf evidence | §2 |
//! | [`bp`] | upward and downward passes, brute-force oracle | T1 |
//! | [`emulate`] | a transformer with explicit weights that computes BP | T11 |
//! | [`info`] | entropies and mutual informations, exact or Monte Carlo | §2 |
//! | [`score`] | the Score trait, PMI, the T7 representation, bilinear scores | T7 |
//! | [`contrastive`] | CLIP losses (finite K, K → ∞), induced conditional Q^S | T2-T4 |
//! | [`sufficiency`] | sufficiency gap in three forms, built-in statistics, T5 bound | T5-T6 |
//! | [`eval`] | a learned pair against the exact quantities: excess risk, T5 bounds, zero-shot | T4, T5, T8 |
//! | [`downstream`] | zero-shot classification, text from an image, conditional diffusion, with exact references | T8-T10 |
//! | [`learn`] | CLIP-trained encoders (transformer, BP class, MLP): explicit forward/backward, training | §3, §7 |
//! | [`rates`] | sample-complexity sweeps, log-log rate fits with bootstrap intervals | T12, T3 |
//! | [`reproduce`] | the paper's simulations: Bayes and learned risks of the four tasks | §8 |
//! | [`plot`] | every figure, drawn from result files: rates (T12), emulation (T11), the paper's (§8) | |
//!
//! Conventions: exact quantities in f64; every function says whether it returns a probability
//! or a log-probability; one seeded portable RNG ([`rng`]); tolerances in [`tolerance`].

pub mod bench;
pub mod bp;
pub mod cli;
pub mod contrastive;
pub mod downstream;
pub mod emulate;
pub mod eval;
pub mod evidence;
pub mod files;
pub mod info;
pub mod learn;
pub mod logspace;
pub mod model;
pub mod plot;
pub mod random_family;
pub mod rates;
pub mod reproduce;
pub mod rng;
pub mod runs;
pub mod sample;
pub mod score;
pub mod sufficiency;
pub mod tolerance;

pub use bp::{log_likelihood, marginals, pmi, root_posterior, BpError, Tokens, Workspace};
pub use evidence::{Evidence, Leaf};
pub use model::{Jghm, Level, ModelError, Part};
pub use random_family::RandomSpec;
