//! Batched node marginals `p(z_u | evidence)` for many observations (T1's item 3, fast).
//!
//! The same upward and downward recursions as [`crate::bp::Workspace`], in the probability
//! domain with every vector divided by its largest entry after each step (marginals are ratios,
//! so the scales never need to be kept): no `exp` and no `log` at all, no allocation per
//! observation, and the cavity products `Π_{w ≠ u} m_w` from prefix and suffix products instead
//! of `|ch(v)|²` sums. Upward: `b_u = λ_u` at a leaf, `b_u = Π_w m_w` inside, `m_u = Ψ_u b_u`.
//! Downward: `o_root = π`, `o_u(b) = Σ_a o_v(a) Π_{w ≠ u} m_w(a) Ψ_u(a, b)`, and
//! `p(z_u = b | evidence) ∝ o_u(b) b_u(b)`. An observation whose rescaled vectors underflow to
//! zero (impossible evidence, or probabilities below f64's range) is recomputed by the
//! log-domain oracle [`crate::bp::marginals`]; the tests compare the two to 1e-12.

use rayon::prelude::*;

use crate::bp::{self, LeafView, Observation, Tokens, CHUNK};
use crate::model::{Jghm, Part};

/// Buffers and row-major transition copies for one model.
pub struct MarginalWorkspace<'m> {
    model: &'m Jghm,
    /// For node `u ≥ 1`: `Ψ_u` row-major (`[a][b]`) and column-major (`[b][a]`).
    rows: Vec<Vec<f64>>,
    cols: Vec<Vec<f64>>,
    /// `b_u`, `o_u` at `tree.span(u)`; `m_u` at `msg[u]` (parent's states).
    belief: Vec<f64>,
    outside: Vec<f64>,
    message: Vec<f64>,
    msg_offsets: Vec<usize>,
    scratch: Vec<f64>,
    suffix: Vec<f64>,
    /// Cavity buffer for alphabets wider than [`MAX_INLINE`].
    cavity_heap: Vec<f64>,
}

/// Alphabets up to this size keep the cavity vector on the stack.
const MAX_INLINE: usize = 64;

impl<'m> MarginalWorkspace<'m> {
    pub fn new(model: &'m Jghm) -> Self {
        let tree = model.tree();
        let (mut rows, mut cols) = (vec![vec![]], vec![vec![]]);
        let mut msg_offsets = vec![0];
        let mut total = 0;
        for node in &tree.nodes[1..] {
            let psi = model.transition(node.transition.expect("non-root"));
            rows.push((0..psi.nrows()).flat_map(|a| psi.row(a).iter().copied().collect::<Vec<_>>()).collect());
            cols.push(psi.as_slice().to_vec());
            msg_offsets.push(total);
            total += psi.nrows();
        }
        let widest = tree.nodes.iter().map(|n| n.states).max().unwrap_or(1);
        let most_children = tree.nodes.iter().map(|n| n.children.len()).max().unwrap_or(1);
        MarginalWorkspace {
            model,
            rows,
            cols,
            belief: vec![0.0; tree.total_states],
            outside: vec![0.0; tree.total_states],
            message: vec![0.0; total],
            msg_offsets,
            scratch: vec![0.0; widest],
            suffix: vec![0.0; widest * (most_children + 1)],
            cavity_heap: vec![0.0; widest],
        }
    }

    /// Writes every node's marginal into `out` (flat, `tree.span(u)` per node). Returns `false`
    /// (and leaves `out` unspecified) when the rescaled recursion underflowed.
    pub fn marginals_into(&mut self, obs: &impl Observation, out: &mut [f64]) -> bool {
        self.upward(obs) && self.downward(out)
    }

    fn upward(&mut self, obs: &impl Observation) -> bool {
        let tree = self.model.tree();
        for u in (0..tree.nodes.len()).rev() {
            let node = &tree.nodes[u];
            let span = tree.span(u);
            match tree.leaf_slot[u].map(|(part, i)| obs.leaf(part, i)) {
                Some(LeafView::Observed(t)) => {
                    // b_u = e_t, so m_u(a) = Ψ_u(a, t): a column, read directly.
                    self.belief[span.clone()].fill(0.0);
                    self.belief[span.start + t] = 1.0;
                    let p = node.parent.map_or(0, |p| tree.nodes[p].states);
                    let m = self.msg_offsets[u];
                    self.message[m..m + p].copy_from_slice(&self.cols[u][t * p..(t + 1) * p]);
                    continue;
                }
                Some(LeafView::Missing) => self.belief[span.clone()].fill(1.0),
                Some(LeafView::Soft(w)) => self.belief[span.clone()].copy_from_slice(w),
                None => {
                    // b_u = Π_w m_w, rescaled by its maximum.
                    self.belief[span.clone()].fill(1.0);
                    for &w in &node.children {
                        let m = self.msg_offsets[w];
                        for (b, mw) in self.belief[span.clone()].iter_mut().zip(&self.message[m..m + node.states]) {
                            *b *= mw;
                        }
                    }
                    if !rescale(&mut self.belief[span.clone()]) {
                        return false;
                    }
                }
            }
            if u > 0 {
                // m_u(a) = Σ_b Ψ_u(a, b) b_u(b), rescaled.
                let s = node.states;
                let m = self.msg_offsets[u];
                let parent_states = tree.nodes[node.parent.expect("non-root")].states;
                for a in 0..parent_states {
                    let row = &self.rows[u][a * s..(a + 1) * s];
                    self.message[m + a] = row.iter().zip(&self.belief[span.clone()]).map(|(p, b)| p * b).sum();
                }
                if !rescale(&mut self.message[m..m + parent_states]) {
                    return false;
                }
            }
        }
        true
    }

