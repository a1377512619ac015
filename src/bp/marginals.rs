//! Batched node marginals `p(z_u | evidence)` of many observations (T1's item 3, fast).
//!
//! The same upward and downward recursions as [`crate::bp::Workspace`], with the techniques of
//! [`crate::bp::fast`]:
//!
//! 1. **Probability domain, rescaled by powers of two.** Upward: `b_u = λ_u` at a leaf,
//!    `b_u = Π_w m_w` inside, `m_u = Ψ_u b_u`; downward: `o_root = π`,
//!    `o_u = Ψ_uᵀ (o_v ⊙ Π_{w ≠ u} m_w)`; and `p(z_u = b | evidence) ∝ o_u(b) b_u(b)`. Every
//!    message, belief and outside vector is multiplied by `2^{-e}` so that its maximum lies in
//!    `[1/2, 1)` (exact: no round-off). Marginals are ratios, so only the upward exponents are
//!    kept, per observation: `log p(evidence) = ln Σ_a π(a) b̂_root(a) + E ln 2` comes for free.
//!    No `exp`, one `ln` per observation.
//! 2. **Batch-major lanes.** A vector is stored `[state][lane]` with [`LANES`] observations side
//!    by side, so `m = Ψ b` is a loop over lanes with a broadcast matrix entry (straight SIMD,
//!    compiled for AVX2 when the CPU has it). Lanes never mix: an observation's numbers do not
//!    depend on its block, chunk or thread.
//! 3. **Leaf columns.** A leaf observed in every lane sends `m_u(a) = Ψ_u(a, t)`: a contiguous
//!    column, copied. Its marginal is the one-hot `e_t`, so its outside vector is never needed.
//!    A subtree without evidence in any lane sends `m = 1` (rows are stochastic): it is skipped
//!    on the way up. Cavities `Π_{w ≠ u} m_w` come from a running prefix and suffix products.
//! 4. **Fixed chunks, no allocation in the loop.** Rayon over chunks of [`CHUNK`]
//!    observations, one scratch per worker; the scratch is `O(nodes × S × LANES)`, flat in the
//!    batch size.
//!
//! **When the reference takes over.** A lane whose scaled maximum, cavity or marginal
//! normaliser falls below [`FLOOR`] (`2^-960`: near-zero transition entries or impossible
//! evidence) is recomputed by the log-domain oracle [`crate::bp::marginals`]; rows of
//! impossible evidence are NaN. `tests/bp_marginals.rs` checks agreement to 1e-12.

use rayon::prelude::*;

use crate::bp::fast::FLOOR;
use crate::bp::{self, LeafView, Observation, Tokens, CHUNK};
use crate::model::{Jghm, Part};

/// Observations per block (one per lane). Eight keep one worker's vectors of the standard
/// configuration (S = 10, m = 3, depth 4, 241 nodes) in its L2 cache: 3 × 2,410 × 8 doubles.
pub const LANES: usize = 8;

type Row = [f64; LANES];

/// How a node's subtree looks in the current block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// A leaf observed in every lane (tokens in `Scratch::tokens`).
    Observed,
    /// No evidence below in any lane: `b_u = 1`, `m_u = 1`, skipped upward.
    Empty,
    /// Anything else: vectors computed.
    Computed,
}

/// A model compiled for batched marginals. Build once, use from many threads.
pub struct BatchMarginals<'m> {
    model: &'m Jghm,
    /// For node `u ≥ 1`: `Ψ_u` row-major (`[a][b]`, for `m = Ψ b`) and transposed (`[b][a]`,
    /// for `o = Ψᵀ c`; column `t` is also the message of a leaf observing `t`).
    rows: Vec<Vec<f64>>,
    cols: Vec<Vec<f64>>,
    /// `m_u` at `msg_offsets[u]..+S_parent(u)` of the message buffer.
    msg_offsets: Vec<usize>,
    messages: usize,
    widest: usize,
    most_children: usize,
}

