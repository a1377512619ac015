//! The interface every learned encoder implements, and the batched, deterministic runner.
//!
//! An [`Encoder`] maps a sample's tokens (`T` of them) to a vector in `R^P`, with its parameters
//! in one flat slice. Its forward pass fills an explicit cache; its backward pass reads the
//! cache and *accumulates* the parameter gradient. [`Tower`] runs an encoder over a batch in
//! fixed chunks of [`CHUNK`] samples, in parallel, each chunk with its own cache and gradient
//! buffer; the chunk gradients are summed in chunk order, so every number is the same whatever
//! the thread count.
//!
//! This trait is not [`crate::score::Encoder`], and the two are kept apart on purpose: that one
//! is a *fixed* representation `f: x ↦ R^p` evaluated one sample at a time in `f64` (T7's
//! posterior encoder, the perturbed and linear encoders of the theorem tests), with no
//! parameters and no gradient; this one is a *parameterised* family `f_θ`, batched, generic in
//! the float type, with a forward cache and a backward pass. Merging them would either give the
//! exact encoders parameters and a backward pass they do not have, or hide the training
//! interface behind a per-sample call. A trained encoder with its parameters becomes a
//! [`crate::score::Score`] through the evaluation layer's `LearnedScore`.

use rayon::prelude::*;

use super::real::Real;
use crate::rng::Rng;

/// Samples per chunk of a batch: one cache and one gradient buffer each.
pub const CHUNK: usize = 16;

/// A learned map from `T` tokens to `R^P`, with explicit forward and backward passes.
pub trait Encoder<R: Real>: Send + Sync {
    /// The forward pass's saved activations (and the backward pass's scratch), for up to
    /// `batch` samples.
    type Cache: Send + Sync;
    fn num_params(&self) -> usize;
    /// Tokens per sample (`T`).
    fn seq_len(&self) -> usize;
    /// Size of the token vocabulary: every token is in `0..vocab()`.
    fn vocab(&self) -> usize;
    /// Output dimension (`P`).
    fn out_dim(&self) -> usize;
    /// Fresh parameters drawn from `rng`.
    fn init(&self, rng: &mut Rng) -> Vec<R>;
    fn new_cache(&self, batch: usize) -> Self::Cache;
    /// Numbers held by `new_cache(batch)`, computed without allocating (the memory estimate of
    /// a run, [`super::memory`], is made before anything large is allocated).
    fn cache_len(&self, batch: usize) -> usize;
    /// The number of samples `B` in `tokens`, or why they do not fit the encoder: a length that
    /// is not a whole number of samples of [`Encoder::seq_len`] tokens, or a token outside
    /// `0..vocab()`. [`Tower`] checks every batch with it before any pass.
    fn check_tokens(&self, tokens: &[u32]) -> Result<usize, TokenError> {
        let (t, vocab) = (self.seq_len(), self.vocab());
        if t == 0 || !tokens.len().is_multiple_of(t) {
            return Err(TokenError::Length { got: tokens.len(), seq_len: t });
        }
        match tokens.iter().position(|&v| v as usize >= vocab) {
            Some(i) => Err(TokenError::OutOfVocabulary { sample: i / t, position: i % t, token: tokens[i], vocab }),
            None => Ok(tokens.len() / t),
        }
    }
    /// `out (B × P) = f(tokens (B × T))`, filling `cache`: the kernel, which trusts its input.
    ///
    /// # Panics
    /// On tokens that [`Encoder::check_tokens`] refuses, or buffers shorter than `B` samples; call
    /// it through [`Tower`], which checks both and returns an error instead.
    fn forward(&self, params: &[R], tokens: &[u32], b: usize, cache: &mut Self::Cache, out: &mut [R]);
    /// `dparams += (∂out/∂params)ᵀ dout`, after [`Encoder::forward`] on the same tokens.
    ///
    /// # Panics
    /// As [`Encoder::forward`]; [`Tower::backward`] is the checked call.
    #[allow(clippy::too_many_arguments)]
    fn backward(&self, params: &[R], tokens: &[u32], b: usize, cache: &mut Self::Cache, dout: &[R], dparams: &mut [R]);
}

/// Why a batch of tokens, or a buffer, does not fit a learned encoder.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("{got} tokens do not make whole samples of {seq_len} tokens")]
    Length { got: usize, seq_len: usize },
    #[error("token {token} at position {position} of sample {sample} is out of the vocabulary 0..{vocab}")]
    OutOfVocabulary { sample: usize, position: usize, token: u32, vocab: usize },
    #[error("the {what} buffer holds {got} numbers, {needed} are needed")]
    Buffer { what: &'static str, got: usize, needed: usize },
    #[error("the backward pass takes the tokens of the last forward pass ({expected} tokens), got {got}")]
    NotLastForward { got: usize, expected: usize },
    #[error("a batch has {images} images and {texts} texts")]
    Unpaired { images: usize, texts: usize },
}

