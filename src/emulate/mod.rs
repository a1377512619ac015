//! A transformer with explicit weights that computes belief propagation (the book, T11, T11).
//!
//! For one tower of a JGHM (levels `1..=L`, child counts `m_k`, alphabets `S_k`, transitions
//! `Ψ_{k,j}`), we build a transformer over the tower's `N = Π m_k` leaf tokens whose pooled output
//! approximates the log root posterior `log p(z | x)`. No training: every weight is written down.
//!
//! **The residual stream** of position `i` (leaf `i`) is a sum of disjoint slots:
//! the token one-hot (the embedding); for each level `k`, the one-hot of the child position
//! `j_k(i)` of `i`'s level-`k` ancestor and the one-hot of its level-`(k-1)` ancestor (the
//! positional encoding of the tree position); and, written by the blocks, for each level the
//! normalised message `ν_k`, the sum `h_{k-1}` and its exponential `e_{k-1}`.
//!
//! **BP in this form.** With `e_L = one-hot(x_i)` and, for `k = L, …, 1`,
//!
//! ```text
//! ν_k(a)     = log Σ_b Ψ_{k,j_k}(a, b) e_k(b) − log Σ_b e_k(b)       (normalised message; MLP)
//! h_{k-1}(a) = Σ_{siblings w} ν_w(a)                                  (attention)
//! e_{k-1}(a) = exp(h_{k-1}(a))        (·π(a) at the root)             (MLP)
//! log p(z = a | x) = log π(a) + h_0(a) − log Σ_c π(c) e^{h_0(c)}       (MLP, then pooling)
//! ```
//!
//! This is BP of [`crate::bp`] with every message shifted by a constant (`−log Σ_b e_k(b)`),
//! which cancels in the posterior; the shift keeps every quantity in a bounded interval:
//! `ν ∈ [log ψ_min, 0]`, so `h_{k-1} ∈ [m_k log ψ_min, 0]`, whatever the depth.
//!
//! **Blocks.** Block 0 has no attention and its MLP computes `ν_L`. Then for each level `k`:
//! a block whose attention sums `ν_k` over the tokens under the same level-`(k-1)` ancestor
//! (query = key = that ancestor's one-hot times `β`, so the softmax is uniform on the group and
//! exactly zero elsewhere in f64; the value is `ν_k`, the output scaled by `m_k`, since the
//! `m_k` sibling subtrees have equal size) and whose MLP computes `e_{k-1}`; and a block without
//! attention whose MLP computes `lz_{k-1} = log Σ_a e_{k-1}(a)` (at the root, `log Σ_c π(c) e^{h_0(c)}`);
//! below the root, two more compute `p_{k-1}` and `ν_{k-1}`: `4L − 1` blocks. The output is the mean
//! over positions (every position holds the same root quantities after the last attention), then a projection.
//!
//! **The MLPs** are one hidden ReLU layer computing scalar functions (`exp`, `log`) of linear
//! read-outs of the stream, each by its piecewise-linear interpolant on `width` knots:
//! `f̂(q) = f(t_0) + Σ_k (s_k − s_{k-1}) ReLU(q − t_k)` with `s_k` the slope on `[t_k, t_{k+1}]`.
//! Knots are uniform for `exp` (uniform relative error) and geometric for `log` (uniform
//! absolute error). The per-child transition is selected by the positional encoding: a unit
//! for child position `j` receives `G · (onehot_j − 1)` with `G` larger than its input range,
//! so it is exactly off unless `j_k(i) = j`. With [`Nonlinearity::Exact`] each interpolant is
//! replaced by the function itself, which isolates the attention part: it reproduces BP to
//! round-off. The error and size as functions of `L`, the alphabets and the width are derived in
//! `proofs/T11-transformer-bp.md`.
//!
//! Longer than 600 lines because the construction is one proof: the interpolants, the layers
//! that carry the messages and the score they add up to are read together with T11's steps.
//! Its width sweep lives in [`sweep`].