/// One worker's buffers, reused across blocks.
struct Scratch {
    belief: Vec<Row>,
    outside: Vec<Row>,
    message: Vec<Row>,
    /// `suffix[j] = Π_{w ≥ j} m_w` over the current node's children.
    suffix: Vec<Row>,
    prefix: Vec<Row>,
    cavity: Vec<Row>,
    kind: Vec<Kind>,
    /// Per leaf node, its token in each lane (for [`Kind::Observed`]).
    tokens: Vec<[u32; LANES]>,
    /// Per lane: the summed upward exponent `E`, and the smallest scaled maximum met.
    exponent: [i64; LANES],
    smallest: [f64; LANES],
}

/// `out = M x` lane by lane, `M` row-major `out.len() × x.len()`.
#[inline(always)]
fn matvec_impl(out: &mut [Row], m: &[f64], x: &[Row]) {
    let (n, last) = (x.len(), out.len().saturating_sub(1));
    // Two rows at a time: two independent chains of additions keep the adder busy.
    let mut pairs = out.chunks_exact_mut(2);
    for (a, o) in (&mut pairs).enumerate() {
        let (mut acc0, mut acc1) = ([0.0f64; LANES], [0.0f64; LANES]);
        let (r0, r1) = (&m[2 * a * n..(2 * a + 1) * n], &m[(2 * a + 1) * n..(2 * a + 2) * n]);
        for ((p0, p1), xb) in r0.iter().zip(r1).zip(x) {
            for l in 0..LANES {
                acc0[l] += p0 * xb[l];
                acc1[l] += p1 * xb[l];
            }
        }
        o[0] = acc0;
        o[1] = acc1;
    }
    if let [o] = pairs.into_remainder() {
        let a = last;
        let mut acc = [0.0f64; LANES];
        for (p, xb) in m[a * n..(a + 1) * n].iter().zip(x) {
            for l in 0..LANES {
                acc[l] += p * xb[l];
            }
        }
        *o = acc;
    }
}

/// `v ← v 2^{-e}` per lane with `max v ∈ [1/2, 1)`; adds `e` to `exponent` (if given) and keeps
/// the smallest maximum.
#[inline(always)]
fn rescale_impl(v: &mut [Row], exponent: Option<&mut [i64; LANES]>, smallest: &mut [f64; LANES]) {
    let mut max = [0.0f64; LANES];
    for row in v.iter() {
        for l in 0..LANES {
            max[l] = if row[l] > max[l] { row[l] } else { max[l] };
        }
    }
    let mut scale = [0.0f64; LANES];
    let mut e = [0i64; LANES];
    for l in 0..LANES {
        // max = 1.f × 2^(biased - 1023), so max × 2^(1022 - biased) ∈ [1/2, 1); a zero or
        // subnormal maximum (biased = 0) is caught by the floor and recomputed by the oracle.
        let biased = ((max[l].to_bits() >> 52) as i64).clamp(1, 2046);
        scale[l] = f64::from_bits(((2045 - biased) as u64) << 52);
        e[l] = biased - 1022;
        smallest[l] = if max[l] < smallest[l] { max[l] } else { smallest[l] };
    }
    if let Some(exponent) = exponent {
        exponent.iter_mut().zip(e).for_each(|(acc, e)| *acc += e);
    }
    for row in v.iter_mut() {
        for l in 0..LANES {
            row[l] *= scale[l];
        }
    }
}

/// `acc ← acc ⊙ x`.
#[inline(always)]
fn mul_impl(acc: &mut [Row], x: &[Row]) {
    for (a, b) in acc.iter_mut().zip(x) {
        for l in 0..LANES {
            a[l] *= b[l];
        }
    }
}

/// `out ← x ⊙ y`.
#[inline(always)]
fn product_impl(out: &mut [Row], x: &[Row], y: &[Row]) {
    for ((o, a), b) in out.iter_mut().zip(x).zip(y) {
        for l in 0..LANES {
            o[l] = a[l] * b[l];
        }
    }
}