    fn downward(&mut self, out: &mut [f64]) -> bool {
        let tree = self.model.tree();
        let root = tree.span(0);
        self.outside[root].copy_from_slice(self.model.prior());
        for v in 0..tree.nodes.len() {
            let (sv, children) = (tree.nodes[v].states, &tree.nodes[v].children);
            let span_v = tree.span(v);
            // marginal_v ∝ o_v · b_v
            let o = &mut out[span_v.clone()];
            for ((o, ov), bv) in o.iter_mut().zip(&self.outside[span_v.clone()]).zip(&self.belief[span_v.clone()]) {
                *o = ov * bv;
            }
            let z: f64 = o.iter().sum();
            if !(z > 0.0 && z.is_finite()) {
                return false;
            }
            o.iter_mut().for_each(|x| *x /= z);
            if children.is_empty() {
                continue;
            }
            // suffix[j] = Π_{w ≥ j} m_w, then a running prefix: cavity_j = o_v · prefix_j · suffix_{j+1}.
            let c = children.len();
            self.suffix[c * sv..(c + 1) * sv].fill(1.0);
            for j in (0..c).rev() {
                let m = self.msg_offsets[children[j]];
                for a in 0..sv {
                    self.suffix[j * sv + a] = self.suffix[(j + 1) * sv + a] * self.message[m + a];
                }
            }
            let mut prefix = std::mem::take(&mut self.scratch);
            prefix[..sv].copy_from_slice(&self.outside[span_v.clone()]);
            let mut cavity = [0.0; MAX_INLINE];
            for (j, &u) in children.iter().enumerate() {
                let span_u = tree.span(u);
                let observed = tree.nodes[u].children.is_empty()
                    && self.belief[span_u.clone()].iter().filter(|&&b| b > 0.0).count() == 1;
                // An observed leaf's marginal is its token: its outside weight is not needed.
                if !observed {
                    let cav: &mut [f64] =
                        if sv <= MAX_INLINE { &mut cavity[..sv] } else { &mut self.cavity_heap[..sv] };
                    for ((c, p), s) in cav.iter_mut().zip(&prefix[..sv]).zip(&self.suffix[(j + 1) * sv..(j + 2) * sv]) {
                        *c = p * s;
                    }
                    // o_u(b) = Σ_a cavity(a) Ψ_u(a, b): column b of Ψ_u is contiguous.
                    for (o, column) in self.outside[span_u.clone()].iter_mut().zip(self.cols[u].chunks_exact(sv)) {
                        *o = cav.iter().zip(column).map(|(c, p)| c * p).sum();
                    }
                    if !rescale(&mut self.outside[span_u]) {
                        self.scratch = prefix;
                        return false;
                    }
                } else {
                    self.outside[span_u].fill(1.0);
                }
                let m = self.msg_offsets[u];
                for (p, mu) in prefix[..sv].iter_mut().zip(&self.message[m..m + sv]) {
                    *p *= mu;
                }
                // Keep the running prefix in range too.
                if !rescale(&mut prefix[..sv]) {
                    self.scratch = prefix;
                    return false;
                }
            }
            self.scratch = prefix;
        }
        true
    }
}

/// Divides by the maximum; `false` if the vector is all zeros or not finite.
fn rescale(v: &mut [f64]) -> bool {
    let top = v.iter().copied().fold(0.0, f64::max);
    if !(top > 0.0 && top.is_finite()) {
        return false;
    }
    let inv = 1.0 / top;
    v.iter_mut().for_each(|x| *x *= inv);
    true
}

/// Node marginals `p(z_u | x_i)` of many observations of one modality (the other side missing),
/// flat: observation `i`'s node `u` at `i · total_states + tree.span(u)`. Parallel over fixed
/// chunks (the same numbers whatever the thread count); rows of impossible observations are NaN.
/// Tokens must be valid (checked by the caller).
pub fn marginals_batch(model: &Jghm, part: Part, observations: &[Vec<usize>]) -> Vec<f64> {
    let n = model.tree().total_states;
    let mut out = vec![0.0; observations.len() * n];
    out.par_chunks_mut(CHUNK * n).zip(observations.par_chunks(CHUNK)).for_each(|(rows, chunk)| {
        let mut ws = MarginalWorkspace::new(model);
        for (row, obs) in rows.chunks_mut(n).zip(chunk) {
            let tokens = if part == Part::Image {
                Tokens { image: Some(obs), text: None }
            } else {
                Tokens { image: None, text: Some(obs) }
            };
            if !ws.marginals_into(&tokens, row) {
                // Outside the probability domain's range: the log-domain oracle decides.
                match bp::marginals(model, &tokens) {
                    Ok(m) => row.copy_from_slice(&m.concat()),
                    Err(_) => row.fill(f64::NAN),
                }
            }
        }
    });
    out
}
