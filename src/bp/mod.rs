//! Exact inference on a JGHM by belief propagation, in the log domain (the book, Belief propagation, theorem T1).
//!
//! Upward pass, for every node `u` from the leaves to the root:
//!
//! ```text
//! h_u(b) = log λ_u(b)                       (u a leaf)
//! h_u(b) = Σ_{w child of u} μ_w(b)          (u internal)
//! μ_u(a) = log Σ_b Ψ_u(a, b) exp(h_u(b))    (message from u to its parent)
//! log p(evidence) = log Σ_a π(a) exp(h_root(a)),   p(z = a | evidence) ∝ π(a) exp(h_root(a))
//! ```
//!
//! Downward pass, from the root: the *outside* log-weight `o_root = log π`, and for a child `u`
//! of `v`, `o_u(b) = log Σ_a exp(o_v(a) + Σ_{w child of v, w ≠ u} μ_w(a)) Ψ_u(a, b)`; the marginal
//! is `p(z_u = b | evidence) ∝ exp(o_u(b) + h_u(b))`. Exact conditional samples draw the root
//! from its posterior, then each child from `Ψ_u(a, ·) exp(h_u(·))`, normalised.
//!
//! A subtree whose leaves are all missing sends the message `μ = 0` (rows are stochastic), so
//! it is skipped: `log p(x)` costs one pass over the image tower only.
//!
//! [`Workspace`] holds every buffer, so a batch of observations allocates nothing per
//! observation; [`brute_force`] is the independent oracle the tests compare against.
//!
//! Four engines compute these quantities, each checked against this one: [`fast`] (batched
//! `log p` and root posteriors), [`marginals`](mod@marginals) (batched node marginals), [`incremental`] (every
//! next-token conditional of a text in one pass), all in the probability domain and handing
//! what leaves their range back to the log-domain [`Workspace`].

pub mod brute_force;
pub mod fast;
pub mod incremental;
mod lanes;
pub mod marginals;
pub mod pool;

pub use incremental::Incremental;
pub use marginals::{BatchMarginals, MarginalWorkspace};
pub use pool::WorkspacePool;

use crate::evidence::{Evidence, EvidenceError, Leaf};
pub use crate::evidence::{LeafView, Observation, Tokens};
use crate::logspace::{log_sum_exp, log_sum_exp_iter};
use crate::model::{Jghm, Part};
use crate::rng::{self, Rng};

/// Failures of inference on well-formed input.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum BpError {
    #[error(transparent)]
    Evidence(#[from] EvidenceError),
    #[error("the observation has probability zero under the model ({what} = 0), so {needed} is undefined")]
    ZeroProbability { what: &'static str, needed: &'static str },
    /// Named evidence of probability zero: `evidence` is "image", "text", "pair (image, text)"...
    #[error("the {evidence} has probability zero under the model, so {needed} is undefined")]
    Impossible { evidence: &'static str, needed: &'static str },
    #[error("the prefix has {prefix} tokens; the text has {positions} positions, so there is no next token")]
    NoNextToken { prefix: usize, positions: usize },
}

/// Reusable buffers for BP on one model: after [`Workspace::upward`], `h` and `mu` hold the
/// upward quantities of the last observation.
#[derive(Clone, Debug)]
pub struct Workspace {
    /// `h_u(b)` at `tree.span(u)`: log-likelihood of the evidence below `u` given `z_u = b`.
    h: Vec<f64>,
    /// `μ_u(a)` at `msg_offsets[u]..+S_parent(u)`: message from `u` to its parent.
    mu: Vec<f64>,
    msg_offsets: Vec<usize>,
    /// Whether the subtree of `u` holds no evidence (message 0, skipped).
    empty: Vec<bool>,
    /// `o_u(b)`, outside log-weights (downward pass).
    outside: Vec<f64>,
    scratch: Vec<f64>,
    log_likelihood: f64,
}

