//! The paper's encoder class: a pre-LayerNorm transformer, mean-pooled and projected.
//!
//! ```text
//! h⁰_t = wte[x_t] + wpe[t]                                       (token + position)
//! for l in 0..L:
//!     a  = h + Attn(LN₁(h)) Wₒ + bₒ,   Attn from qkv = LN₁(h) W_qkv + b_qkv
//!     h  = a + gelu(LN₂(a) W_fc + b_fc) W_fp + b_fp                (MLP C → 4C → C)
//! f(x) = (Σ_t π_t LN_f(h^L)_t) W_p + b_p                        (pool, project to P)
//! ```
//! The block has two forms ([`BlockForm`]): GPT-2's, above, and the paper's encoder's, which
//! has no biases on `qkv`, adds the attention's output to the residual stream without `Wₒ, bₒ`,
//! and reads the last block out without `LN_f`:
//! ```text
//!     a  = h + Attn(LN₁(h)),           Attn from qkv = LN₁(h) W_qkv
//! f(x) = (Σ_t π_t h^L_t) W_p + b_p
//! ```
//! The pool `π` is the mean (`π_t = 1/T`, [`Pooling::Mean`]) or learned weights, one per
//! position, of either sign ([`Pooling::Learned`], the paper's read-out: its encoder reads every
//! position out to `R^P` and combines the `T` read-outs by a learned linear map, which is this
//! map with `Σ_t π_t b_p` folded into the bias).
//! Dimension letters: `B` samples, `T` positions, `C` width, `NH` heads, `V` vocabulary,
//! `P` output. Forward and backward are written side by side, kernel by kernel
//! ([`super::layernorm`], [`super::linear`], [`super::attention`], [`super::gelu`]); the
//! forward's cache is the explicit [`TransformerCache`]; gradients are prefixed `d`.
//!
//! Longer than 600 lines because the pooled encoder and the per-position trunk of
//! [`super::frozen_heads`] share one forward and one backward, which read best in one file.

use rand::Rng as _;
use rand_distr::{Distribution, Normal};
use serde::{Deserialize, Serialize};

use super::attention::{attention_backward, attention_forward_masked, AttnShape};
use super::bf16::Products;
use super::encoder::Encoder;
use super::gelu::{gelu_backward, gelu_forward};
use super::layernorm::{layernorm_backward, layernorm_forward};
use super::linear::{linear_backward, linear_backward_with, linear_forward, linear_forward_with};
use super::real::Real;
use crate::rng::Rng;

/// Sizes of one transformer encoder.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransformerShape {
    /// Vocabulary `V`.
    pub vocab: usize,
    /// Positions `T`.
    pub len: usize,
    /// Width `C` (divisible by `heads`).
    pub width: usize,
    /// Blocks `L`.
    pub layers: usize,
    /// Heads `NH`.
    pub heads: usize,
    /// Output dimension `P`.
    pub out: usize,
}

/// How the last layer's positions are combined into one vector (module doc).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Pooling {
    /// `π_t = 1/T`.
    #[default]
    Mean,
    /// `π_t` learned, started `U(−1/√T, 1/√T)` (PyTorch's `nn.Linear(T, 1)`).
    Learned,
}

/// The form of the residual block (module doc).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BlockForm {
    /// GPT-2's: `qkv` with biases, the attention's output projection `Wₒ, bₒ`, and a final
    /// LayerNorm `LN_f` before the read-out.
    #[default]
    Gpt2,
    /// The paper's encoder's (its `EncoderTransformer`): `qkv` without biases, the attention's
    /// output added to the residual stream as it is, no final LayerNorm.
    Paper,
}

/// The standard deviation of the embeddings' start `wte, wpe ~ N(0, s²)` by default (GPT-2's).
pub const EMBEDDING_STD: f64 = 0.02;

/// Offsets of one block's parameters inside the flat parameter vector.
#[derive(Clone, Copy, Debug)]
struct BlockAt {
    ln1w: usize,
    ln1b: usize,
    qkvw: usize,
    qkvb: usize,
    attw: usize,
    attb: usize,
    ln2w: usize,
    ln2b: usize,
    fcw: usize,
    fcb: usize,
    fpw: usize,
    fpb: usize,
}

/// The transformer encoder: its shape and the layout of its flat parameter vector.
#[derive(Clone, Debug)]
pub struct Transformer {
    pub shape: TransformerShape,
    wte: usize,
    wpe: usize,
    blocks: Vec<BlockAt>,
    lnfw: usize,
    lnfb: usize,
    projw: usize,
    projb: usize,
    /// `Some(offset)` of the `T` pool weights when they are learned ([`Pooling::Learned`]).
    poolw: Option<usize>,
    /// The standard deviation of the embeddings' start ([`Transformer::with_embedding_std`]).
    embedding_std: f64,
    total: usize,
    /// `Some(groups)`: the positional embedding starts tree-aware ([`Transformer::with_tree_positions`]).
    position_groups: Option<Vec<Vec<usize>>>,
    /// How the affine maps multiply ([`Transformer::with_products`]).
    products: Products,
    /// The block's form ([`Transformer::with_block`]).
    block: BlockForm,
}

