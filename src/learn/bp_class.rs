//! The well-specified class: an encoder that runs exact BP on one tower of a JGHM whose
//! transition matrices are learned (the book, Belief propagation, T7), forward and backward.
//!
//! The tower has levels `k = 1..L`, `m_k` children per node, child position `j` drawn with
//! `Ψ_{k,j} = softmax_rows(θ_{k,j})` (`S_{k−1} × S_k`, learnable logits `θ`). Its output is the
//! root's log-likelihood vector `u(z) = h_0(z) = log p_θ(x | z)`; the [`super::score_head::Head::T7`]
//! head adds the learnable prior and gives `S = log Σ_z f_z g_z / π_z`, so at `θ` = the truth
//! the score is the exact PMI (T7) and the CLIP loss is at its minimum (T2).
//!
//! Forward (upward pass, log domain; node `q` of level `k` has children `q m_{k+1} + j`):
//! ```text
//! μ_L[q](a) = log Ψ_{L,j}(a, x_q)                                    (leaf q, position j = q mod m_L)
//! h_k[q](a) = Σ_j μ_{k+1}[q m_{k+1} + j](a)                          (0 ≤ k < L)
//! μ_k[q](a') = log Σ_a Ψ_{k,j}(a', a) e^{h_k[q](a)}                  (1 ≤ k < L)
//! u = h_0[0]
//! ```
//! Backward, derived through the log-sum-exp: with the responsibility
//! `r(a', a) = Ψ(a', a) e^{h(a) − μ(a')}` (a row-stochastic matrix: the posterior of the child's
//! state given the parent's state and the evidence below), and `dμ_k[q] = dh_{k−1}[parent]`,
//! ```text
//! dh_k[q](a)        = Σ_{a'} dμ_k[q](a') r(a', a)
//! d log Ψ_{k,j}(a', a) += dμ_k[q](a') r(a', a)
//! d log Ψ_{L,j}(a, x_q) += dμ_L[q](a)                                 (leaves)
//! dθ(a, b)          = d log Ψ(a, b) − Ψ(a, b) Σ_{b'} d log Ψ(a, b')   (row softmax)
//! ```
//! because `∂μ(a')/∂h(a) = ∂μ(a')/∂log Ψ(a', a) = r(a', a)` and `∂ log Ψ(a, b')/∂θ(a, b) =
//! δ_{bb'} − Ψ(a, b)`.

use rand_distr::{Distribution, Normal};

use super::encoder::Encoder;
use super::real::Real;
use crate::model::{Jghm, Part};
use crate::rng::Rng;

/// One tower's shape: `(children m_k, states S_k)` per level, and the root's `S_0`.
#[derive(Clone, Debug)]
pub struct BpEncoder {
    root_states: usize,
    levels: Vec<(usize, usize)>,
    /// Offset of `θ_{k,j}` (k from 1) in the flat parameters: `at[k−1][j]`.
    at: Vec<Vec<usize>>,
    total: usize,
    /// Nodes per level `n_k = Π_{i ≤ k} m_i` (`n_0 = 1`), and offsets of each level's
    /// `h` (and `μ`) vectors in a per-sample buffer.
    nodes: Vec<usize>,
    h_at: Vec<usize>,
    per_sample: usize,
    len: usize,
}

/// Parameter initialisation: logits `N(0, INIT_STD²)`, away from the uniform saddle.
pub const INIT_STD: f64 = 0.5;

impl BpEncoder {
    /// The encoder of `part`'s tower of `model` (shape only; the model's matrices are not used).
    /// `None` for a model with a shared trunk (the class is defined for two-tower JGHMs).
    pub fn for_tower(model: &Jghm, part: Part) -> Option<Self> {
        if model.has_trunk() {
            return None;
        }
        let levels = model.levels(part).iter().map(|l| (l.children(), l.states())).collect();
        Some(Self::new(model.root_states(), levels))
    }

    /// The encoder of `part`'s tower with `factor` times the true hidden states at the root and at
    /// every internal level (the leaves keep the vocabulary). For `factor ≥ 1` the class still
    /// contains the truth (copy each true state `factor` times and split its prior mass), and
    /// the extra states let gradient descent escape the minima where two true states share one
    /// learned state (proofs/T12-sample-complexity.md). `factor = 1` is [`Self::for_tower`].
    pub fn with_state_factor(model: &Jghm, part: Part, factor: usize) -> Option<Self> {
        if model.has_trunk() {
            return None;
        }
        let k = factor.max(1);
        let levels = model.levels(part);
        let last = levels.len() - 1;
        let shape = levels
            .iter()
            .enumerate()
            .map(|(i, l)| (l.children(), if i == last { l.states() } else { k * l.states() }))
            .collect();
        Some(Self::new(k * model.root_states(), shape))
    }