impl Workspace {
    pub fn new(model: &Jghm) -> Self {
        let tree = model.tree();
        let mut msg_offsets = Vec::with_capacity(tree.nodes.len());
        let mut total = 0;
        for node in &tree.nodes {
            msg_offsets.push(total);
            total += node.parent.map_or(0, |p| tree.nodes[p].states);
        }
        let widest = tree.nodes.iter().map(|n| n.states).max().unwrap_or(1);
        Workspace {
            h: vec![0.0; tree.total_states],
            mu: vec![0.0; total],
            msg_offsets,
            empty: vec![false; tree.nodes.len()],
            outside: vec![0.0; tree.total_states],
            scratch: vec![0.0; widest],
            log_likelihood: f64::NAN,
        }
    }

    /// The upward pass; returns `log p(evidence)` (`-inf` when the evidence is impossible).
    pub fn upward(&mut self, model: &Jghm, obs: &impl Observation) -> f64 {
        let tree = model.tree();
        for u in (0..tree.nodes.len()).rev() {
            let node = &tree.nodes[u];
            let span = tree.span(u);
            if let Some((part, position)) = tree.leaf_slot[u] {
                self.leaf_upward(model, u, obs.leaf(part, position));
                continue;
            }
            // h_u(b) = Σ_{w child of u} μ_w(b), skipping subtrees without evidence.
            self.empty[u] = node.children.iter().all(|&w| self.empty[w]);
            self.h[span.clone()].fill(0.0);
            for &w in node.children.iter().filter(|&&w| !self.empty[w]) {
                let m = self.msg_offsets[w];
                for (hb, mb) in self.h[span.clone()].iter_mut().zip(&self.mu[m..m + node.states]) {
                    *hb += mb;
                }
            }
            if let (Some(id), false) = (node.transition, self.empty[u]) {
                // μ_u(a) = c + log Σ_b Ψ_u(a, b) exp(h_u(b) - c),  c = max_b h_u(b).
                let psi = model.transition(id);
                let h = &self.h[span];
                let c = h.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                let m = self.msg_offsets[u];
                let mu = &mut self.mu[m..m + psi.nrows()];
                if c == f64::NEG_INFINITY {
                    mu.fill(f64::NEG_INFINITY);
                    continue;
                }
                for (b, e) in h.iter().enumerate() {
                    self.scratch[b] = (e - c).exp();
                }
                for (a, mu_a) in mu.iter_mut().enumerate() {
                    let s: f64 = psi.row(a).iter().zip(&self.scratch[..h.len()]).map(|(p, e)| p * e).sum();
                    *mu_a = c + s.ln();
                }
            }
        }
        // log p(evidence) = log Σ_a π(a) exp(h_root(a)).
        let h_root = &self.h[tree.span(0)];
        self.log_likelihood = log_sum_exp_iter(model.prior().iter().zip(h_root).map(|(p, h)| p.ln() + h));
        self.log_likelihood
    }

    /// A leaf's `h_u = log λ_u` and its message `μ_u(a) = log Σ_b Ψ_u(a, b) λ_u(b)`.
    fn leaf_upward(&mut self, model: &Jghm, u: usize, leaf: LeafView) {
        let tree = model.tree();
        let span = tree.span(u);
        let psi = model.transition(tree.nodes[u].transition.expect("a leaf is never the root"));
        let m = self.msg_offsets[u];
        let mu = &mut self.mu[m..m + psi.nrows()];
        self.empty[u] = matches!(leaf, LeafView::Missing);
        match leaf {
            LeafView::Missing => self.h[span].fill(0.0),
            LeafView::Observed(t) => {
                // λ = e_t: h is 0 at t and -inf elsewhere, μ(a) = log Ψ(a, t).
                for (b, hb) in self.h[span].iter_mut().enumerate() {
                    *hb = if b == t { 0.0 } else { f64::NEG_INFINITY };
                }
                for (a, mu_a) in mu.iter_mut().enumerate() {
                    *mu_a = psi[(a, t)].ln();
                }
            }
            LeafView::Soft(w) => {
                for (hb, wb) in self.h[span].iter_mut().zip(w) {
                    *hb = wb.ln();
                }
                for (a, mu_a) in mu.iter_mut().enumerate() {
                    *mu_a = psi.row(a).iter().zip(w).map(|(p, l)| p * l).sum::<f64>().ln();
                }
            }
        }
    }

