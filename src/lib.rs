//! # jghm: the statistical theory of contrastive pre-training, made checkable
//!
//! On a Joint Generative Hierarchical Model (JGHM) every quantity of the theory has an exact
//! value, computed by belief propagation. One module per concept, and data flows one way, from
//! the model up to the command line: each module uses only the modules above it in this table
//! (`tests/layering.rs` checks it).
//!
//! | module | holds | theorem |
//! |---|---|---|
//! | [`logspace`], [`tolerance`], [`rng`] | log-sum-exp and the MAP rule; tolerances; the seeded RNG, its streams and named seed purposes | |
//! | [`model`] | JGHM types, JSON format and validation | book: The JGHM |
//! | [`random_family`] | the standard random family | book: The JGHM |
//! | [`files`] | reading a model, writing a result atomically | |
//! | [`runs`] | run folders: settings checked on resume, result rows as CSV rewritten atomically | |
//! | [`evidence`] | observed / missing / soft leaf evidence, the observation trait BP reads | T1 |
//! | [`bp`] | upward and downward passes, batched fast paths, the incremental next-token pass, brute-force oracle | T1 |
//! | [`sample`] | seeded ancestral sampling, also below a fixed root state | book: The JGHM |
//! | [`demo`](mod@demo) | the main job: the default model, sampled pairs and their exact quantities | T1 |
//! | [`info`] | entropies and mutual informations, exact or Monte Carlo | T3, T6 |
//! | [`score`] | the Score trait, PMI, the T7 representation, bilinear scores | T7 |
//! | [`contrastive`] | CLIP losses (finite K, K → ∞), induced conditional Q^S | T2-T4 |
//! | [`sufficiency`] | sufficiency gap in three forms, built-in statistics, T5 bound | T5-T6 |
//! | [`learn`] | CLIP-trained encoders: explicit forward/backward, training, the class registry, checked configurations, checkpoints | T4, T12 |
//! | [`downstream`] | task semantics: labels, the zero-shot classifiers, generation, noise models, diffusion, the Bayes predictors, the tasks' reports | T8-T10 |
//! | [`eval`] | a learned pair against the exact quantities: excess risk, T5 bounds, zero-shot | T4, T5, T8 |
//! | [`emulate`] | a transformer with explicit weights that computes BP, and its width sweep | T11 |
//! | [`rates`] | sample-complexity sweeps, log-log rate fits with bootstrap intervals | T12, T3 |
//! | [`reproduce`] | the paper's simulations: Bayes and learned risks of the four tasks | book: Reproducing the paper |
//! | [`bench`](mod@bench) | exact-inference and CLIP-training throughput | |
//! | [`plot`] | every figure, drawn from result files: rates (T12), emulation (T11), the paper's | |
//! | [`cli`] | the command line: parses, calls one library function, prints | |
//!
//! # Quickstart
//!
//! Build a model (by hand, or from the standard random family), then ask BP for exact
//! quantities. Every function that takes tokens checks them against the model.
//!
//! ```
//! use jghm::nalgebra::DMatrix;
//! use jghm::{bp, Jghm, Level, Part, RandomSpec};
//!
//! // A JGHM by hand: a 2-state root, one image leaf and one text leaf, each a noisy copy.
//! let copy = |e: f64| Level { transitions: vec![DMatrix::from_row_slice(2, 2, &[1.0 - e, e, e, 1.0 - e])] };
//! let model = Jghm::new(vec![0.5, 0.5], vec![], vec![copy(0.1)], vec![copy(0.2)])?;
//! let posterior = bp::root_posterior_of(&model, Part::Image, &[0])?;
//! assert!((posterior.root[0] - 0.9).abs() < 1e-12); // p(z = 0 | x = 0) = 0.9
//! let p = bp::pmi(&model, &[0], &[0])?;
//! // p(x = 0, y = 0) = 0.5 (0.9 · 0.8 + 0.1 · 0.2) = 0.37, p(x = 0) = p(y = 0) = 0.5
//! assert!((p.pmi - (0.37f64 / 0.25).ln()).abs() < 1e-12);
//! assert!(bp::pmi(&model, &[0, 1], &[0]).is_err()); // a 2-token image on a 1-leaf model
//!
//! // The paper's family in miniature: I(X; Y) exactly, by enumeration.
//! let small = RandomSpec::symmetric(3, 2, 2, 1).build()?;
//! let info = jghm::info::exact(&jghm::info::Enumeration::new(&small)?);
//! assert!(info.mutual_information.value > 0.0);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! More in `examples/` (`cargo run --release --example posterior_by_hand`).
//!
//! Conventions: exact quantities in f64; every function says whether it returns a probability
//! or a log-probability; one seeded portable RNG ([`rng`]); tolerances in [`tolerance`].

pub mod arrays;
pub mod bench;
pub mod bp;
pub mod cli;
pub mod contrastive;
pub mod demo;
pub mod downstream;
pub mod emulate;
pub mod eval;
pub mod evidence;
pub mod export;
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

pub use bp::{
    log_likelihood, log_px, log_pxy, log_py, marginals, next_token_conditional, pmi, root_posterior, root_posterior_of,
    BpError, Tokens, Workspace,
};
pub use evidence::{Evidence, Leaf};
pub use model::{Jghm, Level, ModelError, Part};
/// The matrix crate of the model's transitions, so that a model can be built without adding it.
pub use nalgebra;
pub use random_family::RandomSpec;