    /// The logits that reproduce `part`'s true transitions: `θ = log Ψ` (row softmax of
    /// `log Ψ` is `Ψ`). Zero entries of `Ψ` become a very negative finite logit.
    pub fn truth(model: &Jghm, part: Part) -> Vec<f64> {
        model
            .levels(part)
            .iter()
            .flat_map(|level| level.transitions.iter())
            .flat_map(|psi| {
                (0..psi.nrows()).flat_map(move |a| (0..psi.ncols()).map(move |b| psi[(a, b)].ln().max(-700.0)))
            })
            .collect()
    }

    /// The logits of [`Self::with_state_factor`]`(model, part, k)` that reproduce the truth: hidden
    /// state `a` of the model becomes the `k` copies `a·k + r`, every copy of a parent state
    /// keeps the true row, and every copy of a child state `b` gets the logit `log Ψ[a, b]`, so
    /// the row softmax gives each copy `Ψ[a, b]/k` and summing over the copies gives back `Ψ`.
    /// Then `log p_θ(x | a·k + r) = log p(x | a)` for every copy, and with the prior split
    /// evenly (`ρ_{a·k+r} = log π_a`) the T7 score is the exact PMI: the `1/k`s cancel.
    pub fn truth_with_state_factor(model: &Jghm, part: Part, factor: usize) -> Vec<f64> {
        let k = factor.max(1);
        let levels = model.levels(part);
        let last = levels.len() - 1;
        let mut theta = vec![];
        for (i, level) in levels.iter().enumerate() {
            let copies = if i == last { 1 } else { k };
            for psi in &level.transitions {
                for row in 0..k * psi.nrows() {
                    let a = row / k;
                    for col in 0..copies * psi.ncols() {
                        theta.push(psi[(a, col / copies)].ln().max(-700.0));
                    }
                }
            }
        }
        theta
    }

    pub fn new(root_states: usize, levels: Vec<(usize, usize)>) -> Self {
        let mut total = 0;
        let mut rows = root_states;
        let mut at = vec![];
        for &(m, s) in &levels {
            at.push((0..m).map(|j| total + j * rows * s).collect());
            total += m * rows * s;
            rows = s;
        }
        let mut nodes = vec![1];
        for &(m, _) in &levels {
            nodes.push(nodes.last().expect("nonempty") * m);
        }
        // h_k for k = 0..L−1 and μ_k for k = 1..L, each n_k vectors of the parent's size
        // S_{k−1} (μ) or S_k (h); laid out as h_0, μ_1, h_1, μ_2, ...
        let mut h_at = vec![];
        let mut off = 0;
        let mut states = vec![root_states];
        states.extend(levels.iter().map(|l| l.1));
        for k in 0..=levels.len() {
            h_at.push(off);
            if k < levels.len() {
                off += nodes[k] * states[k]; // h_k
            }
            if k >= 1 {
                off += nodes[k] * states[k - 1]; // μ_k
            }
        }
        let len = *nodes.last().expect("nonempty");
        BpEncoder { root_states, levels, at, total, nodes, h_at, per_sample: off, len }
    }

    fn states(&self, k: usize) -> usize {
        if k == 0 {
            self.root_states
        } else {
            self.levels[k - 1].1
        }
    }
    /// Offset of `h_k` (k < L) in a sample's buffer.
    fn h_off(&self, k: usize) -> usize {
        self.h_at[k]
    }
    /// Offset of `μ_k` (k ≥ 1): right after `h_k` (or at `h_at[L]` for the leaves).
    fn mu_off(&self, k: usize) -> usize {
        if k < self.levels.len() {
            self.h_at[k] + self.nodes[k] * self.states(k)
        } else {
            self.h_at[k]
        }
    }