impl Transformer {
    pub fn new(shape: TransformerShape) -> Self {
        assert!(shape.heads > 0 && shape.width.is_multiple_of(shape.heads), "width must be a multiple of heads");
        let mut net = Transformer {
            shape,
            wte: 0,
            wpe: 0,
            blocks: vec![],
            lnfw: 0,
            lnfb: 0,
            projw: 0,
            projb: 0,
            poolw: None,
            embedding_std: EMBEDDING_STD,
            total: 0,
            position_groups: None,
            products: Products::Exact,
            block: BlockForm::Gpt2,
        };
        net.lay_out(false);
        net
    }

    /// Places every parameter in the flat vector: embeddings, blocks, `LN_f`, projection, then
    /// the pool weights when `learned_pool`. Parameters the block's form does not have take no
    /// room (their offsets are never read).
    fn lay_out(&mut self, learned_pool: bool) {
        let (v, t, c, p) = (self.shape.vocab, self.shape.len, self.shape.width, self.shape.out);
        let gpt2 = usize::from(self.block == BlockForm::Gpt2);
        let mut at = 0;
        let mut take = |n: usize| {
            at += n;
            at - n
        };
        self.wte = take(v * c);
        self.wpe = take(t * c);
        self.blocks = (0..self.shape.layers)
            .map(|_| BlockAt {
                ln1w: take(c),
                ln1b: take(c),
                qkvw: take(c * 3 * c),
                qkvb: take(gpt2 * 3 * c),
                attw: take(gpt2 * c * c),
                attb: take(gpt2 * c),
                ln2w: take(c),
                ln2b: take(c),
                fcw: take(c * 4 * c),
                fcb: take(4 * c),
                fpw: take(4 * c * c),
                fpb: take(c),
            })
            .collect();
        self.lnfw = take(gpt2 * c);
        self.lnfb = take(gpt2 * c);
        self.projw = take(c * p);
        self.projb = take(p);
        self.poolw = learned_pool.then(|| take(t));
        self.total = at;
    }

    /// Builds the blocks in `form` ([`BlockForm`]); the paper's form has `3C + C² + C` fewer
    /// parameters per block and `2C` fewer at the end.
    pub fn with_block(mut self, form: BlockForm) -> Self {
        self.block = form;
        let learned_pool = self.poolw.is_some();
        self.lay_out(learned_pool);
        self
    }

    /// The block's form.
    pub fn block(&self) -> BlockForm {
        self.block
    }

    /// Every parameter tensor by name, in the flat vector's order: `wte`, `wpe`, then per block
    /// `l` `h{l}.ln1.w`, `h{l}.ln1.b`, `h{l}.qkv.w`, `h{l}.qkv.b`, `h{l}.attn.w`, `h{l}.attn.b`,
    /// `h{l}.ln2.w`, `h{l}.ln2.b`, `h{l}.fc.w`, `h{l}.fc.b`, `h{l}.proj.w`, `h{l}.proj.b`, then
    /// `lnf.w`, `lnf.b`, `out.w`, `out.b`, `pool`; those the form does not have are left out.
    /// Matrices are stored input-major (`W[i·out + j]`).
    pub fn named_ranges(&self) -> Vec<(String, std::ops::Range<usize>)> {
        let (c, p) = (self.shape.width, self.shape.out);
        let gpt2 = usize::from(self.block == BlockForm::Gpt2);
        let mut named = vec![
            ("wte".to_string(), self.wte..self.wte + self.shape.vocab * c),
            ("wpe".to_string(), self.wpe..self.wpe + self.shape.len * c),
        ];
        for (l, b) in self.blocks.iter().enumerate() {
            for (name, at, len) in [
                ("ln1.w", b.ln1w, c),
                ("ln1.b", b.ln1b, c),
                ("qkv.w", b.qkvw, 3 * c * c),
                ("qkv.b", b.qkvb, gpt2 * 3 * c),
                ("attn.w", b.attw, gpt2 * c * c),
                ("attn.b", b.attb, gpt2 * c),
                ("ln2.w", b.ln2w, c),
                ("ln2.b", b.ln2b, c),
                ("fc.w", b.fcw, 4 * c * c),
                ("fc.b", b.fcb, 4 * c),
                ("proj.w", b.fpw, 4 * c * c),
                ("proj.b", b.fpb, c),
            ] {
                named.push((format!("h{l}.{name}"), at..at + len));
            }
        }
        named.push(("lnf.w".to_string(), self.lnfw..self.lnfw + gpt2 * c));
        named.push(("lnf.b".to_string(), self.lnfb..self.lnfb + gpt2 * c));
        named.push(("out.w".to_string(), self.projw..self.projw + c * p));
        named.push(("out.b".to_string(), self.projb..self.projb + p));
        if let Some(at) = self.poolw {
            named.push(("pool".to_string(), at..at + self.shape.len));
        }
        named.retain(|(_, r)| !r.is_empty());
        named
    }