crate::bp::fast::dispatch!(matvec, matvec_avx2, matvec_impl, (out: &mut [Row], m: &[f64], x: &[Row]));
crate::bp::fast::dispatch!(rescale, rescale_avx2, rescale_impl, (v: &mut [Row], exponent: Option<&mut [i64; LANES]>, smallest: &mut [f64; LANES]));
crate::bp::fast::dispatch!(mul, mul_avx2, mul_impl, (acc: &mut [Row], x: &[Row]));
crate::bp::fast::dispatch!(product, product_avx2, product_impl, (out: &mut [Row], x: &[Row], y: &[Row]));

impl<'m> BatchMarginals<'m> {
    /// Copies the transition matrices into the two layouts the passes read.
    pub fn new(model: &'m Jghm) -> Self {
        let tree = model.tree();
        let (mut rows, mut cols) = (vec![vec![]], vec![vec![]]);
        let mut msg_offsets = vec![0];
        let mut messages = 0;
        for node in &tree.nodes[1..] {
            let psi = model.transition(node.transition.expect("non-root"));
            rows.push((0..psi.nrows()).flat_map(|a| (0..psi.ncols()).map(move |b| psi[(a, b)])).collect());
            // nalgebra is column-major: its slice is Ψᵀ row-major.
            cols.push(psi.as_slice().to_vec());
            msg_offsets.push(messages);
            messages += psi.nrows();
        }
        let widest = tree.nodes.iter().map(|n| n.states).max().unwrap_or(1);
        let most_children = tree.nodes.iter().map(|n| n.children.len()).max().unwrap_or(1);
        BatchMarginals { model, rows, cols, msg_offsets, messages, widest, most_children }
    }

    fn scratch(&self) -> Scratch {
        let tree = self.model.tree();
        let rows = |n| vec![[0.0; LANES]; n];
        Scratch {
            belief: rows(tree.total_states),
            outside: rows(tree.total_states),
            message: rows(self.messages),
            suffix: rows(self.widest * (self.most_children + 1)),
            prefix: rows(self.widest),
            cavity: rows(self.widest),
            kind: vec![Kind::Computed; tree.nodes.len()],
            tokens: vec![[0; LANES]; tree.nodes.len()],
            exponent: [0; LANES],
            smallest: [f64::INFINITY; LANES],
        }
    }

    /// Every node's marginal `p(z_u | o_i)` of each observation, into `out` (observation `i`'s
    /// node `u` at `i · total_states + tree.span(u)`), and `log p(o_i)` into `log_likelihoods`.
    /// Rows of impossible observations are NaN (log-likelihood `-inf`). Evidence must be valid
    /// (checked by the caller). Parallel over fixed chunks of [`CHUNK`]: the numbers do not
    /// depend on the thread count. Returns how many observations the log-domain reference
    /// recomputed (those outside the probability domain's safe range, see the module doc).
    pub fn marginals_into<O: Observation + Sync>(
        &self,
        observations: &[O],
        out: &mut [f64],
        log_likelihoods: &mut [f64],
    ) -> usize {
        let n = self.model.tree().total_states;
        assert_eq!(out.len(), observations.len() * n, "one marginal row per observation");
        assert_eq!(log_likelihoods.len(), observations.len(), "one log-likelihood per observation");
        observations
            .par_chunks(CHUNK)
            .zip(out.par_chunks_mut(CHUNK * n))
            .zip(log_likelihoods.par_chunks_mut(CHUNK))
            .map_init(
                || self.scratch(),
                |s, ((obs, rows), ll)| {
                    let mut recomputed = 0;
                    for start in (0..obs.len()).step_by(LANES) {
                        let block: [&O; LANES] = std::array::from_fn(|l| &obs[(start + l).min(obs.len() - 1)]);
                        let used = LANES.min(obs.len() - start);
                        let (rows, ll) = (&mut rows[start * n..(start + used) * n], &mut ll[start..start + used]);
                        recomputed += self.block(&block, used, s, rows, ll);
                    }
                    recomputed
                },
            )
            .sum()
    }

