//! Leaf evidence for belief propagation (the book, Belief propagation): a nonnegative vector `λ_u` per leaf.
//!
//! One-hot for an observed token, all-ones for a missing token, any nonnegative vector for
//! soft evidence (a noisy observation). Evidence can sit on image leaves, text leaves or both.
//!
//! BP reads evidence through the [`Observation`] trait, one [`LeafView`] per leaf, so that
//! evidence of a common shape needs no [`Evidence`] allocated per observation: [`Tokens`]
//! (observed sides), [`SoftImage`] (soft image leaves and an observed text, the shape of every
//! noisy-image task), or any type a caller defines.

use crate::model::{Jghm, Part};

/// The evidence `λ_u` at one leaf.
#[derive(Clone, Debug, PartialEq)]
pub enum Leaf {
    /// `λ_u = e_token`.
    Observed(usize),
    /// `λ_u = 1` (contributes nothing).
    Missing,
    /// `λ_u = weights` (nonnegative, not necessarily normalised).
    Soft(Vec<f64>),
}

/// Evidence on every leaf of a model: `image[i]` for the `i`-th image token, `text[j]` for
/// the `j`-th text token.
#[derive(Clone, Debug, PartialEq)]
pub struct Evidence {
    pub image: Vec<Leaf>,
    pub text: Vec<Leaf>,
}

/// Malformed observations, naming the modality and position.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum EvidenceError {
    #[error("{part} has {got} tokens, but the model's {part} has {expected} leaves")]
    Length { part: Part, got: usize, expected: usize },
    #[error("{part} token at position {position} is {token}, out of the vocabulary 0..{vocab}")]
    OutOfVocabulary { part: Part, position: usize, token: usize, vocab: usize },
    #[error("{part} soft evidence at position {position} has {got} weights, the vocabulary has {vocab}")]
    SoftLength { part: Part, position: usize, got: usize, vocab: usize },
    #[error("{part} soft evidence at position {position} has an entry that is negative or not finite")]
    SoftEntry { part: Part, position: usize },
    #[error("{part} token {position} ('{text}') is not a nonnegative integer")]
    NotAToken { part: Part, position: usize, text: String },
    #[error("{part} is empty: give comma-separated tokens, e.g. 0,1,2")]
    NoTokens { part: Part },
    #[error("the {part} part has no leaves, so it takes no tokens")]
    NoLeaves { part: Part },
}

impl Evidence {
    /// No evidence at all: every leaf missing.
    pub fn none(model: &Jghm) -> Self {
        Evidence { image: vec![Leaf::Missing; model.image_len()], text: vec![Leaf::Missing; model.text_len()] }
    }

    /// Observed image `x` (checked), text missing.
    pub fn image(model: &Jghm, x: &[usize]) -> Result<Self, EvidenceError> {
        Self::tokens(model, Some(x), None)
    }

    /// Observed text `y` (checked), image missing.
    pub fn text(model: &Jghm, y: &[usize]) -> Result<Self, EvidenceError> {
        Self::tokens(model, None, Some(y))
    }

    /// Observed pair `(x, y)` (checked).
    pub fn pair(model: &Jghm, x: &[usize], y: &[usize]) -> Result<Self, EvidenceError> {
        Self::tokens(model, Some(x), Some(y))
    }

    /// Observed tokens on either side (`None`: that side missing), checked against the model.
    pub fn tokens(model: &Jghm, x: Option<&[usize]>, y: Option<&[usize]>) -> Result<Self, EvidenceError> {
        let mut ev = Evidence::none(model);
        if let Some(x) = x {
            check_tokens(model, Part::Image, x)?;
            ev.image = x.iter().map(|&t| Leaf::Observed(t)).collect();
        }
        if let Some(y) = y {
            check_tokens(model, Part::Text, y)?;
            ev.text = y.iter().map(|&t| Leaf::Observed(t)).collect();
        }
        Ok(ev)
    }