    /// Starts the learned positional embedding from the tree instead of i.i.d. noise:
    /// `groups[t]` lists the groups position `t` belongs to (for a tower: the ids of leaf `t`'s
    /// ancestors below the root, and `t` itself, [`tree_position_groups`]), and
    /// ```text
    /// wpe[t] = Σ_{g ∋ t} e_g,   e_g ~ N(0, 0.02² / D) i.i.d.,   D = max_t |groups[t]|
    /// ```
    /// so each coordinate keeps the default variance 0.02² while two positions' embeddings are
    /// correlated in proportion to the ancestors they share (siblings most, leaves of different
    /// root children not at all). T11's construction reads a token's tree position from its
    /// positional encoding to route BP's messages between siblings; this start puts that
    /// information in the stream from step 0. Only the start changes: `wpe` is trained as usual.
    pub fn with_tree_positions(mut self, groups: Vec<Vec<usize>>) -> Self {
        assert_eq!(groups.len(), self.shape.len, "one group list per position");
        self.position_groups = Some(groups);
        self
    }

    /// Pools the last layer with learned weights `π_t` ([`Pooling::Learned`]); their `T`
    /// parameters come after every other one, so a mean-pooled encoder's layout is unchanged.
    pub fn with_pooling(mut self, pooling: Pooling) -> Self {
        self.lay_out(pooling == Pooling::Learned);
        self
    }

    /// Starts the embeddings `wte, wpe` from `N(0, std²)` instead of `N(0, 0.02²)`
    /// (PyTorch's `nn.Embedding`, which the paper's encoders use, starts from `N(0, 1)`).
    pub fn with_embedding_std(mut self, std: f64) -> Self {
        assert!(std > 0.0 && std.is_finite(), "an embedding scale is positive and finite");
        self.embedding_std = std;
        self
    }

    /// The pool weights `π` (`T` of them) of parameters `w`.
    fn pool_weights<R: Real>(&self, w: &[R]) -> Vec<R> {
        let t = self.shape.len;
        match self.poolw {
            Some(at) => w[at..at + t].to_vec(),
            None => vec![R::one() / R::of(t as f64); t],
        }
    }

    /// Multiplies the blocks' matrix products (the affine maps `qkv`, attention output and MLP,
    /// and the attention's `QKᵀ` and `AV`; not the final projection) as `products` says:
    /// [`Products::Bf16`] rounds their inputs to BF16 and accumulates in f32
    /// ([`super::bf16`]), in forward and backward alike.
    pub fn with_products(mut self, products: Products) -> Self {
        self.products = products;
        self
    }

    /// How the affine maps multiply.
    pub fn products(&self) -> Products {
        self.products
    }