    /// Streams the marginals: for each fixed chunk of [`CHUNK`] observations (in parallel),
    /// `fold(acc, first, rows, log_likelihoods)` receives them block by block ([`LANES`]
    /// observations from index `first`, rows laid out as in [`Self::marginals_into`]), starting
    /// from `init()`. Returns one accumulator per chunk, in order, so a combination in that order
    /// does not depend on the thread count. Memory: one block of rows per worker, whatever the
    /// number of observations.
    pub fn fold_chunks<O, T, I, F>(&self, observations: &[O], init: I, fold: F) -> Vec<T>
    where
        O: Observation + Sync,
        T: Send,
        I: Fn() -> T + Sync,
        F: Fn(T, usize, &[f64], &[f64]) -> T + Sync,
    {
        let n = self.model.tree().total_states;
        observations
            .par_chunks(CHUNK)
            .enumerate()
            .map_init(
                || (self.scratch(), vec![0.0; LANES * n]),
                |(s, rows), (c, obs)| {
                    let mut acc = init();
                    for start in (0..obs.len()).step_by(LANES) {
                        let block: [&O; LANES] = std::array::from_fn(|l| &obs[(start + l).min(obs.len() - 1)]);
                        let used = LANES.min(obs.len() - start);
                        let mut ll = [0.0; LANES];
                        self.block(&block, used, s, &mut rows[..used * n], &mut ll[..used]);
                        acc = fold(acc, c * CHUNK + start, &rows[..used * n], &ll[..used]);
                    }
                    acc
                },
            )
            .collect()
    }

    /// One block: upward, root, downward; untrusted lanes recomputed by the oracle (counted).
    fn block<O: Observation>(
        &self,
        obs: &[&O; LANES],
        used: usize,
        s: &mut Scratch,
        out: &mut [f64],
        ll: &mut [f64],
    ) -> usize {
        let trusted = self.pass(obs, s, out, ll);
        let n = self.model.tree().total_states;
        let mut recomputed = 0;
        for l in 0..used {
            if trusted[l] {
                continue;
            }
            recomputed += 1;
            // Outside the probability domain's safe range: the log-domain oracle decides.
            let row = &mut out[l * n..(l + 1) * n];
            ll[l] = bp::log_likelihood(self.model, obs[l]);
            match bp::marginals(self.model, obs[l]) {
                Ok(m) => row.iter_mut().zip(m.iter().flatten()).for_each(|(r, v)| *r = *v),
                Err(_) => row.fill(f64::NAN),
            }
        }
        recomputed
    }

    /// The probability-domain passes of one block; per lane, whether its numbers are in the
    /// safe range (else `out` and `ll` hold garbage for it).
    fn pass<O: Observation>(
        &self,
        obs: &[&O; LANES],
        s: &mut Scratch,
        out: &mut [f64],
        ll: &mut [f64],
    ) -> [bool; LANES] {
        s.exponent = [0; LANES];
        s.smallest = [f64::INFINITY; LANES];
        self.leaves(obs, s);
        self.upward(s);
        let sums = self.root(s, ll);
        self.downward(s, out);
        std::array::from_fn(|l| s.smallest[l] >= FLOOR && sums[l] >= FLOOR)
    }

