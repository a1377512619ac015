//! Downstream tasks with exact references (the book, T8-T10): zero-shot classification (T8), text from
//! an image (T9) and conditional diffusion of an image from a text (T10).
//!
//! Each task has an exact reference computed by BP, and each learned or approximate method is
//! measured against it:
//!
//! | module | task | reference | theorem |
//! |---|---|---|---|
//! | [`laws`] | exact `p(c | a)` over an enumerated side, through the separator | exact | T7 |
//! | [`labels`] | a label `C` read off the text through a channel `P_{C|Y}`, or the root | `p(c | x)` by BP / enumeration | |
//! | [`zero_shot`] | the zero-shot classifier `P̂^S(c | x) = Σ_y p(c|y) Q^S(y|x)` | Bayes `p(c | x)` | T8 |
//! | [`generation`] | samplers of `y` given `x`: exact, `Q^S`, through a statistic `f(x)` | `p(y | x)` by BP | T9 |
//! | [`diffusion`] | the Bayes denoiser `E[e_X | X_t, y]`, DDPM ancestral sampling | `p(x | y)` by BP | T10 |
//! | [`noise`] | the Gaussian noise models of the denoising tasks, as soft leaf evidence | | T1, T10 |
//! | [`predictors`] | the traits of a denoiser and a next-token model, learned or Bayes | | book: Reproducing the paper |
//! | [`bayes`] | the Bayes predictors of the paper's four tasks, by exact BP on a given model | themselves | book: Reproducing the paper |
//!
//! Exact quantities need the sides they sum over to be enumerable (limits in [`crate::info`]);
//! elsewhere each figure is Monte Carlo with a standard error and the method stated.

pub mod bayes;
pub mod diffusion;
pub mod generation;
pub mod labels;
pub mod laws;
pub mod noise;
pub mod predictors;
pub mod zero_shot;

use crate::bp::BpError;
use crate::evidence::EvidenceError;
use crate::info::InfoError;
use crate::model::Part;
use crate::sufficiency::SufficiencyError;

/// What stops a downstream task, naming the cause.
#[derive(Debug, thiserror::Error)]
pub enum DownstreamError {
    #[error(transparent)]
    Info(#[from] InfoError),
    #[error(transparent)]
    Bp(#[from] BpError),
    #[error(transparent)]
    Evidence(#[from] EvidenceError),
    #[error(transparent)]
    Sufficiency(#[from] SufficiencyError),
    #[error("label '{label}': {what}")]
    Label { label: String, what: String },
    #[error("{what} needs the {part} side enumerated, but it has {size:.3e} sequences (limit {limit:.1e}); {instead}")]
    NotEnumerable { what: String, part: Part, size: f64, limit: f64, instead: String },
    #[error("{0}")]
    Input(String),
    #[error("cannot read channel file '{path}'")]
    ChannelRead { path: String, source: std::io::Error },
    #[error("channel file '{path}'")]
    ChannelFormat { path: String, source: serde_json::Error },
}

pub use crate::logspace::argmax;

/// The mixed-radix index of a sequence (first token most significant), the inverse of
/// [`crate::info::decode_sequence`]. `None` for a token outside `0..vocab` or an index beyond
/// `usize`.
pub fn sequence_index(tokens: &[usize], vocab: usize) -> Option<usize> {
    tokens.iter().try_fold(0usize, |acc, &t| if t < vocab { acc.checked_mul(vocab)?.checked_add(t) } else { None })
}

/// Fails unless one side has at most [`crate::info::SIDE_LIMIT`] sequences.
pub fn require_enumerable(model: &crate::model::Jghm, part: Part, what: &str) -> Result<(), DownstreamError> {
    let size = crate::info::side_size(model, part);
    if size > crate::info::SIDE_LIMIT {
        return Err(DownstreamError::NotEnumerable {
            what: what.into(),
            part,
            size,
            limit: crate::info::SIDE_LIMIT,
            instead: "use a smaller model, or the Monte Carlo alternative".into(),
        });
    }
    Ok(())
}