    /// The trunk, shared by the pooled encoder and the per-position models of
    /// [`Transformer::forward_positions`]: `h⁰_t = wte[x_t] + wpe[t] (+ extra_t)`, the `L` blocks
    /// (attention masked to `s ≤ t` when `causal`), and `LN_f(h^L)` per position (in the cache).
    fn trunk_forward<R: Real>(
        &self,
        w: &[R],
        tokens: &[u32],
        extra: Option<&[R]>,
        b: usize,
        cache: &mut TransformerCache<R>,
        causal: bool,
    ) {
        let s = self.shape;
        let (t, c) = (s.len, s.width);
        let n = b * t;
        let shape = AttnShape { b, t, c, nh: s.heads, products: self.products };
        // h⁰_t = wte[x_t] + wpe[t] (+ extra_t)
        let h0 = &mut cache.resid[0];
        for (i, &tok) in tokens[..n].iter().enumerate() {
            let (e, p) = (self.wte + tok as usize * c, self.wpe + (i % t) * c);
            for j in 0..c {
                h0[i * c + j] = w[e + j] + w[p + j] + extra.map_or(R::zero(), |x| x[i * c + j]);
            }
        }
        let gpt2 = self.block == BlockForm::Gpt2;
        for (l, (at, bc)) in self.blocks.iter().zip(cache.blocks.iter_mut()).enumerate() {
            let (before, after) = cache.resid.split_at_mut(l + 1);
            let (h, h_next) = (&before[l][..n * c], &mut after[0][..n * c]);
            // qkv = LN₁(h) W_qkv (+ b_qkv)
            layernorm_forward(&mut bc.ln1, &mut bc.ln1_mean, &mut bc.ln1_rstd, h, &w[at.ln1w..], &w[at.ln1b..], c);
            linear_forward_with(
                self.products,
                &mut bc.qkv,
                &bc.ln1,
                &w[at.qkvw..],
                gpt2.then(|| &w[at.qkvb..at.qkvb + 3 * c]),
                n,
                c,
                3 * c,
                R::zero(),
            );
            attention_forward_masked(&mut bc.atty, &mut bc.att, &bc.qkv, shape, causal);
            // a = h + Attn Wₒ + bₒ (GPT-2's), a = h + Attn (the paper's)
            bc.resid2[..n * c].copy_from_slice(h);
            if gpt2 {
                linear_forward_with(
                    self.products,
                    &mut bc.resid2,
                    &bc.atty,
                    &w[at.attw..],
                    Some(&w[at.attb..at.attb + c]),
                    n,
                    c,
                    c,
                    R::one(),
                );
            } else {
                bc.resid2[..n * c].iter_mut().zip(&bc.atty[..n * c]).for_each(|(a, &y)| *a += y);
            }
            // h' = a + gelu(LN₂(a) W_fc + b_fc) W_fp + b_fp
            layernorm_forward(
                &mut bc.ln2,
                &mut bc.ln2_mean,
                &mut bc.ln2_rstd,
                &bc.resid2[..n * c],
                &w[at.ln2w..],
                &w[at.ln2b..],
                c,
            );
            linear_forward_with(
                self.products,
                &mut bc.fch,
                &bc.ln2,
                &w[at.fcw..],
                Some(&w[at.fcb..at.fcb + 4 * c]),
                n,
                c,
                4 * c,
                R::zero(),
            );
            gelu_forward(&mut bc.fch_gelu[..n * 4 * c], &bc.fch[..n * 4 * c]);
            h_next.copy_from_slice(&bc.resid2[..n * c]);
            linear_forward_with(
                self.products,
                h_next,
                &bc.fch_gelu,
                &w[at.fpw..],
                Some(&w[at.fpb..at.fpb + c]),
                n,
                4 * c,
                c,
                R::one(),
            );
        }
        // lnf = LN_f(h^L) (GPT-2's), h^L itself (the paper's)
        let hl = &cache.resid[s.layers][..n * c];
        if gpt2 {
            layernorm_forward(
                &mut cache.lnf,
                &mut cache.lnf_mean,
                &mut cache.lnf_rstd,
                hl,
                &w[self.lnfw..],
                &w[self.lnfb..],
                c,
            );
        } else {
            cache.lnf[..n * c].copy_from_slice(hl);
        }
    }