use std::ops::Range;

use rayon::prelude::*;

use crate::bp::{self, Tokens};
use crate::model::{Jghm, Level, Part};

/// How the MLPs evaluate their scalar functions.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Nonlinearity {
    /// Piecewise-linear interpolant with this many ReLU units (knots) per scalar function.
    Relu { width: usize },
    /// The exact function (isolates the attention part; not a finite network).
    Exact,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum ScalarFn {
    Exp,
    Ln,
}

impl ScalarFn {
    fn eval(self, q: f64) -> f64 {
        match self {
            ScalarFn::Exp => q.exp(),
            ScalarFn::Ln => q.ln(),
        }
    }
}

/// A scalar function approximated by `f(t_0) + Σ_k c_k ReLU(q − t_k)`: `width` hidden units.
#[derive(Clone, Debug)]
struct Interpolant {
    knots: Vec<f64>,
    /// `c_k = s_k − s_{k-1}` (with `s_{-1} = 0`): the output weight of unit `k`.
    coef: Vec<f64>,
    /// `f(t_0)`: the output bias.
    bias: f64,
    /// Prefix sums `Σ_{k<K} c_k` and `Σ_{k<K} c_k t_k`, for [`Interpolant::eval_fast`].
    sum_c: Vec<f64>,
    sum_ct: Vec<f64>,
}

impl Interpolant {
    /// Knots on `[lo, hi]`: uniform for `exp`, geometric for `log` (`0 < lo`).
    fn new(f: ScalarFn, lo: f64, hi: f64, width: usize) -> Self {
        let n = width.max(2);
        // A degenerate domain (a constant row of Ψ) still needs two distinct knots.
        let hi = if hi > lo + 1e-9 * lo.abs().max(1e-300) { hi } else { lo + 1e-6 * lo.abs().max(1e-12) };
        let knots: Vec<f64> = (0..n)
            .map(|k| {
                let s = k as f64 / (n - 1) as f64;
                match f {
                    ScalarFn::Exp => lo + s * (hi - lo),
                    ScalarFn::Ln => (lo.ln() + s * (hi.ln() - lo.ln())).exp(),
                }
            })
            .collect();
        // Best uniform placement: the chord of a concave `log` lies below it by up to `η` (the
        // same on every geometric segment), the chord of `exp` above it by up to a factor `e^η`
        // (the same on every uniform segment); shifting by half of it, in the log domain the
        // outputs are read in, halves the worst error: `±η/2` either way.
        let eta = chord_error(f, knots[0], knots[1]);
        let values: Vec<f64> = knots
            .iter()
            .map(|&t| match f {
                ScalarFn::Ln => t.ln() + eta / 2.0,
                ScalarFn::Exp => t.exp() * (-eta / 2.0).exp(),
            })
            .collect();
        // Slope on [t_k, t_{k+1}]; the last unit keeps the last slope beyond the domain.
        let slopes: Vec<f64> = (0..n - 1).map(|k| (values[k + 1] - values[k]) / (knots[k + 1] - knots[k])).collect();
        let coef = (0..n - 1).map(|k| slopes[k] - if k == 0 { 0.0 } else { slopes[k - 1] }).chain([0.0]).collect();
        let coef: Vec<f64> = coef;
        let mut sum_c = vec![0.0];
        let mut sum_ct = vec![0.0];
        for (t, c) in knots.iter().zip(&coef) {
            sum_c.push(sum_c.last().unwrap_or(&0.0) + c);
            sum_ct.push(sum_ct.last().unwrap_or(&0.0) + c * t);
        }
        Interpolant { knots, coef, bias: values[0], sum_c, sum_ct }
    }