    /// `log p(evidence)` of the last upward pass.
    pub fn log_likelihood(&self) -> f64 {
        self.log_likelihood
    }

    /// `log p(z = a | evidence) = log π(a) + h_root(a) - log p(evidence)`, written into `out`.
    /// Requires a previous upward pass with positive likelihood.
    pub fn log_root_posterior_into(&self, model: &Jghm, out: &mut [f64]) {
        let h_root = &self.h[model.tree().span(0)];
        for ((o, p), h) in out.iter_mut().zip(model.prior()).zip(h_root) {
            *o = p.ln() + h - self.log_likelihood;
        }
    }

    /// The root posterior `p(z | evidence)` of the last upward pass, written into `out`.
    pub fn root_posterior_into(&self, model: &Jghm, out: &mut [f64]) {
        self.log_root_posterior_into(model, out);
        out.iter_mut().for_each(|o| *o = o.exp());
    }

    /// `h_u(b)` of the last upward pass: `log p(evidence below u | z_u = b)` (0 for subtrees
    /// without evidence).
    pub fn h(&self, model: &Jghm, u: usize) -> &[f64] {
        &self.h[model.tree().span(u)]
    }

    /// The downward pass after an upward pass: fills the outside log-weights `o_u`.
    fn downward(&mut self, model: &Jghm) {
        let tree = model.tree();
        for (o, p) in self.outside[tree.span(0)].iter_mut().zip(model.prior()) {
            *o = p.ln();
        }
        for v in 0..tree.nodes.len() {
            let sv = tree.nodes[v].states;
            for &u in &tree.nodes[v].children {
                // cavity(a) = o_v(a) + Σ_{w child of v, w ≠ u, w not empty} μ_w(a)
                let cavity = &mut self.scratch[..sv];
                cavity.copy_from_slice(&self.outside[tree.span(v)]);
                for &w in tree.nodes[v].children.iter().filter(|&&w| w != u && !self.empty[w]) {
                    let m = self.msg_offsets[w];
                    for (c, mw) in cavity.iter_mut().zip(&self.mu[m..m + sv]) {
                        *c += mw;
                    }
                }
                // o_u(b) = log Σ_a exp(cavity(a)) Ψ_u(a, b)
                let psi = model.transition(tree.nodes[u].transition.expect("child has a transition"));
                let c = cavity.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                let span_u = tree.span(u);
                for (b, o) in self.outside[span_u].iter_mut().enumerate() {
                    *o = if c == f64::NEG_INFINITY {
                        c
                    } else {
                        c + cavity.iter().enumerate().map(|(a, ca)| (ca - c).exp() * psi[(a, b)]).sum::<f64>().ln()
                    };
                }
            }
        }
    }

    /// Exact conditional sample of every node's state given the evidence of the last upward
    /// pass (likelihood must be positive): the root from its posterior, then each child `u`
    /// of a node in state `a` from `Ψ_u(a, ·) exp(h_u(·))`, normalised. Written into `states`.
    pub fn sample_into(&mut self, model: &Jghm, rng: &mut Rng, states: &mut [usize]) {
        let tree = model.tree();
        let s0 = model.root_states();
        let mut post = std::mem::take(&mut self.scratch);
        self.root_posterior_into(model, &mut post[..s0]);
        states[0] = rng::categorical(rng, &post[..s0]);
        for u in 1..tree.nodes.len() {
            let node = &tree.nodes[u];
            let a = states[node.parent.expect("non-root")];
            let psi = model.transition(node.transition.expect("non-root"));
            let h = &self.h[tree.span(u)];
            let c = h.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            for (b, w) in post[..node.states].iter_mut().enumerate() {
                *w = psi[(a, b)] * (h[b] - c).exp();
            }
            states[u] = rng::categorical(rng, &post[..node.states]);
        }
        self.scratch = post;
    }
}

/// The result of one upward pass.
#[derive(Clone, Debug)]
pub struct Posterior {
    /// `log p(evidence)`.
    pub log_likelihood: f64,
    /// `p(z = a | evidence)` over root states.
    pub root: Vec<f64>,
}

