//! All next-token conditionals of one text in one pass (the vision-language task's Bayes
//! predictor, the book, T8-T10 and Reproducing the paper): `p(y_t = · | y_{<t}, x)` for `t = 1..N_Y`.
//!
//! The log-domain [`super::next_token_conditional`] costs a full two-pass BP per position.
//! Observing one more token changes only the messages on its leaf's root path, so after the
//! image's upward pass (every text leaf missing) each position costs one walk down its path
//! (the outside vector `o` of the leaf, whose normalisation is the conditional) and one walk up
//! it (the leaf observed, beliefs and messages refreshed): `O(depth · S²)` per position instead
//! of `O(nodes · S²)`.
//!
//! ```text
//! b_u = λ_u (u a leaf),   b_v = Π_{w child of v} m_w,   m_u(a) = Σ_b Ψ_u(a, b) b_u(b)
//! o_root = π,   o_u(b) = Σ_a o_v(a) Π_{w ∈ ch(v), w ≠ u} m_w(a) Ψ_u(a, b),   p(y_t = b | ·) ∝ o_leaf(b)
//! ```
//!
//! Every vector is divided by its maximum, which conditionals (ratios) ignore. This is not the
//! power-of-two rescaling of the batched paths (the lane kernels of `bp/lanes.rs`): the engine
//! handles one observation at a time, in plain `f64` vectors, and a vector that vanishes or
//! overflows makes the whole pass report `None`, which callers answer with the log-domain
//! reference.

use crate::model::{Jghm, Part};

/// The incremental next-token pass: probability-domain messages, each vector divided by its
/// maximum (conditionals are ratios), transitions copied row- and column-major. Build once per
/// model and thread, then call [`Incremental::conditionals`] for each pair.
pub struct Incremental<'m> {
    model: &'m Jghm,
    rows: Vec<Vec<f64>>,
    cols: Vec<Vec<f64>>,
    /// `b_u` at `tree.span(u)`: the product of `u`'s children's messages (a leaf: `λ_u`).
    belief: Vec<f64>,
    /// `m_u(a) = Σ_b Ψ_u(a, b) b_u(b)` at `msg[u]..+S_parent(u)`.
    message: Vec<f64>,
    msg: Vec<usize>,
    /// Root-to-leaf node path of every text leaf.
    paths: Vec<Vec<usize>>,
    outside: Vec<f64>,
    cavity: Vec<f64>,
}

impl<'m> Incremental<'m> {
    /// Copies the transitions and finds every text leaf's root path; no evidence yet.
    pub fn new(model: &'m Jghm) -> Self {
        let tree = model.tree();
        let (mut rows, mut cols, mut msg) = (vec![vec![]], vec![vec![]], vec![0]);
        let mut total = 0;
        for node in &tree.nodes[1..] {
            let psi = model.transition(node.transition.expect("non-root"));
            rows.push((0..psi.nrows()).flat_map(|a| psi.row(a).iter().copied().collect::<Vec<_>>()).collect());
            cols.push(psi.as_slice().to_vec());
            msg.push(total);
            total += psi.nrows();
        }
        let paths = tree
            .text_leaves
            .iter()
            .map(|&leaf| {
                let mut path = vec![leaf];
                while let Some(p) = tree.nodes[*path.last().expect("non-empty")].parent {
                    path.push(p);
                }
                path.reverse();
                path
            })
            .collect();
        let widest = tree.nodes.iter().map(|n| n.states).max().unwrap_or(1);
        Incremental {
            model,
            rows,
            cols,
            belief: vec![0.0; tree.total_states],
            message: vec![0.0; total],
            msg,
            paths,
            outside: vec![0.0; tree.total_states],
            cavity: vec![0.0; widest],
        }
    }

    /// `m_u = Ψ_u b_u` (rescaled); `false` if it vanished.
    fn send(&mut self, u: usize) -> bool {
        let tree = self.model.tree();
        let s = tree.nodes[u].states;
        let p = tree.nodes[tree.nodes[u].parent.expect("non-root")].states;
        let m = self.msg[u];
        let span = tree.span(u);
        for a in 0..p {
            // m_u(a) = Σ_b Ψ_u(a, b) b_u(b)
            self.message[m + a] =
                self.rows[u][a * s..(a + 1) * s].iter().zip(&self.belief[span.clone()]).map(|(r, b)| r * b).sum();
        }
        rescale(&mut self.message[m..m + p])
    }

    /// `b_v = Π_{w child of v} m_w` (rescaled); `false` if it vanished.
    fn gather(&mut self, v: usize) -> bool {
        let tree = self.model.tree();
        let span = tree.span(v);
        let s = tree.nodes[v].states;
        self.belief[span.clone()].fill(1.0);
        for &w in &tree.nodes[v].children {
            let m = self.msg[w];
            for (b, mw) in self.belief[span.clone()].iter_mut().zip(&self.message[m..m + s]) {
                *b *= mw;
            }
        }
        rescale(&mut self.belief[span])
    }