    /// The hidden layer's output for read-out `q` and gate value `g ∈ {0, 1}`:
    /// `f(t_0) · ReLU(g) + Σ_k c_k ReLU(q − t_k + G (g − 1))`. With `g = 1` this is the
    /// interpolant; with `g = 0` every unit's input is below zero, so the output is exactly 0.
    fn eval(&self, q: f64, g: f64) -> f64 {
        let shift = GATE * (g - 1.0);
        let mut out = self.bias * g.max(0.0);
        // Knots ascend, so once a unit's input is ≤ 0 every later unit's is too: the rest of
        // the sum is zeros, and stopping there changes nothing.
        for (t, c) in self.knots.iter().zip(&self.coef) {
            let z = q - t + shift;
            if z <= 0.0 {
                break;
            }
            out += c * z;
        }
        out
    }

    /// The same sum, reassociated: with `K` the number of knots below `q`, the active units give
    /// `Σ_{k<K} c_k (q − t_k) = q Σ_{k<K} c_k − Σ_{k<K} c_k t_k`, found by bisection in `O(log W)`.
    /// Equal to [`Interpolant::eval`] up to round-off (checked in the T11 tests).
    fn eval_fast(&self, q: f64, g: f64) -> f64 {
        if g <= 0.0 {
            return 0.0;
        }
        let below = self.knots.partition_point(|&t| t < q);
        self.bias * g + q * self.sum_c[below] - self.sum_ct[below]
    }
}

/// Worst error of the chord `c` of `f` on `[t0, t1]`, in the log domain: `max (log q − c(q))`
/// for `log`, `max (log c(q) − q)` for `exp`. For `log` the gap is largest where `f' = σ`, the
/// chord's slope; for `exp`, where `c'/c = 1`, i.e. `c(q) = σ`, at `q = t0 + 1 − e^{t0}/σ`,
/// giving `log σ − q`.
fn chord_error(f: ScalarFn, t0: f64, t1: f64) -> f64 {
    let slope = (f.eval(t1) - f.eval(t0)) / (t1 - t0);
    let chord = |q: f64| f.eval(t0) + slope * (q - t0);
    match f {
        ScalarFn::Ln => {
            let q = 1.0 / slope;
            q.ln() - chord(q)
        }
        ScalarFn::Exp => {
            let q = t0 + 1.0 - f.eval(t0) / slope;
            chord(q).ln() - q
        }
    }
}

/// One scalar channel of an MLP: `out += Σ_(slot, w) w · f(⟨input, x⟩)` if the gate is on.
#[derive(Clone, Debug)]
struct Channel {
    /// The linear read-out `⟨input, x⟩` of the stream (sparse).
    input: Vec<(usize, f64)>,
    /// Stream index of the positional one-hot that switches the channel on (`None`: always on).
    gate: Option<usize>,
    f: ScalarFn,
    /// The interpolant (absent for [`Nonlinearity::Exact`]).
    relu: Option<Interpolant>,
    /// Where the result is added, with which weight.
    output: Vec<(usize, f64)>,
}

/// Uniform attention within groups of tokens sharing an ancestor.
#[derive(Clone, Debug)]
struct Attention {
    /// The ancestor one-hot slot: query = `β ·` slot, key = slot.
    group: Range<usize>,
    /// The value slot (`ν_k`) and where the output goes (`h_{k-1}`), scaled by `m_k`.
    value: Range<usize>,
    output: Range<usize>,
    scale: f64,
}

/// The gate's shift `G`: larger than any read-out range of a gated channel (those read-outs lie
/// in `[0, 1]`), so a gated-off unit's input is negative.
const GATE: f64 = 1e3;

/// Inverse temperature of the grouping attention: `exp(−β)` underflows to 0 in f64.
const BETA: f64 = 1e3;

#[derive(Clone, Debug)]
struct Block {
    attention: Option<Attention>,
    mlp: Vec<Channel>,
}