    /// Checks lengths, tokens and soft weights against the model.
    pub fn check(&self, model: &Jghm) -> Result<(), EvidenceError> {
        for (part, leaves) in [(Part::Image, &self.image), (Part::Text, &self.text)] {
            let expected = model.len_of(part);
            if leaves.len() != expected {
                return Err(EvidenceError::Length { part, got: leaves.len(), expected });
            }
            let vocab = model.vocab_of(part);
            for (position, leaf) in leaves.iter().enumerate() {
                match leaf {
                    Leaf::Observed(token) if *token >= vocab => {
                        return Err(EvidenceError::OutOfVocabulary { part, position, token: *token, vocab })
                    }
                    Leaf::Soft(w) if w.len() != vocab => {
                        return Err(EvidenceError::SoftLength { part, position, got: w.len(), vocab })
                    }
                    Leaf::Soft(w) if w.iter().any(|v| !(v.is_finite() && *v >= 0.0)) => {
                        return Err(EvidenceError::SoftEntry { part, position })
                    }
                    _ => {}
                }
            }
        }
        Ok(())
    }

    /// The leaves of one modality.
    pub fn of(&self, part: Part) -> &[Leaf] {
        match part {
            Part::Image => &self.image,
            _ => &self.text,
        }
    }

    /// The leaves of one modality, mutably.
    pub fn of_mut(&mut self, part: Part) -> &mut Vec<Leaf> {
        match part {
            Part::Image => &mut self.image,
            _ => &mut self.text,
        }
    }
}

/// A view of one leaf's evidence `λ_u`, borrowed from an [`Evidence`] or from raw tokens.
#[derive(Clone, Copy, Debug)]
pub enum LeafView<'a> {
    Observed(usize),
    Missing,
    Soft(&'a [f64]),
}

/// Anything that gives evidence per leaf: an [`Evidence`], or token slices without allocation.
pub trait Observation {
    fn leaf(&self, part: Part, position: usize) -> LeafView<'_>;
    /// Checks the observation against `model` (lengths, vocabularies, soft weights). The
    /// single-observation entry points of [`crate::bp`] call it before any pass, so that bad
    /// input is an error, never a panic or a silently truncated answer.
    fn check(&self, model: &Jghm) -> Result<(), EvidenceError>;
    /// Every token of `part` when all its leaves are observed (a shortcut for batched passes
    /// that read tokens in bulk; `None` means "ask [`Observation::leaf`]").
    fn tokens(&self, _part: Part) -> Option<&[usize]> {
        None
    }
    /// Whether every leaf of `part` is missing (a shortcut for batched passes that skip a whole
    /// side; `false` means "ask [`Observation::leaf`]").
    fn missing(&self, _part: Part) -> bool {
        false
    }
}

impl Observation for Evidence {
    fn check(&self, model: &Jghm) -> Result<(), EvidenceError> {
        Evidence::check(self, model)
    }
    fn leaf(&self, part: Part, position: usize) -> LeafView<'_> {
        match &self.of(part)[position] {
            Leaf::Observed(t) => LeafView::Observed(*t),
            Leaf::Missing => LeafView::Missing,
            Leaf::Soft(w) => LeafView::Soft(w),
        }
    }
}

/// Observed tokens on either side (`None`: that side missing). The caller guarantees lengths
/// and vocabularies (use [`Evidence::tokens`] to check user input).
#[derive(Clone, Copy, Debug)]
pub struct Tokens<'a> {
    pub image: Option<&'a [usize]>,
    pub text: Option<&'a [usize]>,
}