    /// Upward pass with the image observed and every text leaf missing.
    fn start(&mut self, x: &[usize]) -> bool {
        let tree = self.model.tree();
        for u in (1..tree.nodes.len()).rev() {
            let span = tree.span(u);
            let ok = match tree.leaf_slot[u] {
                Some((Part::Image, i)) => {
                    self.belief[span.clone()].fill(0.0);
                    self.belief[span.start + x[i]] = 1.0;
                    true
                }
                Some(_) => {
                    self.belief[span].fill(1.0);
                    true
                }
                None => self.gather(u),
            };
            if !(ok && self.send(u)) {
                return false;
            }
        }
        true
    }

    /// `p(y_t = · | evidence)` for the leaf at the end of `path`: `o_root = π`, then down the
    /// path `o_u(b) = Σ_a o_v(a) Π_{w ∈ ch(v), w ≠ u} m_w(a) Ψ_u(a, b)`; the leaf is missing,
    /// so its marginal is `o_leaf` normalised. Written into `out`; `false` if it vanished.
    fn predict(&mut self, t: usize, out: &mut [f64]) -> bool {
        let tree = self.model.tree();
        let path = std::mem::take(&mut self.paths[t]);
        self.outside[tree.span(0)].copy_from_slice(self.model.prior());
        let mut ok = true;
        for pair in path.windows(2) {
            let (v, u) = (pair[0], pair[1]);
            let sv = tree.nodes[v].states;
            let cavity = &mut self.cavity[..sv];
            cavity.copy_from_slice(&self.outside[tree.span(v)]);
            for &w in tree.nodes[v].children.iter().filter(|&&w| w != u) {
                let m = self.msg[w];
                cavity.iter_mut().zip(&self.message[m..m + sv]).for_each(|(c, mw)| *c *= mw);
            }
            for (o, column) in self.outside[tree.span(u)].iter_mut().zip(self.cols[u].chunks_exact(sv)) {
                *o = cavity.iter().zip(column).map(|(c, p)| c * p).sum();
            }
            if !rescale(&mut self.outside[tree.span(u)]) {
                ok = false;
                break;
            }
        }
        let leaf = *path.last().expect("non-empty");
        self.paths[t] = path;
        if !ok {
            return false;
        }
        let o = &self.outside[tree.span(leaf)];
        let z: f64 = o.iter().sum();
        out.iter_mut().zip(o).for_each(|(p, o)| *p = o / z);
        true
    }

    /// Observes `y_t = token`, then refreshes the beliefs and messages up its path.
    fn observe(&mut self, t: usize, token: usize) -> bool {
        let tree = self.model.tree();
        let path = std::mem::take(&mut self.paths[t]);
        let leaf = *path.last().expect("non-empty");
        let span = tree.span(leaf);
        self.belief[span.clone()].fill(0.0);
        self.belief[span.start + token] = 1.0;
        let mut ok = self.send(leaf);
        for &v in path.iter().rev().skip(1) {
            if !ok {
                break;
            }
            ok = self.gather(v) && (v == 0 || self.send(v));
        }
        self.paths[t] = path;
        ok
    }

    /// Row-major `N_Y × V_Y`: row `t` is `p(y_t = · | y_{<t}, x)` (probabilities). `None` if a
    /// vector vanished (impossible evidence, or beyond the probability domain's range).
    pub fn conditionals(&mut self, x: &[usize], y: &[usize]) -> Option<Vec<f64>> {
        let v = self.model.text_vocab();
        let mut out = vec![0.0; y.len() * v];
        if !self.start(x) {
            return None;
        }
        for (t, &token) in y.iter().enumerate() {
            if !self.predict(t, &mut out[t * v..(t + 1) * v]) {
                return None;
            }
            if t + 1 < y.len() && !self.observe(t, token) {
                return None;
            }
        }
        Some(out)
    }

    /// The same rows, exact whatever the range: [`Incremental::conditionals`], or, when that pass
    /// reports `None`, the log-domain [`super::next_token_conditional`] position by position.
    /// The one fallback of the next-token conditionals; rows of an impossible prefix are NaN.
    pub fn conditionals_or_log_domain(&mut self, x: &[usize], y: &[usize]) -> Vec<f64> {
        if let Some(fast) = self.conditionals(x, y) {
            return fast;
        }
        let vocab = self.model.text_vocab();
        (0..y.len())
            .flat_map(|t| {
                super::next_token_conditional(self.model, Some(x), &y[..t]).unwrap_or_else(|_| vec![f64::NAN; vocab])
            })
            .collect()
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