/// The constructed transformer for one tower.
#[derive(Clone, Debug)]
pub struct BpTransformer {
    part: Part,
    width: usize,
    /// Stream width `d`.
    d: usize,
    /// Tokens per input.
    positions: usize,
    token_slot: Range<usize>,
    /// Positional encoding of each position (indices set to 1).
    position_ones: Vec<Vec<usize>>,
    blocks: Vec<Block>,
    /// Output `log p(z = a | x) = x[h0 + a] − x[lz] + log π(a)` after mean-pooling.
    h0: Range<usize>,
    lz: usize,
    log_prior: Vec<f64>,
    nonlinearity: Nonlinearity,
    /// Evaluate the MLPs unit by unit (the reference) instead of by bisection.
    unit_by_unit: bool,
}

/// Accuracy of the emulator against BP over a set of inputs.
#[derive(Clone, Debug, serde::Serialize)]
pub struct EmulationError {
    pub max_abs_error: f64,
    pub mean_abs_error: f64,
    pub layers: usize,
    pub width: usize,
    pub parameters: usize,
    pub samples: usize,
}

/// Allocates consecutive slots of the residual stream.
struct Stream(usize);
impl Stream {
    fn take(&mut self, n: usize) -> Range<usize> {
        self.0 += n;
        self.0 - n..self.0
    }
}

/// Smallest entry of a level's matrices: the bound `ψ_min` of the message ranges.
fn psi_min(level: &Level) -> f64 {
    level.transitions.iter().flat_map(|m| m.iter().copied()).fold(f64::INFINITY, f64::min)
}