    /// Reads each leaf's evidence in every lane: its kind, tokens, and `b_u = λ_u` when mixed.
    fn leaves<O: Observation>(&self, obs: &[&O; LANES], s: &mut Scratch) {
        let tree = self.model.tree();
        let mut bulk = [false; 2];
        for (side, (part, leaves)) in
            [(Part::Image, &tree.image_leaves), (Part::Text, &tree.text_leaves)].into_iter().enumerate()
        {
            // A side observed in every lane: its tokens read in bulk, observation by observation.
            let tokens: [Option<&[usize]>; LANES] = std::array::from_fn(|l| obs[l].tokens(part));
            if tokens.iter().any(Option::is_none) {
                continue;
            }
            bulk[side] = true;
            for (l, x) in tokens.iter().flatten().enumerate() {
                for (&u, &t) in leaves.iter().zip(x.iter()) {
                    s.tokens[u][l] = t as u32;
                }
            }
            for &u in leaves {
                s.kind[u] = Kind::Observed;
            }
        }
        for (u, slot) in tree.leaf_slot.iter().enumerate() {
            let Some((part, position)) = *slot else { continue };
            if bulk[usize::from(part != Part::Image)] {
                continue;
            }
            let views: [LeafView; LANES] = std::array::from_fn(|l| obs[l].leaf(part, position));
            s.kind[u] = if views.iter().all(|v| matches!(v, LeafView::Observed(_))) {
                Kind::Observed
            } else if views.iter().all(|v| matches!(v, LeafView::Missing)) {
                Kind::Empty
            } else {
                Kind::Computed
            };
            if s.kind[u] == Kind::Observed {
                for (l, view) in views.iter().enumerate() {
                    if let LeafView::Observed(t) = *view {
                        s.tokens[u][l] = t as u32;
                    }
                }
                continue;
            }
            let belief = &mut s.belief[tree.span(u)];
            for (l, view) in views.iter().enumerate() {
                match *view {
                    LeafView::Observed(t) => {
                        belief.iter_mut().enumerate().for_each(|(b, row)| row[l] = if b == t { 1.0 } else { 0.0 });
                    }
                    LeafView::Missing => belief.iter_mut().for_each(|row| row[l] = 1.0),
                    LeafView::Soft(w) => belief.iter_mut().zip(w).for_each(|(row, w)| row[l] = *w),
                }
            }
        }
    }

    /// Upward, leaves to root: `b_u = Π_w m_w` (non-empty children), `m_u = Ψ_u b_u`, rescaled.
    fn upward(&self, s: &mut Scratch) {
        let tree = self.model.tree();
        for u in (0..tree.nodes.len()).rev() {
            let node = &tree.nodes[u];
            let span = tree.span(u);
            if node.children.is_empty() {
                if s.kind[u] == Kind::Empty {
                    continue;
                }
            } else {
                let kind = &s.kind;
                let mut live = node.children.iter().filter(|&&w| kind[w] != Kind::Empty);
                let Some(&first) = live.next() else {
                    s.kind[u] = Kind::Empty;
                    continue;
                };
                let m = self.msg_offsets[first];
                let (belief, message) = (&mut s.belief[span.clone()], &s.message[m..m + node.states]);
                belief.copy_from_slice(message);
                for &w in live {
                    let m = self.msg_offsets[w];
                    mul(belief, &s.message[m..m + node.states]);
                }
                rescale(belief, Some(&mut s.exponent), &mut s.smallest);
                s.kind[u] = Kind::Computed;
            }
            let Some(parent) = node.parent else { continue };
            let (p, m) = (tree.nodes[parent].states, self.msg_offsets[u]);
            let message = &mut s.message[m..m + p];
            if s.kind[u] == Kind::Observed {
                // m_u(a) = Ψ_u(a, t): column t, contiguous in the transposed copy.
                for (l, &t) in s.tokens[u].iter().enumerate() {
                    let column = &self.cols[u][t as usize * p..(t as usize + 1) * p];
                    message.iter_mut().zip(column).for_each(|(row, c)| row[l] = *c);
                }
            } else {
                // m_u(a) = Σ_b Ψ_u(a, b) b_u(b)
                matvec(message, &self.rows[u], &s.belief[span]);
            }
            rescale(message, Some(&mut s.exponent), &mut s.smallest);
        }
    }

    /// `log p(o) = ln Σ_a π(a) b̂_root(a) + E ln 2` per lane into `ll`; returns the sums.
    fn root(&self, s: &Scratch, ll: &mut [f64]) -> Row {
        let tree = self.model.tree();
        let mut sums = [0.0; LANES];
        if s.kind[0] == Kind::Empty {
            sums = [1.0; LANES];
        } else {
            for (p, row) in self.model.prior().iter().zip(&s.belief[tree.span(0)]) {
                for l in 0..LANES {
                    sums[l] += p * row[l];
                }
            }
        }
        for (l, out) in ll.iter_mut().enumerate() {
            *out = sums[l].ln() + s.exponent[l] as f64 * std::f64::consts::LN_2;
        }
        sums
    }