    /// Backward of [`Transformer::trunk_forward`] from `dlnf` (held in the cache's `dln`):
    /// accumulates `dw`; before block `l`'s backward, `hook(l + 1, dh)` may add the gradient of
    /// an extra loss on that block's output `h^{l+1}` (the guided class's penalty); writes
    /// `dextra = ∂/∂extra` (overwritten) when asked.
    #[allow(clippy::too_many_arguments)]
    fn trunk_backward<R: Real>(
        &self,
        w: &[R],
        tokens: &[u32],
        b: usize,
        cc: &mut TransformerCache<R>,
        hook: &mut dyn FnMut(usize, &mut [R]),
        dextra: Option<&mut [R]>,
        dw: &mut [R],
    ) {
        let s = self.shape;
        let (t, c) = (s.len, s.width);
        let n = b * t;
        let shape = AttnShape { b, t, c, nh: s.heads, products: self.products };
        let gpt2 = self.block == BlockForm::Gpt2;
        // lnf = LN_f(h^L) (GPT-2's), h^L (the paper's: dh^L = dlnf)
        cc.dresid[..n * c].iter_mut().for_each(|x| *x = R::zero());
        if !gpt2 {
            cc.dresid[..n * c].copy_from_slice(&cc.dln[..n * c]);
        } else {
            let (dlnw, dlnb) = dw[self.lnfw..].split_at_mut(c);
            layernorm_backward(
                &mut cc.dresid[..n * c],
                dlnw,
                &mut dlnb[..c],
                &cc.dln[..n * c],
                &cc.resid[s.layers][..n * c],
                &w[self.lnfw..],
                &cc.lnf_mean,
                &cc.lnf_rstd,
                c,
            );
        }
        for (l, at) in self.blocks.iter().enumerate().rev() {
            // dh^{l+1} += the hook's gradient of an extra loss on the block's output
            hook(l + 1, &mut cc.dresid[..n * c]);
            let bc = &cc.blocks[l];
            // h' = a + gelu(fch) W_fp + b_fp: da = dh' (the residual passes through dresid)
            {
                let (dfpw, dfpb) = dw[at.fpw..].split_at_mut(4 * c * c);
                cc.dfch_gelu[..n * 4 * c].iter_mut().for_each(|x| *x = R::zero());
                linear_backward_with(
                    self.products,
                    Some(&mut cc.dfch_gelu[..n * 4 * c]),
                    dfpw,
                    Some(&mut dfpb[..c]),
                    &cc.dresid[..n * c],
                    &bc.fch_gelu,
                    &w[at.fpw..],
                    n,
                    4 * c,
                    c,
                );
            }
            gelu_backward(&mut cc.dfch[..n * 4 * c], &bc.fch[..n * 4 * c], &cc.dfch_gelu[..n * 4 * c]);
            // fch = LN₂(a) W_fc + b_fc
            {
                let (dfcw, dfcb) = dw[at.fcw..].split_at_mut(4 * c * c);
                cc.dln[..n * c].iter_mut().for_each(|x| *x = R::zero());
                linear_backward_with(
                    self.products,
                    Some(&mut cc.dln[..n * c]),
                    dfcw,
                    Some(&mut dfcb[..4 * c]),
                    &cc.dfch[..n * 4 * c],
                    &bc.ln2,
                    &w[at.fcw..],
                    n,
                    c,
                    4 * c,
                );
            }
            {
                let (dlnw, dlnb) = dw[at.ln2w..].split_at_mut(c);
                layernorm_backward(
                    &mut cc.dresid[..n * c],
                    dlnw,
                    &mut dlnb[..c],
                    &cc.dln[..n * c],
                    &bc.resid2[..n * c],
                    &w[at.ln2w..],
                    &bc.ln2_mean,
                    &bc.ln2_rstd,
                    c,
                );
            }
            // a = h + atty Wₒ + bₒ: dh = da (passes through dresid); a = h + atty: datty = da
            if !gpt2 {
                cc.datty[..n * c].copy_from_slice(&cc.dresid[..n * c]);
            } else {
                let (dattw, dattb) = dw[at.attw..].split_at_mut(c * c);
                cc.datty[..n * c].iter_mut().for_each(|x| *x = R::zero());
                linear_backward_with(
                    self.products,
                    Some(&mut cc.datty[..n * c]),
                    dattw,
                    Some(&mut dattb[..c]),
                    &cc.dresid[..n * c],
                    &bc.atty,
                    &w[at.attw..],
                    n,
                    c,
                    c,
                );
            }
            attention_backward(&mut cc.dqkv, &mut cc.datt, &cc.datty, &bc.qkv, &bc.att, shape);
            // qkv = LN₁(h) W_qkv (+ b_qkv)
            {
                let (dqkvw, dqkvb) = dw[at.qkvw..].split_at_mut(3 * c * c);
                cc.dln[..n * c].iter_mut().for_each(|x| *x = R::zero());
                linear_backward_with(
                    self.products,
                    Some(&mut cc.dln[..n * c]),
                    dqkvw,
                    gpt2.then(|| &mut dqkvb[..3 * c]),
                    &cc.dqkv[..n * 3 * c],
                    &bc.ln1,
                    &w[at.qkvw..],
                    n,
                    c,
                    3 * c,
                );
            }
            {
                let (dlnw, dlnb) = dw[at.ln1w..].split_at_mut(c);
                layernorm_backward(
                    &mut cc.dresid[..n * c],
                    dlnw,
                    &mut dlnb[..c],
                    &cc.dln[..n * c],
                    &cc.resid[l][..n * c],
                    &w[at.ln1w..],
                    &bc.ln1_mean,
                    &bc.ln1_rstd,
                    c,
                );
            }
        }
        // h⁰_t = wte[x_t] + wpe[t] + extra_t
        if let Some(dx) = dextra {
            dx[..n * c].copy_from_slice(&cc.dresid[..n * c]);
        }
        for (i, &tok) in tokens[..n].iter().enumerate() {
            let (e, p) = (self.wte + tok as usize * c, self.wpe + (i % t) * c);
            for j in 0..c {
                let g = cc.dresid[i * c + j];
                dw[e + j] += g;
                dw[p + j] += g;
            }
        }
    }
}

/// Activations of one block for `B` samples (`N = B·T` rows).
pub struct BlockCache<R> {
    ln1: Vec<R>,
    ln1_mean: Vec<R>,
    ln1_rstd: Vec<R>,
    qkv: Vec<R>,
    atty: Vec<R>,
    att: Vec<R>,
    /// `a = h + Attn(..) Wₒ + bₒ`, the residual after attention.
    resid2: Vec<R>,
    ln2: Vec<R>,
    ln2_mean: Vec<R>,
    ln2_rstd: Vec<R>,
    fch: Vec<R>,
    fch_gelu: Vec<R>,
}