impl BpTransformer {
    /// Builds the transformer for the image or text tower of a model without a trunk.
    /// Transitions must be strictly positive (their log must be bounded): the standard random
    /// family with flip > 0 is.
    pub fn new(model: &Jghm, part: Part, nonlinearity: Nonlinearity) -> Result<Self, BuildError> {
        if model.has_trunk() {
            return Err(BuildError::Trunk);
        }
        if part == Part::Shared {
            return Err(BuildError::SharedPart);
        }
        let levels = model.levels(part);
        if let Some(level) = levels.iter().position(|l| psi_min(l) <= 0.0) {
            return Err(BuildError::ZeroTransition { part, level });
        }
        let width = match nonlinearity {
            Nonlinearity::Relu { width } if width < 2 => return Err(BuildError::Width),
            Nonlinearity::Relu { width } => width,
            Nonlinearity::Exact => 0,
        };
        let l = levels.len();
        let s = |k: usize| if k == 0 { model.root_states() } else { levels[k - 1].states() };
        let m = |k: usize| levels[k - 1].children();
        let nodes_at = |k: usize| (1..=k).map(m).product::<usize>();
        let positions = nodes_at(l);

        // Slots of the residual stream.
        let mut st = Stream(0);
        let token_slot = st.take(s(l));
        let child_slot: Vec<Range<usize>> = (1..=l).map(|k| st.take(m(k))).collect(); // index k-1
        let ancestor_slot: Vec<Range<usize>> = (0..l).map(|k| st.take(nodes_at(k))).collect(); // index k
        let nu: Vec<Range<usize>> = (1..=l).map(|k| st.take(s(k - 1))).collect(); // ν_k at k-1
        let h: Vec<Range<usize>> = (0..l).map(|k| st.take(s(k))).collect();
        let e: Vec<Range<usize>> = (0..l).map(|k| st.take(s(k))).collect();
        let lz: Vec<usize> = (0..l).map(|_| st.take(1).start).collect();
        let p: Vec<Range<usize>> = (0..l).map(|k| st.take(if k == 0 { 0 } else { s(k) })).collect();

        // Positional encoding: leaf i's level-k ancestor is i / (leaves per level-k node).
        let position_ones = (0..positions)
            .map(|i| {
                let mut ones = vec![];
                for k in 1..=l {
                    let below = nodes_at(l) / nodes_at(k);
                    let node_k = i / below;
                    ones.push(child_slot[k - 1].start + node_k % m(k));
                    ones.push(ancestor_slot[k - 1].start + node_k / m(k));
                }
                ones
            })
            .collect();

        let log_prior: Vec<f64> = model.prior().iter().map(|p| p.ln()).collect();
        let make = |f: ScalarFn, lo: f64, hi: f64| match nonlinearity {
            Nonlinearity::Relu { width } => Some(Interpolant::new(f, lo, hi, width)),
            Nonlinearity::Exact => None,
        };
        let scalar = |f: ScalarFn, input: Vec<(usize, f64)>, (lo, hi): (f64, f64), output: Vec<(usize, f64)>| Channel {
            input,
            gate: None,
            f,
            relu: make(f, lo, hi),
            output,
        };
        let mut blocks = vec![];
        // ν_k(a) = log Σ_b Ψ_{k,j}(a, b) p_k(b) from the normalised p_k (p_L = the token
        // one-hot): one channel per (child position j, parent state a), switched on by j. The
        // argument lies between the row's smallest and largest entry.
        let message_block = |k: usize, p_k: Range<usize>| {
            let mut mlp = vec![];
            for (j, matrix) in levels[k - 1].transitions.iter().enumerate() {
                for a in 0..s(k - 1) {
                    let row = matrix.row(a);
                    let mut c = scalar(
                        ScalarFn::Ln,
                        p_k.clone().enumerate().map(|(b, idx)| (idx, matrix[(a, b)])).collect(),
                        (row.min(), row.max()),
                        vec![(nu[k - 1].start + a, 1.0)],
                    );
                    c.gate = Some(child_slot[k - 1].start + j);
                    mlp.push(c);
                }
            }
            Block { attention: None, mlp }
        };
        blocks.push(message_block(l, token_slot.clone()));
        for k in (1..=l).rev() {
            let (up, root) = (k - 1, k == 1);
            // Attention: h_{k-1} = Σ_siblings ν_k ∈ [m_k log ψ_min, 0]. MLP: e_{k-1} = exp(h_{k-1})
            // (times π at the root, a constant shift of the read-out: a hidden-layer bias).
            let h_lo = m(k) as f64 * psi_min(&levels[k - 1]).ln();
            let lo = if root { h_lo + log_prior.iter().copied().fold(0.0, f64::min) } else { h_lo };
            let exp_h = (0..s(up))
                .map(|a| {
                    let mut input = vec![(h[up].start + a, 1.0)];
                    if root {
                        input.push((usize::MAX, log_prior[a]));
                    }
                    scalar(ScalarFn::Exp, input, (lo, 0.0), vec![(e[up].start + a, 1.0)])
                })
                .collect();
            let attention = Attention {
                group: ancestor_slot[up].clone(),
                value: nu[k - 1].clone(),
                output: h[up].clone(),
                scale: m(k) as f64,
            };
            blocks.push(Block { attention: Some(attention), mlp: exp_h });
            // lz_{k-1} = log Σ_a e_{k-1}(a): its error shifts every state alike and cancels.
            let sum_e = e[up].clone().map(|idx| (idx, 1.0)).collect();
            let n = s(up) as f64;
            blocks.push(Block {
                attention: None,
                mlp: vec![scalar(ScalarFn::Ln, sum_e, (n * lo.exp(), n), vec![(lz[up], 1.0)])],
            });
            if root {
                break;
            }
            // p_{k-1} = exp(h_{k-1} − lz_{k-1}) ∈ [lo − log S, 0], normalised; then ν_{k-1}.
            let normalised = (0..s(up))
                .map(|a| {
                    let input = vec![(h[up].start + a, 1.0), (lz[up], -1.0)];
                    scalar(ScalarFn::Exp, input, (lo - n.ln(), 0.0), vec![(p[up].start + a, 1.0)])
                })
                .collect();
            blocks.push(Block { attention: None, mlp: normalised });
            blocks.push(message_block(up, p[up].clone()));
        }
        Ok(BpTransformer {
            part,
            width,
            d: st.0,
            positions,
            token_slot,
            position_ones,
            blocks,
            h0: h[0].clone(),
            lz: lz[0],
            log_prior,
            nonlinearity,
            unit_by_unit: false,
        })
    }