/// `log p(evidence)`: one upward pass. `-inf` for impossible evidence.
pub fn log_likelihood(model: &Jghm, obs: &impl Observation) -> Result<f64, BpError> {
    obs.check(model)?;
    Ok(Workspace::new(model).upward(model, obs))
}

/// `log p(evidence)` and the root posterior `p(z | evidence)` (T1: equal to brute force).
pub fn root_posterior(model: &Jghm, obs: &impl Observation) -> Result<Posterior, BpError> {
    obs.check(model)?;
    let mut ws = Workspace::new(model);
    let log_likelihood = ws.upward(model, obs);
    if log_likelihood == f64::NEG_INFINITY {
        return Err(BpError::ZeroProbability { what: "p(evidence)", needed: "the posterior" });
    }
    let mut root = vec![0.0; model.root_states()];
    ws.root_posterior_into(model, &mut root);
    Ok(Posterior { log_likelihood, root })
}

/// Every node's marginal `p(z_u | evidence)`, indexed by node id (T1).
pub fn marginals(model: &Jghm, obs: &impl Observation) -> Result<Vec<Vec<f64>>, BpError> {
    obs.check(model)?;
    let mut ws = Workspace::new(model);
    if ws.upward(model, obs) == f64::NEG_INFINITY {
        return Err(BpError::ZeroProbability { what: "p(evidence)", needed: "a marginal" });
    }
    ws.downward(model);
    let tree = model.tree();
    Ok((0..tree.nodes.len())
        .map(|u| {
            let span = tree.span(u);
            let joint: Vec<f64> = ws.outside[span.clone()].iter().zip(&ws.h[span]).map(|(o, h)| o + h).collect();
            let z = log_sum_exp(&joint);
            joint.iter().map(|j| (j - z).exp()).collect()
        })
        .collect())
}

/// One exact sample of every node's state given the evidence, by node id.
pub fn sample_conditional(model: &Jghm, obs: &impl Observation, rng: &mut Rng) -> Result<Vec<usize>, BpError> {
    obs.check(model)?;
    let mut ws = Workspace::new(model);
    if ws.upward(model, obs) == f64::NEG_INFINITY {
        return Err(BpError::ZeroProbability { what: "p(evidence)", needed: "a conditional sample" });
    }
    let mut states = vec![0; model.tree().nodes.len()];
    ws.sample_into(model, rng, &mut states);
    Ok(states)
}

/// `log p(x)` (`−∞` when `p(x) = 0`); the tokens checked first.
pub fn log_px(model: &Jghm, x: &[usize]) -> Result<f64, BpError> {
    log_likelihood(model, &Tokens { image: Some(x), text: None })
}

/// `log p(y)` (`−∞` when `p(y) = 0`); the tokens checked first.
pub fn log_py(model: &Jghm, y: &[usize]) -> Result<f64, BpError> {
    log_likelihood(model, &Tokens { image: None, text: Some(y) })
}

/// `log p(x, y)` (`−∞` when `p(x, y) = 0`); the tokens checked first.
pub fn log_pxy(model: &Jghm, x: &[usize], y: &[usize]) -> Result<f64, BpError> {
    log_likelihood(model, &Tokens { image: Some(x), text: Some(y) })
}

/// The three log-probabilities behind a PMI.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PmiParts {
    pub pmi: f64,
    pub log_pxy: f64,
    pub log_px: f64,
    pub log_py: f64,
}

/// `PMI(x, y) = log p(x, y) - log p(x) - log p(y)` (T1, T2), the tokens checked first. An error
/// naming the side of probability zero when `p(x, y) = 0`.
///
/// ```
/// let model = jghm::RandomSpec::symmetric(3, 2, 2, 1).build()?;
/// let p = jghm::bp::pmi(&model, &[0, 2, 1, 1], &[2, 2, 0, 1])?;
/// assert!((p.pmi - (p.log_pxy - p.log_px - p.log_py)).abs() < 1e-12);
/// assert!(jghm::bp::pmi(&model, &[0, 2, 1], &[2, 2, 0, 1]).is_err()); // 3 tokens, 4 leaves
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn pmi(model: &Jghm, x: &[usize], y: &[usize]) -> Result<PmiParts, BpError> {
    let (log_pxy, log_px, log_py) = (log_pxy(model, x, y)?, log_px(model, x)?, log_py(model, y)?);
    if log_pxy == f64::NEG_INFINITY {
        let evidence = match (log_px, log_py) {
            (f64::NEG_INFINITY, _) => "image",
            (_, f64::NEG_INFINITY) => "text",
            _ => "pair (image, text)",
        };
        return Err(BpError::Impossible { evidence, needed: "the PMI" });
    }
    Ok(PmiParts { pmi: log_pxy - log_px - log_py, log_pxy, log_px, log_py })
}