/// The groups of [`Transformer::with_tree_positions`] for one tower of `model`: position `t`
/// (token `t` of that part, leaf node `u_t`) belongs to one group per node on the path from `u_t`
/// up to, and without, the root; groups are numbered densely in order of first appearance.
pub fn tree_position_groups(model: &crate::model::Jghm, part: crate::model::Part) -> Vec<Vec<usize>> {
    let tree = model.tree();
    let mut id = std::collections::HashMap::new();
    model
        .leaves_of(part)
        .iter()
        .map(|&leaf| {
            let mut path = vec![];
            let mut u = leaf;
            while let Some(parent) = tree.nodes[u].parent {
                path.push(u);
                u = parent;
            }
            path.reverse();
            path.into_iter()
                .map(|u| {
                    let next = id.len();
                    *id.entry(u).or_insert(next)
                })
                .collect()
        })
        .collect()
}

/// The forward cache and backward scratch of a [`Transformer`].
pub struct TransformerCache<R> {
    /// `resid[l]` is the input of block `l` (`resid[0]` the embedding), `resid[L]` the last output.
    resid: Vec<Vec<R>>,
    blocks: Vec<BlockCache<R>>,
    lnf: Vec<R>,
    lnf_mean: Vec<R>,
    lnf_rstd: Vec<R>,
    pooled: Vec<R>,
    // Backward scratch.
    dresid: Vec<R>,
    dln: Vec<R>,
    datty: Vec<R>,
    dqkv: Vec<R>,
    dfch: Vec<R>,
    dfch_gelu: Vec<R>,
    datt: Vec<R>,
    dpooled: Vec<R>,
}

impl<R: Real> Encoder<R> for Transformer {
    type Cache = TransformerCache<R>;

    fn num_params(&self) -> usize {
        self.total
    }
    fn seq_len(&self) -> usize {
        self.shape.len
    }
    fn vocab(&self) -> usize {
        self.shape.vocab
    }
    fn out_dim(&self) -> usize {
        self.shape.out
    }

    /// Embeddings `N(0, s²)` (`s = 0.02` unless [`Transformer::with_embedding_std`]); linear
    /// maps and learned pool weights `U(−1/√in, 1/√in)` (PyTorch's `nn.Linear` default);
    /// biases 0; LayerNorm gains 1. The paper's block form draws the same numbers for the
    /// parameters both forms have, except that the draws `Wₒ` would take go to the next map.
    fn init(&self, rng: &mut Rng) -> Vec<R> {
        let s = self.shape;
        let c = s.width;
        let mut w = vec![R::zero(); self.total];
        let normal = Normal::new(0.0, self.embedding_std).expect("valid normal");
        for x in &mut w[self.wte..self.wpe + s.len * c] {
            *x = R::of(normal.sample(rng));
        }
        let mut uniform = |w: &mut [R], at: usize, fan_in: usize, len: usize| {
            let bound = 1.0 / (fan_in as f64).sqrt();
            for x in &mut w[at..at + len] {
                *x = R::of(rng.random_range(-bound..bound));
            }
        };
        let gpt2 = self.block == BlockForm::Gpt2;
        for b in &self.blocks {
            uniform(&mut w, b.qkvw, c, 3 * c * c);
            uniform(&mut w, b.attw, c, usize::from(gpt2) * c * c);
            uniform(&mut w, b.fcw, c, 4 * c * c);
            uniform(&mut w, b.fpw, 4 * c, 4 * c * c);
        }
        uniform(&mut w, self.projw, c, c * s.out);
        if let Some(at) = self.poolw {
            uniform(&mut w, at, s.len, s.len);
        }
        let lnf = gpt2.then_some(self.lnfw);
        for at in self.blocks.iter().flat_map(|b| [b.ln1w, b.ln2w]).chain(lnf) {
            w[at..at + c].iter_mut().for_each(|x| *x = R::one());
        }
        // Drawn last, so that every other parameter starts as with the default start.
        if let Some(groups) = &self.position_groups {
            let count = groups.iter().flatten().map(|&g| g + 1).max().unwrap_or(0);
            let depth = groups.iter().map(Vec::len).max().unwrap_or(1).max(1);
            let normal = Normal::new(0.0, self.embedding_std / (depth as f64).sqrt()).expect("valid normal");
            let e: Vec<f64> = (0..count * c).map(|_| normal.sample(rng)).collect();
            for (t, gs) in groups.iter().enumerate() {
                for j in 0..c {
                    w[self.wpe + t * c + j] = R::of(gs.iter().map(|&g| e[g * c + j]).sum());
                }
            }
        }
        w
    }