struct Chunk<R: Real, E: Encoder<R>> {
    cache: E::Cache,
    grad: Vec<R>,
}

/// A batched runner of one encoder: chunk caches and gradient buffers reused between steps.
pub struct Tower<R: Real, E: Encoder<R>> {
    pub encoder: E,
    chunks: Vec<Chunk<R, E>>,
    /// Samples of the last forward pass.
    batch: usize,
}

impl<R: Real, E: Encoder<R>> Tower<R, E> {
    pub fn new(encoder: E) -> Self {
        Tower { encoder, chunks: vec![], batch: 0 }
    }

    fn ensure(&mut self, chunks: usize) {
        while self.chunks.len() < chunks {
            self.chunks
                .push(Chunk { cache: self.encoder.new_cache(CHUNK), grad: vec![R::zero(); self.encoder.num_params()] });
        }
    }

    /// `out (B × P)` for `B = tokens.len() / T` samples, chunk by chunk in parallel; an error,
    /// before any pass, when the tokens do not fit the encoder or `out` is too short.
    pub fn forward(&mut self, params: &[R], tokens: &[u32], out: &mut [R]) -> Result<(), TokenError> {
        let (t, p) = (self.encoder.seq_len(), self.encoder.out_dim());
        let b = self.encoder.check_tokens(tokens)?;
        check_buffer("parameter", params.len(), self.encoder.num_params())?;
        check_buffer("output", out.len(), b * p)?;
        self.batch = b;
        self.ensure(b.div_ceil(CHUNK));
        let enc = &self.encoder;
        self.chunks
            .par_iter_mut()
            .zip(tokens.par_chunks(CHUNK * t))
            .zip(out[..b * p].par_chunks_mut(CHUNK * p))
            .for_each(|((chunk, tok), o)| enc.forward(params, tok, tok.len() / t, &mut chunk.cache, o));
        Ok(())
    }

    /// `dparams = (∂out/∂params)ᵀ dout` (overwritten), after [`Tower::forward`] on `tokens`;
    /// an error when `tokens` cannot be the last forward pass's or a buffer has the wrong size.
    pub fn backward(&mut self, params: &[R], tokens: &[u32], dout: &[R], dparams: &mut [R]) -> Result<(), TokenError> {
        let (t, p) = (self.encoder.seq_len(), self.encoder.out_dim());
        let b = self.batch;
        if tokens.len() != b * t {
            return Err(TokenError::NotLastForward { got: tokens.len(), expected: b * t });
        }
        self.encoder.check_tokens(tokens)?;
        check_buffer("parameter", params.len(), self.encoder.num_params())?;
        check_buffer("output gradient", dout.len(), b * p)?;
        if dparams.len() != self.encoder.num_params() {
            let (got, needed) = (dparams.len(), self.encoder.num_params());
            return Err(TokenError::Buffer { what: "parameter gradient", got, needed });
        }
        let n_chunks = b.div_ceil(CHUNK);
        let enc = &self.encoder;
        self.chunks[..n_chunks]
            .par_iter_mut()
            .zip(tokens.par_chunks(CHUNK * t))
            .zip(dout[..b * p].par_chunks(CHUNK * p))
            .for_each(|((chunk, tok), d)| {
                chunk.grad.iter_mut().for_each(|g| *g = R::zero());
                enc.backward(params, tok, tok.len() / t, &mut chunk.cache, d, &mut chunk.grad);
            });
        // Sum the chunk gradients in chunk order (deterministic whatever the thread count),
        // in parallel over parameter blocks.
        let chunks = &self.chunks[..n_chunks];
        dparams.par_chunks_mut(4096).enumerate().for_each(|(i, dst)| {
            let (lo, len) = (i * 4096, dst.len());
            dst.iter_mut().for_each(|g| *g = R::zero());
            for c in chunks {
                for (g, &x) in dst.iter_mut().zip(&c.grad[lo..lo + len]) {
                    *g += x;
                }
            }
        });
        Ok(())
    }
}

/// `Ok` when a buffer of `got` numbers holds the `needed` ones.
fn check_buffer(what: &'static str, got: usize, needed: usize) -> Result<(), TokenError> {
    if got < needed {
        return Err(TokenError::Buffer { what, got, needed });
    }
    Ok(())
}