    /// The same network, its MLPs evaluated unit by unit (`Σ_k c_k ReLU(·)` term by term): the
    /// slow reference for the bisection evaluation.
    pub fn unit_by_unit(mut self) -> Self {
        self.unit_by_unit = true;
        self
    }

    /// Number of transformer blocks (attention + MLP): `4L − 1`.
    pub fn layers(&self) -> usize {
        self.blocks.len()
    }

    /// Stream width `d`.
    pub fn stream_width(&self) -> usize {
        self.d
    }

    /// Parameters of the dense network this construction specifies: token and positional
    /// embeddings, per block `W_Q, W_K, W_V, W_O` (`4d²`) and the MLP (`2 d H + H + d`, with `H`
    /// = channels × (width + 1) hidden units), and the output projection (`d S_0 + S_0`).
    pub fn parameters(&self) -> usize {
        let d = self.d;
        let embed = self.token_slot.len() * d + self.positions * d;
        let blocks: usize = self
            .blocks
            .iter()
            .map(|b| {
                // Each channel: `width` knot units and one gated bias unit.
                let hidden = b.mlp.len() * (self.width + 1);
                4 * d * d + 2 * d * hidden + hidden + d
            })
            .sum();
        embed + blocks + d * self.log_prior.len() + self.log_prior.len()
    }

    /// The log root posterior `log p̂(z | x)` computed by the network; an error when `x` does
    /// not have one token per position, each in the vocabulary.
    pub fn log_root_posterior(&self, x: &[usize]) -> Result<Vec<f64>, crate::evidence::EvidenceError> {
        use crate::evidence::EvidenceError;
        if x.len() != self.positions {
            return Err(EvidenceError::Length { part: self.part, got: x.len(), expected: self.positions });
        }
        let vocab = self.token_slot.len();
        if let Some((position, &token)) = x.iter().enumerate().find(|(_, &t)| t >= vocab) {
            return Err(EvidenceError::OutOfVocabulary { part: self.part, position, token, vocab });
        }
        Ok(self.forward(x))
    }

    /// [`BpTransformer::log_root_posterior`] of tokens already checked.
    fn forward(&self, x: &[usize]) -> Vec<f64> {
        let (n, d) = (self.positions, self.d);
        let mut stream = vec![0.0; n * d];
        for (i, row) in stream.chunks_mut(d).enumerate() {
            row[self.token_slot.start + x[i]] = 1.0;
            for &one in &self.position_ones[i] {
                row[one] = 1.0;
            }
        }
        for block in &self.blocks {
            if let Some(att) = &block.attention {
                self.attend(att, &mut stream);
            }
            for row in stream.chunks_mut(d) {
                self.mlp(&block.mlp, row);
            }
        }
        // Mean-pool over positions, then the linear projection.
        let mut pooled = vec![0.0; d];
        for row in stream.chunks(d) {
            for (p, v) in pooled.iter_mut().zip(row) {
                *p += v / n as f64;
            }
        }
        self.h0.clone().zip(&self.log_prior).map(|(idx, lp)| pooled[idx] - pooled[self.lz] + lp).collect()
    }

    /// `out_i += scale · Σ_j softmax_j(β ⟨g_i, g_j⟩) v_j`: attention with query `β g`, key `g`,
    /// value `ν`, all other weights zero.
    fn attend(&self, att: &Attention, stream: &mut [f64]) {
        let (n, d) = (self.positions, self.d);
        let mut out = vec![0.0; n * att.value.len()];
        for i in 0..n {
            let gi = &stream[i * d + att.group.start..i * d + att.group.end];
            let scores: Vec<f64> = (0..n)
                .map(|j| {
                    let gj = &stream[j * d + att.group.start..j * d + att.group.end];
                    BETA * gi.iter().zip(gj).map(|(a, b)| a * b).sum::<f64>()
                })
                .collect();
            let top = scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let weights: Vec<f64> = scores.iter().map(|s| (s - top).exp()).collect();
            let z: f64 = weights.iter().sum();
            let o = &mut out[i * att.value.len()..(i + 1) * att.value.len()];
            for (j, w) in weights.iter().enumerate().filter(|(_, w)| **w > 0.0) {
                for (oa, v) in o.iter_mut().zip(&stream[j * d + att.value.start..j * d + att.value.end]) {
                    *oa += att.scale * w / z * v;
                }
            }
        }
        for i in 0..n {
            for (a, idx) in att.output.clone().enumerate() {
                stream[i * d + idx] += out[i * att.value.len() + a];
            }
        }
    }