    /// Downward, root to leaves: each node's marginal `∝ o_v ⊙ b_v` into `out`, then its
    /// children's outside vectors from the cavities.
    fn downward(&self, s: &mut Scratch, out: &mut [f64]) {
        let tree = self.model.tree();
        for (row, p) in s.outside[tree.span(0)].iter_mut().zip(self.model.prior()) {
            *row = [*p; LANES];
        }
        for v in 0..tree.nodes.len() {
            self.write_marginal(v, s, out);
            let children = &tree.nodes[v].children;
            if s.kind[v] == Kind::Empty {
                // No evidence below v: `outside[v]` now holds v's marginal, and each child's
                // is `p(z_u = b | o) = Σ_a p(z_v = a | o) Ψ_u(a, b)` (rows are stochastic).
                for &u in children {
                    let (span_u, span_v) = (tree.span(u), tree.span(v));
                    let (lo, hi) = s.outside.split_at_mut(span_u.start);
                    matvec(&mut hi[..span_u.len()], &self.cols[u], &lo[span_v]);
                }
                continue;
            }
            if children.iter().all(|&u| s.kind[u] == Kind::Observed) {
                continue; // observed leaves need no outside vector
            }
            let sv = tree.nodes[v].states;
            // suffix[j] = Π_{w ≥ j, w not empty} m_w
            let c = children.len();
            s.suffix[c * sv..(c + 1) * sv].fill([1.0; LANES]);
            for (j, &w) in children.iter().enumerate().rev() {
                let (here, after) = s.suffix.split_at_mut((j + 1) * sv);
                let here = &mut here[j * sv..];
                if s.kind[w] == Kind::Empty {
                    here.copy_from_slice(&after[..sv]);
                } else {
                    let m = self.msg_offsets[w];
                    product(here, &after[..sv], &s.message[m..m + sv]);
                }
            }
            // A running prefix o_v ⊙ Π_{w < j} m_w, rescaled; cavity_j = prefix ⊙ suffix[j + 1].
            s.prefix[..sv].copy_from_slice(&s.outside[tree.span(v)]);
            for (j, &u) in children.iter().enumerate() {
                if s.kind[u] != Kind::Observed {
                    let cavity = &mut s.cavity[..sv];
                    product(cavity, &s.prefix[..sv], &s.suffix[(j + 1) * sv..(j + 2) * sv]);
                    // o_u(b) = Σ_a Ψ_u(a, b) cavity(a). max_b o_u(b) ≥ max_a cavity(a) / S_u,
                    // so the floor on o_u also guards the cavity.
                    let outside = &mut s.outside[tree.span(u)];
                    matvec(outside, &self.cols[u], cavity);
                    rescale(outside, None, &mut s.smallest);
                }
                if s.kind[u] != Kind::Empty && j + 1 < c {
                    let m = self.msg_offsets[u];
                    mul(&mut s.prefix[..sv], &s.message[m..m + sv]);
                    rescale(&mut s.prefix[..sv], None, &mut s.smallest);
                }
            }
        }
    }

    /// `p(z_v = b | o) = o_v(b) b_v(b) / Σ_b' o_v(b') b_v(b')` per lane, into row `l` of `out`:
    /// a one-hot row for a leaf observed in every lane; `b_v = 1` without evidence below, where
    /// the normalised marginal is also kept in `outside[v]` for v's children (and is already
    /// normalised when v's parent has no evidence below either).
    fn write_marginal(&self, v: usize, s: &mut Scratch, out: &mut [f64]) {
        let tree = self.model.tree();
        let (span, n) = (tree.span(v), tree.total_states);
        let rows = out.len() / n;
        let transpose = |out: &mut [f64], joint: &[Row]| {
            for l in 0..rows {
                let row = &mut out[l * n + span.start..l * n + span.end];
                row.iter_mut().zip(joint).for_each(|(o, j)| *o = j[l]);
            }
        };
        match s.kind[v] {
            Kind::Observed => {
                for (l, &t) in s.tokens[v].iter().enumerate().take(rows) {
                    let row = &mut out[l * n + span.start..l * n + span.end];
                    for (b, r) in row.iter_mut().enumerate() {
                        *r = if b == t as usize { 1.0 } else { 0.0 };
                    }
                }
            }
            Kind::Empty if tree.nodes[v].parent.is_none_or(|p| s.kind[p] == Kind::Empty) => {
                transpose(out, &s.outside[span.clone()]);
            }
            Kind::Empty => {
                let joint = &mut s.outside[span.clone()];
                normalise(joint, &mut s.smallest);
                transpose(out, joint);
            }
            Kind::Computed => {
                let joint = &mut s.cavity[..span.len()];
                product(joint, &s.outside[span.clone()], &s.belief[span.clone()]);
                normalise(joint, &mut s.smallest);
                transpose(out, joint);
            }
        }
    }
}