/// `log p(y | x) = log p(x, y) - log p(x)`; an error when `p(x) = 0`.
pub fn log_p_y_given_x(model: &Jghm, x: &[usize], y: &[usize]) -> Result<f64, BpError> {
    let log_px = log_px(model, x)?;
    if log_px == f64::NEG_INFINITY {
        return Err(BpError::ZeroProbability { what: "p(x)", needed: "p(y | x)" });
    }
    Ok(log_pxy(model, x, y)? - log_px)
}

/// Next-token conditional `p(y_i = · | y_{<i}, x)` (text position `i = prefix.len()`), with
/// the image optional: the marginal of text leaf `i` given the image and the text prefix.
/// The image and the prefix are checked (length, vocabulary) first.
pub fn next_token_conditional(model: &Jghm, x: Option<&[usize]>, prefix: &[usize]) -> Result<Vec<f64>, BpError> {
    if prefix.len() >= model.text_len() {
        return Err(BpError::NoNextToken { prefix: prefix.len(), positions: model.text_len() });
    }
    let mut ev = match x {
        Some(x) => Evidence::image(model, x)?,
        None => Evidence::none(model),
    };
    for (leaf, &t) in ev.text.iter_mut().zip(prefix) {
        *leaf = Leaf::Observed(t);
    }
    ev.check(model)?;
    let leaf = model.tree().text_leaves[prefix.len()];
    let evidence = if x.is_some() { "image and prefix" } else { "prefix" };
    let marginals = marginals(model, &ev).map_err(|_| BpError::Impossible { evidence, needed: "the conditional" })?;
    Ok(marginals[leaf].clone())
}

/// The root posterior `p(z | tokens)` of one modality's tokens (T1), the tokens checked first;
/// an error naming the modality when it has probability zero.
///
/// ```
/// use jghm::{bp, Part, RandomSpec};
/// let model = RandomSpec::symmetric(3, 2, 2, 1).build()?;
/// let post = bp::root_posterior_of(&model, Part::Image, &[0, 2, 1, 1])?;
/// assert!((post.root.iter().sum::<f64>() - 1.0).abs() < 1e-12);
/// assert!((post.log_likelihood - bp::log_px(&model, &[0, 2, 1, 1])?).abs() < 1e-12);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn root_posterior_of(model: &Jghm, part: Part, tokens: &[usize]) -> Result<Posterior, BpError> {
    let obs = match part {
        Part::Image => Evidence::image(model, tokens)?,
        Part::Text => Evidence::text(model, tokens)?,
        Part::Shared => return Err(EvidenceError::NoLeaves { part }.into()),
    };
    let evidence = if part == Part::Image { "image" } else { "text" };
    root_posterior(model, &obs).map_err(|_| BpError::Impossible { evidence, needed: "its posterior" })
}

/// Number of observations per parallel chunk: fixed, so results never depend on the threads.
pub const CHUNK: usize = 256;

/// Root posteriors `p(z | x_i)` of many observations of one modality, in parallel over
/// fixed-size chunks. Tokens must be valid (checked by the caller). Rows of impossible
/// observations are NaN. Computed by the batched [`fast::FastBp`], which agrees with
/// [`Workspace`] to round-off and falls back to it outside its safe range.
pub fn root_posteriors(model: &Jghm, part: Part, observations: &[Vec<usize>]) -> Vec<Vec<f64>> {
    fast::FastBp::for_batch(model, observations.len()).root_posteriors(part, observations)
}