    /// The MLP on one position: every channel reads the stream before any writes (a layer).
    fn mlp(&self, channels: &[Channel], row: &mut [f64]) {
        let results: Vec<f64> = channels
            .iter()
            .map(|c| {
                let q: f64 = c.input.iter().map(|&(idx, w)| if idx == usize::MAX { w } else { w * row[idx] }).sum();
                let g = c.gate.map_or(1.0, |idx| row[idx]);
                match &c.relu {
                    Some(r) if self.unit_by_unit => r.eval(q, g),
                    Some(r) => r.eval_fast(q, g),
                    // The exact function, switched by the same gate.
                    None if g > 0.0 => g * c.f.eval(q),
                    None => 0.0,
                }
            })
            .collect();
        for (c, v) in channels.iter().zip(results) {
            for &(idx, w) in &c.output {
                row[idx] += w * v;
            }
        }
    }

    /// Compares with exact BP over `inputs`: maximum and mean absolute error of `log p(z | x)`
    /// over inputs and root states. Parallel over fixed chunks; order-independent reductions.
    pub fn error_against_bp(&self, model: &Jghm, inputs: &[Vec<usize>]) -> EmulationError {
        let errors: Vec<(f64, f64)> = inputs
            .par_chunks(64)
            .map(|chunk| {
                let mut ws = bp::Workspace::new(model);
                let mut exact = vec![0.0; model.root_states()];
                let (mut max, mut sum) = (0.0f64, 0.0);
                for x in chunk {
                    let obs = if self.part == Part::Image {
                        Tokens { image: Some(x), text: None }
                    } else {
                        Tokens { image: None, text: Some(x) }
                    };
                    ws.upward(model, &obs);
                    ws.log_root_posterior_into(model, &mut exact);
                    for (a, b) in self.forward(x).iter().zip(&exact) {
                        max = max.max((a - b).abs());
                        sum += (a - b).abs();
                    }
                }
                (max, sum)
            })
            .collect();
        let max_abs_error = errors.iter().map(|e| e.0).fold(0.0, f64::max);
        let total: f64 = errors.iter().map(|e| e.1).sum();
        EmulationError {
            max_abs_error,
            mean_abs_error: total / (inputs.len() * model.root_states()) as f64,
            layers: self.layers(),
            width: self.width,
            parameters: self.parameters(),
            samples: inputs.len(),
        }
    }

    /// The nonlinearity this network was built with.
    pub fn nonlinearity(&self) -> Nonlinearity {
        self.nonlinearity
    }
}

/// The emulators of both towers as a two-tower score, in T7's form on their outputs:
/// `S(x, y) = log Σ_z exp(log f̂(x)_z + log ĝ(y)_z − log π(z))`. With exact nonlinearities it is
/// the PMI (T7); its excess risk and zero-shot accuracy approach the exact ones as the width grows.
pub struct EmulatedScore {
    pub image: BpTransformer,
    pub text: BpTransformer,
}

impl EmulatedScore {
    pub fn new(model: &Jghm, nonlinearity: Nonlinearity) -> Result<Self, BuildError> {
        Ok(EmulatedScore {
            image: BpTransformer::new(model, Part::Image, nonlinearity)?,
            text: BpTransformer::new(model, Part::Text, nonlinearity)?,
        })
    }

