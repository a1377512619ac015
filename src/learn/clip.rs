//! A learned pair `(f, g)` with its score head: one CLIP training step, forward and backward,
//! end to end (checked against finite differences in tests/learn_gradients.rs).
//!
//! ```text
//! u_i = f(x_i),  v_j = g(y_j)                (towers, parallel over the batch)
//! S_q = head(u, v) on the scheme's pairs      ([`super::score_head`])
//! L   = CLIP loss of S over the groups        ([`super::clip_loss`])
//! backward: dS → (du, dv, dhead) → (df, dg)
//! ```

use super::clip_loss::{clip_loss, Groups, LossParts, Scheme};
use super::encoder::{Encoder, TokenError, Tower};
use super::real::Real;
use super::score_head::{Head, HeadCache};

/// The parameters of a learned pair: image tower, text tower, head.
#[derive(Clone, Debug, PartialEq)]
pub struct Params<R> {
    pub image: Vec<R>,
    pub text: Vec<R>,
    pub head: Vec<R>,
}

impl<R: Real> Params<R> {
    /// Zeros of the same shapes.
    pub fn zeros_like(&self) -> Self {
        Params {
            image: vec![R::zero(); self.image.len()],
            text: vec![R::zero(); self.text.len()],
            head: vec![R::zero(); self.head.len()],
        }
    }
    /// The three blocks, in a fixed order.
    pub fn blocks(&self) -> [&Vec<R>; 3] {
        [&self.image, &self.text, &self.head]
    }
    pub fn blocks_mut(&mut self) -> [&mut Vec<R>; 3] {
        [&mut self.image, &mut self.text, &mut self.head]
    }
    pub fn len(&self) -> usize {
        self.image.len() + self.text.len() + self.head.len()
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Two towers, a head and a batch scheme, with every buffer of a step.
pub struct ClipPair<R: Real, E: Encoder<R>> {
    pub image: Tower<R, E>,
    pub text: Tower<R, E>,
    pub head: Head,
    pub scheme: Scheme,
    u: Vec<R>,
    v: Vec<R>,
    du: Vec<R>,
    dv: Vec<R>,
    scores: Vec<R>,
    dscores: Vec<R>,
    cache: HeadCache<R>,
    groups: Option<(usize, Groups)>,
}

impl<R: Real, E: Encoder<R>> ClipPair<R, E> {
    pub fn new(image: E, text: E, head: Head, scheme: Scheme) -> Self {
        assert_eq!(image.out_dim(), text.out_dim(), "both towers embed into R^P");
        ClipPair {
            image: Tower::new(image),
            text: Tower::new(text),
            head,
            scheme,
            u: vec![],
            v: vec![],
            du: vec![],
            dv: vec![],
            scores: vec![],
            dscores: vec![],
            cache: HeadCache::default(),
            groups: None,
        }
    }

    /// Embedding dimension `P`.
    pub fn dim(&self) -> usize {
        self.image.encoder.out_dim()
    }

    /// Fresh parameters: the towers' `init` from `rng`, the head's fixed start.
    pub fn init(&self, rng: &mut crate::rng::Rng) -> Params<R> {
        Params { image: self.image.encoder.init(rng), text: self.text.encoder.init(rng), head: self.head.init() }
    }

    /// `f(x)` for a batch of images (rows of `T_X` tokens), `B × P`; an error when the tokens
    /// do not fit the image tower.
    pub fn embed_images(&mut self, params: &Params<R>, images: &[u32]) -> Result<Vec<R>, TokenError> {
        let b = self.image.encoder.check_tokens(images)?;
        let mut out = vec![R::zero(); b * self.dim()];
        self.image.forward(&params.image, images, &mut out)?;
        Ok(out)
    }

    /// `g(y)` for a batch of texts, `B × P`; an error when the tokens do not fit the text tower.
    pub fn embed_texts(&mut self, params: &Params<R>, texts: &[u32]) -> Result<Vec<R>, TokenError> {
        let b = self.text.encoder.check_tokens(texts)?;
        let mut out = vec![R::zero(); b * self.dim()];
        self.text.forward(&params.text, texts, &mut out)?;
        Ok(out)
    }

    /// The number of positive pairs `B` of a batch of `scheme.encoded(B)` images and texts, or
    /// why the batch does not fit the pair (tokens, or unequal or ungrouped counts).
    fn positives(&self, images: &[u32], texts: &[u32]) -> Result<usize, TokenError> {
        let n = self.image.encoder.check_tokens(images)?;
        let m = self.text.encoder.check_tokens(texts)?;
        let b = self.scheme.per_direction(n);
        if n != m || self.scheme.encoded(b) != n {
            return Err(TokenError::Unpaired { images: n, texts: m });
        }
        Ok(b)
    }

    /// The loss of one batch, forward only (same layout as [`ClipPair::loss_and_grad`]).
    pub fn loss(&mut self, params: &Params<R>, images: &[u32], texts: &[u32]) -> Result<LossParts, TokenError> {
        let p = self.dim();
        let groups = self.scheme.groups(self.positives(images, texts)?);
        let u = self.embed_images(params, images)?;
        let v = self.embed_texts(params, texts)?;
        let mut scores = vec![];
        self.head.forward(&params.head, &u, &v, p, &groups.pairs, &mut scores, &mut self.cache);
        Ok(clip_loss(&scores, &groups, &mut self.dscores))
    }

    /// The loss of one batch and its gradient (overwritten into `grads`). `images` and `texts`
    /// hold `scheme.encoded(B)` samples each, the `B` positives first (see [`Scheme::groups`]);
    /// an error, before any pass, when they do not fit the pair or `grads` has another shape.
    pub fn loss_and_grad(
        &mut self,
        params: &Params<R>,
        images: &[u32],
        texts: &[u32],
        grads: &mut Params<R>,
    ) -> Result<LossParts, TokenError> {
        let p = self.dim();
        let b = self.positives(images, texts)?;
        let n = self.scheme.encoded(b);
        if grads.head.len() != params.head.len() {
            return Err(TokenError::Buffer { what: "head gradient", got: grads.head.len(), needed: params.head.len() });
        }
        if self.groups.as_ref().map(|g| g.0) != Some(b) {
            self.groups = Some((b, self.scheme.groups(b)));
        }
        let groups = &self.groups.as_ref().expect("just set").1;
        for buf in [&mut self.u, &mut self.v, &mut self.du, &mut self.dv] {
            buf.clear();
            buf.resize(n * p, R::zero());
        }
        // u = f(x), v = g(y)
        self.image.forward(&params.image, images, &mut self.u)?;
        self.text.forward(&params.text, texts, &mut self.v)?;
        // S on the scheme's pairs, then L and dS
        self.head.forward(&params.head, &self.u, &self.v, p, &groups.pairs, &mut self.scores, &mut self.cache);
        let parts = clip_loss(&self.scores, groups, &mut self.dscores);
        // dS → du, dv, dhead
        grads.head.iter_mut().for_each(|g| *g = R::zero());
        self.head.backward(
            &params.head,
            &self.u,
            &self.v,
            p,
            &groups.pairs,
            &self.scores,
            &self.dscores,
            &self.cache,
            &mut self.du,
            &mut self.dv,
            &mut grads.head,
        );
        // du → dθ_f, dv → dθ_g
        self.image.backward(&params.image, images, &self.du, &mut grads.image)?;
        self.text.backward(&params.text, texts, &self.dv, &mut grads.text)?;
        Ok(parts)
    }
}