    fn cache_len(&self, batch: usize) -> usize {
        let s = self.shape;
        let (n, c) = (batch * s.len, s.width);
        // Per block: ln1, qkv (3), atty, resid2, ln2, fch (4), fch_gelu (4) = 15 n·c, four
        // n-vectors of statistics, and the attention weights.
        let block = 15 * n * c + 4 * n + batch * s.heads * s.len * s.len;
        // resid (L + 1), lnf, the backward scratch dresid, dln, datty (1 each), dqkv (3),
        // dfch and dfch_gelu (4 each): 15 n·c besides resid.
        (s.layers + 1) * n * c + s.layers * block + 15 * n * c + 2 * n + 2 * batch * c + s.len * s.len
    }

    fn new_cache(&self, batch: usize) -> TransformerCache<R> {
        let s = self.shape;
        let (n, c) = (batch * s.len, s.width);
        let z = |len: usize| vec![R::zero(); len];
        TransformerCache {
            resid: (0..=s.layers).map(|_| z(n * c)).collect(),
            blocks: (0..s.layers)
                .map(|_| BlockCache {
                    ln1: z(n * c),
                    ln1_mean: z(n),
                    ln1_rstd: z(n),
                    qkv: z(n * 3 * c),
                    atty: z(n * c),
                    att: z(batch * s.heads * s.len * s.len),
                    resid2: z(n * c),
                    ln2: z(n * c),
                    ln2_mean: z(n),
                    ln2_rstd: z(n),
                    fch: z(n * 4 * c),
                    fch_gelu: z(n * 4 * c),
                })
                .collect(),
            lnf: z(n * c),
            lnf_mean: z(n),
            lnf_rstd: z(n),
            pooled: z(batch * c),
            dresid: z(n * c),
            dln: z(n * c),
            datty: z(n * c),
            dqkv: z(n * 3 * c),
            dfch: z(n * 4 * c),
            dfch_gelu: z(n * 4 * c),
            datt: z(s.len * s.len),
            dpooled: z(batch * c),
        }
    }

    fn forward(&self, w: &[R], tokens: &[u32], b: usize, cache: &mut TransformerCache<R>, out: &mut [R]) {
        let s = self.shape;
        let (t, c) = (s.len, s.width);
        let n = b * t;
        self.trunk_forward(w, tokens, None, b, cache, false);
        // pooled = Σ_t π_t LN_f(h^L)_t; the mean sums first and scales once, as it always has,
        // so that runs and checkpoints made before learned pools keep their exact numbers.
        let learned = self.poolw.map(|_| self.pool_weights(w));
        let inv_t = R::one() / R::of(t as f64);
        for (pooled, rows) in cache.pooled.chunks_exact_mut(c).zip(cache.lnf[..n * c].chunks_exact(t * c)) {
            pooled.iter_mut().for_each(|x| *x = R::zero());
            match &learned {
                Some(pool) => {
                    for (row, &pi) in rows.chunks_exact(c).zip(pool) {
                        for (p, &x) in pooled.iter_mut().zip(row) {
                            *p += pi * x;
                        }
                    }
                }
                None => {
                    for row in rows.chunks_exact(c) {
                        for (p, &x) in pooled.iter_mut().zip(row) {
                            *p += x;
                        }
                    }
                    pooled.iter_mut().for_each(|x| *x *= inv_t);
                }
            }
        }
        // f(x) = pooled W_p + b_p
        linear_forward(
            out,
            &cache.pooled,
            &w[self.projw..],
            Some(&w[self.projb..self.projb + s.out]),
            b,
            c,
            s.out,
            R::zero(),
        );
    }

    fn backward(&self, w: &[R], tokens: &[u32], b: usize, cache: &mut TransformerCache<R>, dout: &[R], dw: &mut [R]) {
        self.backward_hooked(w, tokens, b, cache, dout, &mut |_, _| {}, dw);
    }
}