/// `v ← v / Σ_b v(b)` per lane, keeping the smallest sum met (the floor check).
#[inline(always)]
fn normalise(v: &mut [Row], smallest: &mut [f64; LANES]) {
    let mut z = [0.0; LANES];
    for row in v.iter() {
        for l in 0..LANES {
            z[l] += row[l];
        }
    }
    let mut inv = [0.0; LANES];
    for l in 0..LANES {
        smallest[l] = smallest[l].min(z[l]);
        inv[l] = 1.0 / z[l];
    }
    for row in v.iter_mut() {
        for l in 0..LANES {
            row[l] *= inv[l];
        }
    }
}

/// Node marginals `p(z_u | x_i)` of many observations of one modality (the other side missing),
/// flat: observation `i`'s node `u` at `i · total_states + tree.span(u)`. Parallel over fixed
/// chunks (the same numbers whatever the thread count); rows of impossible observations are NaN.
/// Tokens must be valid (checked by the caller).
pub fn marginals_batch(model: &Jghm, part: Part, observations: &[Vec<usize>]) -> Vec<f64> {
    let tokens: Vec<Tokens> = observations
        .iter()
        .map(|x| match part {
            Part::Image => Tokens { image: Some(x), text: None },
            _ => Tokens { image: None, text: Some(x) },
        })
        .collect();
    let mut out = vec![0.0; observations.len() * model.tree().total_states];
    let mut ll = vec![0.0; observations.len()];
    BatchMarginals::new(model).marginals_into(&tokens, &mut out, &mut ll);
    out
}

/// Node marginals `p(z_u | x_i, y_i)` of pairs, laid out as [`marginals_batch`], and
/// `log p(x_i, y_i)` (`-inf` and a NaN row for impossible pairs).
pub fn marginals_pairs(model: &Jghm, images: &[Vec<usize>], texts: &[Vec<usize>]) -> (Vec<f64>, Vec<f64>) {
    assert_eq!(images.len(), texts.len(), "one text per image");
    let tokens: Vec<Tokens> = images.iter().zip(texts).map(|(x, y)| Tokens { image: Some(x), text: Some(y) }).collect();
    let mut out = vec![0.0; images.len() * model.tree().total_states];
    let mut ll = vec![0.0; images.len()];
    BatchMarginals::new(model).marginals_into(&tokens, &mut out, &mut ll);
    (out, ll)
}

/// One observation at a time through the batched passes (the observation fills every lane, so
/// this costs a block: batch with [`BatchMarginals::marginals_into`] where throughput matters).
pub struct MarginalWorkspace<'m> {
    batch: BatchMarginals<'m>,
    scratch: Scratch,
}

impl<'m> MarginalWorkspace<'m> {
    pub fn new(model: &'m Jghm) -> Self {
        let batch = BatchMarginals::new(model);
        let scratch = batch.scratch();
        MarginalWorkspace { batch, scratch }
    }

    /// Writes every node's marginal into `out` (flat, `tree.span(u)` per node). Returns `false`
    /// (and leaves `out` unspecified) when the probability-domain passes left the safe range;
    /// the caller then asks the log-domain [`bp::marginals`].
    pub fn marginals_into(&mut self, obs: &impl Observation, out: &mut [f64]) -> bool {
        let block = [obs; LANES];
        let mut ll = [0.0];
        // `out` holds one row, so only lane 0 is written.
        let trusted = self.batch.pass(&block, &mut self.scratch, out, &mut ll);
        trusted[0]
    }
}