    /// `log Ψ` and `Ψ` for every `θ_{k,j}` (row softmax), in the parameters' layout.
    fn transitions<R: Real>(&self, theta: &[R], log_psi: &mut [R], psi: &mut [R]) {
        let mut at = 0;
        let mut parent = self.root_states;
        for &(m, s) in &self.levels {
            for _ in 0..m * parent {
                let row = &theta[at..at + s];
                let mx = row.iter().copied().fold(R::neg_infinity(), R::max);
                let lse = mx + row.iter().map(|&t| (t - mx).exp()).sum::<R>().ln();
                for b in 0..s {
                    log_psi[at + b] = row[b] - lse;
                    psi[at + b] = log_psi[at + b].exp();
                }
                at += s;
            }
            parent = s;
        }
    }
}

/// Per-chunk buffers: every sample's `h` and `μ`, the transitions, and their gradients.
pub struct BpCache<R> {
    buf: Vec<R>,
    dbuf: Vec<R>,
    log_psi: Vec<R>,
    psi: Vec<R>,
    dlog_psi: Vec<R>,
    e: Vec<R>,
}

impl<R: Real> Encoder<R> for BpEncoder {
    type Cache = BpCache<R>;

    fn num_params(&self) -> usize {
        self.total
    }
    fn seq_len(&self) -> usize {
        self.len
    }
    fn vocab(&self) -> usize {
        self.levels.last().map_or(self.root_states, |l| l.1)
    }
    fn out_dim(&self) -> usize {
        self.root_states
    }
    fn init(&self, rng: &mut Rng) -> Vec<R> {
        let normal = Normal::new(0.0, INIT_STD).expect("valid normal");
        (0..self.total).map(|_| R::of(normal.sample(rng))).collect()
    }
    fn cache_len(&self, batch: usize) -> usize {
        let widest = (0..=self.levels.len()).map(|k| self.states(k)).max().unwrap_or(1);
        (batch + 1) * self.per_sample + 3 * self.total + widest
    }

    fn new_cache(&self, batch: usize) -> BpCache<R> {
        let widest = (0..=self.levels.len()).map(|k| self.states(k)).max().unwrap_or(1);
        BpCache {
            buf: vec![R::zero(); batch * self.per_sample],
            dbuf: vec![R::zero(); self.per_sample],
            log_psi: vec![R::zero(); self.total],
            psi: vec![R::zero(); self.total],
            dlog_psi: vec![R::zero(); self.total],
            e: vec![R::zero(); widest],
        }
    }

    fn forward(&self, theta: &[R], tokens: &[u32], b: usize, cache: &mut BpCache<R>, out: &mut [R]) {
        self.transitions(theta, &mut cache.log_psi, &mut cache.psi);
        let depth = self.levels.len();
        for i in 0..b {
            let buf = &mut cache.buf[i * self.per_sample..(i + 1) * self.per_sample];
            let x = &tokens[i * self.len..(i + 1) * self.len];
            // μ_L[q](a) = log Ψ_{L,j}(a, x_q)
            let (m, s) = self.levels[depth - 1];
            let sp = self.states(depth - 1);
            let mu = self.mu_off(depth);
            for (q, &tok) in x.iter().enumerate() {
                let at = self.at[depth - 1][q % m];
                for a in 0..sp {
                    buf[mu + q * sp + a] = cache.log_psi[at + a * s + tok as usize];
                }
            }
            for k in (0..depth).rev() {
                let (m, sk) = (self.levels[k].0, self.states(k));
                let (h, mu_child) = (self.h_off(k), self.mu_off(k + 1));
                // h_k[q](a) = Σ_j μ_{k+1}[q m + j](a)
                for q in 0..self.nodes[k] {
                    for a in 0..sk {
                        let mut acc = R::zero();
                        for j in 0..m {
                            acc += buf[mu_child + (q * m + j) * sk + a];
                        }
                        buf[h + q * sk + a] = acc;
                    }
                }
                if k == 0 {
                    break;
                }
                // μ_k[q](a') = c + log Σ_a Ψ_{k,j}(a', a) e^{h(a) − c},  c = max_a h(a)
                let (mk, sp) = (self.levels[k - 1].0, self.states(k - 1));
                let mu = self.mu_off(k);
                for q in 0..self.nodes[k] {
                    let hq = &buf[h + q * sk..h + (q + 1) * sk];
                    let c = hq.iter().copied().fold(R::neg_infinity(), R::max);
                    for (e, &ha) in cache.e.iter_mut().zip(hq) {
                        *e = (ha - c).exp();
                    }
                    let at = self.at[k - 1][q % mk];
                    for ap in 0..sp {
                        let row = &cache.psi[at + ap * sk..at + (ap + 1) * sk];
                        let s: R = row.iter().zip(&cache.e[..sk]).map(|(&p, &e)| p * e).sum();
                        buf[mu + q * sp + ap] = c + s.ln();
                    }
                }
            }
            out[i * self.root_states..(i + 1) * self.root_states].copy_from_slice(&buf[..self.root_states]);
        }
    }