impl Observation for Tokens<'_> {
    fn check(&self, model: &Jghm) -> Result<(), EvidenceError> {
        for (part, side) in [(Part::Image, self.image), (Part::Text, self.text)] {
            side.map_or(Ok(()), |t| check_tokens(model, part, t))?;
        }
        Ok(())
    }
    fn leaf(&self, part: Part, position: usize) -> LeafView<'_> {
        let side = if part == Part::Image { self.image } else { self.text };
        side.map_or(LeafView::Missing, |t| LeafView::Observed(t[position]))
    }
    fn tokens(&self, part: Part) -> Option<&[usize]> {
        if part == Part::Image {
            self.image
        } else {
            self.text
        }
    }
    fn missing(&self, part: Part) -> bool {
        self.tokens(part).is_none()
    }
}

/// Soft evidence on every image leaf and the text observed: `λ_i` is row `i` of `lambda`
/// (row-major `N_X × V_X`, nonnegative), text leaf `j` is `e_{text[j]}`. The shape of a noisy
/// image under any noise model (the likelihood of the noisy value, as a function of the token, is
/// the leaf's soft evidence); the caller guarantees lengths and vocabularies.
#[derive(Clone, Copy, Debug)]
pub struct SoftImage<'a> {
    pub lambda: &'a [f64],
    pub vocab: usize,
    pub text: &'a [usize],
}

impl Observation for SoftImage<'_> {
    fn check(&self, model: &Jghm) -> Result<(), EvidenceError> {
        let (part, leaves, vocab) = (Part::Image, model.image_len(), model.image_vocab());
        if self.vocab != vocab {
            return Err(EvidenceError::SoftLength { part, position: 0, got: self.vocab, vocab });
        }
        if self.lambda.len() != leaves * vocab {
            return Err(EvidenceError::Length { part, got: self.lambda.len().div_ceil(vocab), expected: leaves });
        }
        if let Some(i) = self.lambda.iter().position(|v| !(v.is_finite() && *v >= 0.0)) {
            return Err(EvidenceError::SoftEntry { part, position: i / vocab });
        }
        check_tokens(model, Part::Text, self.text)
    }
    fn leaf(&self, part: Part, position: usize) -> LeafView<'_> {
        match part {
            Part::Image => LeafView::Soft(&self.lambda[position * self.vocab..(position + 1) * self.vocab]),
            _ => LeafView::Observed(self.text[position]),
        }
    }
}

pub(crate) fn check_tokens(model: &Jghm, part: Part, tokens: &[usize]) -> Result<(), EvidenceError> {
    let expected = model.len_of(part);
    if tokens.len() != expected {
        return Err(EvidenceError::Length { part, got: tokens.len(), expected });
    }
    let vocab = model.vocab_of(part);
    match tokens.iter().position(|&t| t >= vocab) {
        Some(position) => Err(EvidenceError::OutOfVocabulary { part, position, token: tokens[position], vocab }),
        None => Ok(()),
    }
}

/// [`parse_tokens`], then checked against one side of `model` (count and vocabulary).
pub fn parse_checked_tokens(model: &Jghm, part: Part, text: &str) -> Result<Vec<usize>, EvidenceError> {
    let tokens = parse_tokens(part, text)?;
    check_tokens(model, part, &tokens)?;
    Ok(tokens)
}

/// Parses comma-separated tokens (`"0,1,2"`), naming the first bad one. Whitespace around a
/// token is allowed; an empty list, an empty field, a sign or a non-digit is not.
pub fn parse_tokens(part: Part, text: &str) -> Result<Vec<usize>, EvidenceError> {
    if text.trim().is_empty() {
        return Err(EvidenceError::NoTokens { part });
    }
    text.split(',')
        .enumerate()
        .map(|(position, field)| {
            let field = field.trim();
            let digits_only = !field.is_empty() && field.bytes().all(|b| b.is_ascii_digit());
            digits_only.then(|| field.parse::<usize>().ok()).flatten().ok_or_else(|| EvidenceError::NotAToken {
                part,
                position,
                // Escaped, so that a control character in the input (a newline, a NUL) cannot
                // break the one-line error.
                text: field.chars().take(40).collect::<String>().escape_debug().to_string(),
            })
        })
        .collect()
}