impl Transformer {
    /// [`Encoder::backward`] of the pooled encoder, with `hook(l, dh)` adding the gradient of an
    /// extra loss on block `l`'s output `h^l` (`l = 1..L`) to `dh` before that block's backward
    /// (the guided class's penalty, [`super::guided`]).
    #[allow(clippy::too_many_arguments)]
    pub fn backward_hooked<R: Real>(
        &self,
        w: &[R],
        tokens: &[u32],
        b: usize,
        cache: &mut TransformerCache<R>,
        dout: &[R],
        hook: &mut dyn FnMut(usize, &mut [R]),
        dw: &mut [R],
    ) {
        let s = self.shape;
        let (t, c) = (s.len, s.width);
        let n = b * t;
        let cc = cache;
        // f = pooled W_p + b_p
        cc.dpooled[..b * c].iter_mut().for_each(|x| *x = R::zero());
        {
            let (dw_proj, dw_rest) = dw[self.projw..].split_at_mut(c * s.out);
            linear_backward(
                Some(&mut cc.dpooled[..b * c]),
                dw_proj,
                Some(&mut dw_rest[..s.out]),
                dout,
                &cc.pooled,
                &w[self.projw..],
                b,
                c,
                s.out,
            );
        }
        // pooled = Σ_t π_t lnf_t  ⇒  dlnf_t = π_t dpooled (written into dln), dπ_t = Σ_b ⟨dpooled, lnf_t⟩
        let pool = self.pool_weights(w);
        for (dp, rows) in cc.dpooled.chunks_exact(c).zip(cc.dln[..n * c].chunks_exact_mut(t * c)) {
            for (row, &pi) in rows.chunks_exact_mut(c).zip(&pool) {
                for (r, &g) in row.iter_mut().zip(dp) {
                    *r = g * pi;
                }
            }
        }
        if let Some(at) = self.poolw {
            for (dp, rows) in cc.dpooled.chunks_exact(c).zip(cc.lnf[..n * c].chunks_exact(t * c)) {
                for (dpi, row) in dw[at..at + t].iter_mut().zip(rows.chunks_exact(c)) {
                    *dpi += row.iter().zip(dp).fold(R::zero(), |acc, (&x, &g)| acc + x * g);
                }
            }
        }
        self.trunk_backward(w, tokens, b, cc, hook, None, dw);
    }
}

/// Per-position models (the heads of [`super::frozen_heads`]): the same trunk without pooling, the
/// projection applied at every position, `out_t = LN_f(h^L)_t W_p + b_p` (`N × P`), with an
/// optional real-valued input `extra` (`N × C`) added to the embedding and optional causal
/// attention.
impl Transformer {
    /// `out (B·T × P)`: `h⁰_t = wte[x_t] + wpe[t] + extra_t`, blocks (causal if asked),
    /// `out_t = LN_f(h^L)_t W_p + b_p`.
    #[allow(clippy::too_many_arguments)]
    pub fn forward_positions<R: Real>(
        &self,
        w: &[R],
        tokens: &[u32],
        extra: Option<&[R]>,
        b: usize,
        cache: &mut TransformerCache<R>,
        causal: bool,
        out: &mut [R],
    ) {
        let s = self.shape;
        let (n, c) = (b * s.len, s.width);
        self.trunk_forward(w, tokens, extra, b, cache, causal);
        // out_t = lnf_t W_p + b_p
        linear_forward(
            out,
            &cache.lnf[..n * c],
            &w[self.projw..],
            Some(&w[self.projb..self.projb + s.out]),
            n,
            c,
            s.out,
            R::zero(),
        );
    }

    /// Backward of [`Transformer::forward_positions`]: accumulates `dw`, writes `dextra`
    /// (overwritten, `N × C`) when asked.
    #[allow(clippy::too_many_arguments)]
    pub fn backward_positions<R: Real>(
        &self,
        w: &[R],
        tokens: &[u32],
        b: usize,
        cache: &mut TransformerCache<R>,
        dout: &[R],
        dextra: Option<&mut [R]>,
        dw: &mut [R],
    ) {
        let s = self.shape;
        let (n, c) = (b * s.len, s.width);
        let cc = cache;
        // out = lnf W_p + b_p  ⇒  dlnf = dout W_pᵀ (into dln)
        cc.dln[..n * c].iter_mut().for_each(|x| *x = R::zero());
        {
            let (dw_proj, dw_rest) = dw[self.projw..].split_at_mut(c * s.out);
            linear_backward(
                Some(&mut cc.dln[..n * c]),
                dw_proj,
                Some(&mut dw_rest[..s.out]),
                &dout[..n * s.out],
                &cc.lnf[..n * c],
                &w[self.projw..],
                n,
                c,
                s.out,
            );
        }
        self.trunk_backward(w, tokens, b, cc, &mut |_, _| {}, dextra, dw);
    }
}

impl Transformer {
    /// Where the output projection `(W_p, b_p)` sits in the parameter vector (heads start it
    /// at zero).
    pub fn projection_range(&self) -> std::ops::Range<usize> {
        self.projw..self.projb + self.shape.out
    }
}

impl<R> TransformerCache<R> {
    /// The hidden states `h^l` (`N × C`, row per position) of the last forward pass: `l = 0`
    /// the embedding, `l = 1..L` the blocks' outputs.
    pub fn hidden(&self, l: usize) -> &[R] {
        &self.resid[l]
    }
}