    fn backward(&self, _theta: &[R], tokens: &[u32], b: usize, cache: &mut BpCache<R>, dout: &[R], dtheta: &mut [R]) {
        let depth = self.levels.len();
        cache.dlog_psi.iter_mut().for_each(|d| *d = R::zero());
        for i in 0..b {
            let buf = &cache.buf[i * self.per_sample..(i + 1) * self.per_sample];
            let dbuf = &mut cache.dbuf;
            let x = &tokens[i * self.len..(i + 1) * self.len];
            dbuf[..self.root_states].copy_from_slice(&dout[i * self.root_states..(i + 1) * self.root_states]);
            for k in 0..depth {
                let (m, sk) = (self.levels[k].0, self.states(k));
                let (h, mu_child) = (self.h_off(k), self.mu_off(k + 1));
                // h_k[q] = Σ_j μ_{k+1}[q m + j]  ⇒  dμ_{k+1}[q m + j] = dh_k[q]
                for q in 0..self.nodes[k] {
                    for j in 0..m {
                        for a in 0..sk {
                            dbuf[mu_child + (q * m + j) * sk + a] = dbuf[h + q * sk + a];
                        }
                    }
                }
                let kc = k + 1; // the child level, whose messages μ_{kc} we now differentiate
                let (mc, sc) = self.levels[k];
                if kc == depth {
                    // μ_L[q](a) = log Ψ_{L,j}(a, x_q)  ⇒  d log Ψ(a, x_q) += dμ(a)
                    for (q, &tok) in x.iter().enumerate() {
                        let at = self.at[depth - 1][q % mc];
                        for a in 0..sk {
                            cache.dlog_psi[at + a * sc + tok as usize] += dbuf[mu_child + q * sk + a];
                        }
                    }
                    continue;
                }
                // μ_{kc}[q](a') = log Σ_a Ψ(a', a) e^{h(a)}, r(a', a) = Ψ(a', a) e^{h(a) − μ(a')}
                let hc = self.h_off(kc);
                for q in 0..self.nodes[kc] {
                    let at = self.at[kc - 1][q % mc];
                    // r(a', a) = Ψ(a', a) e(a) / s(a') with e(a) = e^{h(a) − c}, s(a') = e^{μ(a') − c},
                    // c = max_a h(a): 2S exponentials per node instead of S².
                    let hq = &buf[hc + q * sc..hc + (q + 1) * sc];
                    let c = hq.iter().copied().fold(R::neg_infinity(), R::max);
                    for (e, &ha) in cache.e.iter_mut().zip(hq) {
                        *e = (ha - c).exp();
                    }
                    for a in 0..sc {
                        dbuf[hc + q * sc + a] = R::zero();
                    }
                    for ap in 0..sk {
                        let dmu = dbuf[mu_child + q * sk + ap];
                        // dμ(a') / s(a')
                        let w = dmu / (buf[mu_child + q * sk + ap] - c).exp();
                        for a in 0..sc {
                            let r_dmu = cache.psi[at + ap * sc + a] * cache.e[a] * w;
                            // dh(a) += dμ(a') r(a', a);  d log Ψ(a', a) += dμ(a') r(a', a)
                            dbuf[hc + q * sc + a] += r_dmu;
                            cache.dlog_psi[at + ap * sc + a] += r_dmu;
                        }
                    }
                }
            }
        }
        // dθ(a, b) = d log Ψ(a, b) − Ψ(a, b) Σ_b' d log Ψ(a, b')
        let mut at = 0;
        let mut parent = self.root_states;
        for &(m, s) in &self.levels {
            for _ in 0..m * parent {
                let total: R = cache.dlog_psi[at..at + s].iter().copied().sum();
                for bb in 0..s {
                    dtheta[at + bb] += cache.dlog_psi[at + bb] - cache.psi[at + bb] * total;
                }
                at += s;
            }
            parent = s;
        }
    }
}