    fn similarity(&self, f: &[f64], g: &[f64]) -> f64 {
        crate::logspace::log_sum_exp_iter(f.iter().zip(g).zip(&self.image.log_prior).map(|((a, b), lp)| a + b - lp))
    }

    fn encode_all(net: &BpTransformer, seqs: &[Vec<usize>]) -> Vec<Vec<f64>> {
        // A sequence that does not fit the model encodes as NaN (its scores are NaN).
        seqs.par_iter().map(|s| net.log_root_posterior(s).unwrap_or_else(|_| vec![f64::NAN; net.h0.len()])).collect()
    }
}

impl crate::score::Score for EmulatedScore {
    fn name(&self) -> String {
        match self.image.nonlinearity {
            Nonlinearity::Relu { width } => format!("emulated BP (width {width})"),
            Nonlinearity::Exact => "emulated BP (exact nonlinearities)".into(),
        }
    }
    fn score(&self, x: &[usize], y: &[usize]) -> f64 {
        match (self.image.log_root_posterior(x), self.text.log_root_posterior(y)) {
            (Ok(f), Ok(g)) => self.similarity(&f, &g),
            // Tokens that do not fit the model: no weight, as for the exact PMI.
            _ => f64::NEG_INFINITY,
        }
    }
    /// Encodes each side once, then combines every pair.
    fn grid(&self, xs: &[Vec<usize>], ys: &[Vec<usize>]) -> Vec<f64> {
        let (fs, gs) = (Self::encode_all(&self.image, xs), Self::encode_all(&self.text, ys));
        fs.iter().flat_map(|f| gs.iter().map(|g| self.similarity(f, g)).collect::<Vec<_>>()).collect()
    }
}

pub mod sweep;

pub use sweep::{SweepError, SweepRow};

/// Why the transformer cannot be built for a model.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum BuildError {
    #[error("the BP transformer is built for two-tower models (no shared trunk)")]
    Trunk,
    #[error("choose the image or the text tower")]
    SharedPart,
    #[error("{part} level {level} has a zero transition entry; the construction needs Ψ > 0")]
    ZeroTransition { part: Part, level: usize },
    #[error("the width must be at least 2")]
    Width,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The interpolant is the chord shifted by half its worst error, so that its error in the
    /// log domain equioscillates: `+η/2` at the knots, `−η/2` where the chord is farthest, never
    /// more (`f̂ − log` for `log`, `log f̂ − q` for `exp`). Without the shift it would be `η`.
    #[test]
    fn interpolants_err_by_half_the_chord_error_either_way() {
        for (f, lo, hi) in [(ScalarFn::Ln, 0.5, 8.0), (ScalarFn::Exp, -2.0, 1.5)] {
            let interp = Interpolant::new(f, lo, hi, 9);
            let eta = chord_error(f, interp.knots[0], interp.knots[1]);
            assert!(eta > 1e-3, "{f:?}: a coarse interpolant ({eta})");
            let error = |q: f64| match f {
                ScalarFn::Ln => interp.eval(q, 1.0) - q.ln(),
                ScalarFn::Exp => interp.eval(q, 1.0).ln() - q,
            };
            let grid: Vec<f64> = (0..=8000).map(|i| lo + (hi - lo) * i as f64 / 8000.0).collect();
            let (min, max) =
                grid.iter().map(|&q| error(q)).fold((f64::MAX, f64::MIN), |(a, b), e| (a.min(e), b.max(e)));
            // `log` is above at the knots (`lo`, `hi` among them) and below between them; `exp`
            // the other way round.
            let (at_knots, between) = if f == ScalarFn::Ln { (max, -min) } else { (-min, max) };
            assert!((at_knots - eta / 2.0).abs() < 1e-12, "{f:?}: {min} {max} {eta}");
            assert!(between <= eta / 2.0 + 1e-12 && between > 0.999 * eta / 2.0, "{f:?}: {min} {max} {eta}");
        }
    }
}
