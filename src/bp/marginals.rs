//! Batched node marginals `p(z_u | evidence)` of many observations (T1's item 3, fast).
//!
//! The same upward and downward recursions as [`crate::bp::Workspace`], with the techniques of
//! [`crate::bp::fast`]:
//!
//! 1. **Probability domain, rescaled by powers of two.** Upward: `b_u = λ_u` at a leaf,
//!    `b_u = Π_w m_w` inside, `m_u = Ψ_u b_u`; downward: `o_root = π`,
//!    `o_u = Ψ_uᵀ (o_v ⊙ Π_{w ≠ u} m_w)`; and `p(z_u = b | evidence) ∝ o_u(b) b_u(b)`. Every
//!    belief `b_u` and outside vector `o_u` is multiplied by `2^{-e}` so that its maximum lies
//!    in `[1/2, 1)` (exact: no round-off). Messages need no rescaling of their own: a row of
//!    `Ψ_u` sums to 1, so `m_u = Ψ_u b_u ≤ 1`, and a product of them is rescaled as the parent's
//!    belief. Marginals are ratios, so only the upward exponents are kept, per observation:
//!    `log p(evidence) = ln Σ_a π(a) b̂_root(a) + E ln 2` comes for free. No `exp`, one `ln`
//!    per observation.
//! 2. **Batch-major lanes.** A vector is stored `[state][lane]` with [`LANES`] observations side
//!    by side, so `m = Ψ b` is a loop over lanes with a broadcast matrix entry (straight SIMD,
//!    compiled for AVX2 when the CPU has it, four rows at a time so that eight independent
//!    chains of additions keep both adders busy). Lanes never mix: an observation's numbers do
//!    not depend on its block, chunk or thread. The marginals are written batch-major too, into
//!    one block buffer, and transposed into the caller's rows once per block.
//! 3. **Leaf columns.** A leaf observed in every lane sends `m_u(a) = Ψ_u(a, t)`: a contiguous
//!    column, copied. Its marginal is the one-hot `e_t`, so its outside vector is never needed.
//!    A subtree without evidence in any lane sends `m = 1` (rows are stochastic): it is skipped
//!    on the way up. Cavities `Π_{w ≠ u} m_w` come from a running prefix and suffix products.
//! 4. **Only what is asked for.** [`BatchMarginals::selected`] takes the nodes whose marginals
//!    the caller wants (say the text leaves, or the root and the leaves); the downward pass then
//!    visits only the nodes on the way to them, and a row holds only their marginals.
//! 5. **Fixed chunks, no allocation in the loop.** Rayon over chunks of [`CHUNK`]
//!    observations, one scratch per worker; the scratch is `O(nodes × S × LANES)`, flat in the
//!    batch size.
//!
//! **When the reference takes over.** A lane whose scaled maximum, marginal normaliser or root
//! sum falls below [`FLOOR`] (`2^-960`: near-zero transition entries or impossible evidence),
//! or whose normaliser is not finite, is recomputed by the log-domain oracle
//! [`crate::bp::marginals()`]; rows of impossible evidence are NaN. `tests/bp_marginals.rs`
//! checks agreement to 1e-12.
//!
//! Longer than 600 lines because the upward pass, the downward pass and the block plan share
//! one worker's private buffers (`Scratch`'s vectors and node kinds), which a split would have
//! to expose; the lane kernels they share with [`super::fast`] are in `bp/lanes.rs`.

use rayon::prelude::*;

use crate::bp::fast::FLOOR;
use crate::bp::lanes::{self, dispatch};
use crate::bp::{self, LeafView, Observation, Tokens, CHUNK};
use crate::model::{Jghm, Part};

/// Observations per block (one per lane). For the standard configuration (S = 10, m = 3,
/// depth 4, 241 nodes) one worker's vectors take 4 × 2,410 × 8 doubles (0.6 MB, mostly in its
/// 512 KB L2 cache); sixteen lanes (1.2 MB) measured slower.
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

/// A model compiled for batched marginals of a chosen set of nodes. Build once, use from many
/// threads.
pub struct BatchMarginals<'m> {
    model: &'m Jghm,
    /// Per distinct matrix: `Ψ` row-major (`[a][b]`, for `m = Ψ b`) and transposed (`[b][a]`,
    /// for `o = Ψᵀ c`; column `t` is also the message of a leaf observing `t`). Nodes drawn
    /// with the same matrix share one copy, which keeps them in the L1 cache.
    rows: Vec<Vec<f64>>,
    cols: Vec<Vec<f64>>,
    /// For node `u ≥ 1`, which of `rows` / `cols` is its `Ψ_u`.
    matrix: Vec<usize>,
    /// `m_u` at `msg_offsets[u]..+S_parent(u)` of the message buffer.
    msg_offsets: Vec<usize>,
    messages: usize,
    widest: usize,
    most_children: usize,
    /// Per node, where its marginal starts in an output row (`None`: not asked for).
    placed: Vec<Option<usize>>,
    /// The nodes asked for, in row order.
    nodes: Vec<usize>,
    /// Numbers per output row: `Σ_{u asked for} S_u`.
    row_len: usize,
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
    /// Whether node `u`'s outside vector is needed in this block: its marginal is asked for
    /// (and it is not an observed leaf), or a child's outside vector is needed.
    need: Vec<bool>,
    /// Per leaf node, its token in each lane (for [`Kind::Observed`]).
    tokens: Vec<[u32; LANES]>,
    /// One vector per lane, lane after lane (`[lane][state]`), before it is turned batch-major.
    gather: Vec<f64>,
    /// The block's marginals, batch-major: asked-for node `u`'s state `b` at `placed[u] + b`.
    block: Vec<Row>,
    /// Per lane: the summed upward exponent `E`, and the smallest scaled maximum or normaliser
    /// met (NaN once a normaliser was not finite).
    exponent: [i64; LANES],
    smallest: [f64; LANES],
}

/// `out = M x` lane by lane, `M` row-major `out.len() × x.len()`. Four rows at a time: eight
/// independent chains of additions (two vectors of four lanes per row) hide the adder's latency.
#[inline(always)]
fn matvec_impl(out: &mut [Row], m: &[f64], x: &[Row]) {
    let (n, len) = (x.len(), out.len());
    let mut quads = out.chunks_exact_mut(4);
    for (q, o) in (&mut quads).enumerate() {
        let r = &m[4 * q * n..4 * (q + 1) * n];
        let (r0, r1, r2, r3) = (&r[..n], &r[n..2 * n], &r[2 * n..3 * n], &r[3 * n..]);
        let mut acc = [[0.0f64; LANES]; 4];
        for ((((xb, p0), p1), p2), p3) in x.iter().zip(r0).zip(r1).zip(r2).zip(r3) {
            for l in 0..LANES {
                acc[0][l] += p0 * xb[l];
                acc[1][l] += p1 * xb[l];
                acc[2][l] += p2 * xb[l];
                acc[3][l] += p3 * xb[l];
            }
        }
        o.copy_from_slice(&acc);
    }
    let done = len - quads.into_remainder().len();
    let mut pairs = out[done..].chunks_exact_mut(2);
    for (q, o) in (&mut pairs).enumerate() {
        let r = &m[(done + 2 * q) * n..(done + 2 * q + 2) * n];
        let (r0, r1) = (&r[..n], &r[n..]);
        let mut acc = [[0.0f64; LANES]; 2];
        for ((xb, p0), p1) in x.iter().zip(r0).zip(r1) {
            for l in 0..LANES {
                acc[0][l] += p0 * xb[l];
                acc[1][l] += p1 * xb[l];
            }
        }
        o.copy_from_slice(&acc);
    }
    if let [o] = pairs.into_remainder() {
        let a = len - 1;
        let mut acc = [0.0f64; LANES];
        for (p, xb) in m[a * n..(a + 1) * n].iter().zip(x) {
            for l in 0..LANES {
                acc[l] += p * xb[l];
            }
        }
        *o = acc;
    }
}

/// `v ← v / Σ_b v(b)` per lane, keeping the smallest sum met (the floor check; a sum that is
/// not finite makes `smallest` NaN, which fails the check too).
#[inline(always)]
fn normalise_impl(v: &mut [Row], smallest: &mut [f64; LANES]) {
    let mut z = [0.0; LANES];
    for row in v.iter() {
        for l in 0..LANES {
            z[l] += row[l];
        }
    }
    let mut inv = [0.0; LANES];
    for l in 0..LANES {
        // A NaN or infinite sum marks the lane for the oracle (`min` alone would hide a NaN).
        let ok = z[l] < f64::INFINITY;
        smallest[l] = if ok { smallest[l].min(z[l]) } else { f64::NAN };
        inv[l] = 1.0 / z[l];
    }
    for row in v.iter_mut() {
        for l in 0..LANES {
            row[l] *= inv[l];
        }
    }
}

dispatch!(matvec, matvec_avx2, matvec_impl, (out: &mut [Row], m: &[f64], x: &[Row]));
dispatch!(rescale, rescale_avx2, lanes::rescale_impl, (v: &mut [Row], exponent: Option<&mut [i64; LANES]>, smallest: &mut [f64; LANES]));
dispatch!(mul, mul_avx2, lanes::mul_impl, (acc: &mut [Row], x: &[Row]));
dispatch!(product, product_avx2, lanes::product_impl, (out: &mut [Row], x: &[Row], y: &[Row]));
dispatch!(normalise, normalise_avx2, normalise_impl, (v: &mut [Row], smallest: &mut [f64; LANES]));

/// `rows[l · stride + i] = block[i][l]` for lanes `l < used`: batch-major to one row per
/// observation. Moves only, so every path gives the same numbers.
fn lanes_to_rows(block: &[Row], rows: &mut [f64], stride: usize, used: usize) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU supports AVX2, checked just above.
        return unsafe { lanes_to_rows_avx2(block, rows, stride, used) };
    }
    lanes_to_rows_portable(block, rows, stride, used);
}

/// `block[i][l] = rows[l · stride + i]` for every lane: one row per observation to
/// batch-major. Moves only.
fn rows_to_lanes(rows: &[f64], stride: usize, block: &mut [Row]) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU supports AVX2, checked just above.
        return unsafe { rows_to_lanes_avx2(rows, stride, block) };
    }
    rows_to_lanes_portable(rows, stride, block);
}

/// The 4 × 4 transpose of four vectors of four numbers (unpack pairs, then swap halves).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[inline]
fn transpose4(r: [std::arch::x86_64::__m256d; 4]) -> [std::arch::x86_64::__m256d; 4] {
    use std::arch::x86_64::*;
    let (t0, t1) = (_mm256_unpacklo_pd(r[0], r[1]), _mm256_unpackhi_pd(r[0], r[1]));
    let (t2, t3) = (_mm256_unpacklo_pd(r[2], r[3]), _mm256_unpackhi_pd(r[2], r[3]));
    [
        _mm256_permute2f128_pd::<0x20>(t0, t2),
        _mm256_permute2f128_pd::<0x20>(t1, t3),
        _mm256_permute2f128_pd::<0x31>(t0, t2),
        _mm256_permute2f128_pd::<0x31>(t1, t3),
    ]
}

/// [`lanes_to_rows`] by 4 × 4 tiles in registers (four states of four lanes at a time).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn lanes_to_rows_avx2(block: &[Row], rows: &mut [f64], stride: usize, used: usize) {
    use std::arch::x86_64::*;
    let full = block.len() / 4 * 4;
    assert!(used <= LANES && rows.len() >= (used.max(1) - 1) * stride + block.len());
    for i in (0..full).step_by(4) {
        for half in 0..LANES / 4 {
            if 4 * half >= used {
                break;
            }
            let tile = &block[i..i + 4];
            // SAFETY: each load reads 4 of the 8 numbers of a row of `tile`.
            let r = unsafe {
                [
                    _mm256_loadu_pd(tile[0][4 * half..].as_ptr()),
                    _mm256_loadu_pd(tile[1][4 * half..].as_ptr()),
                    _mm256_loadu_pd(tile[2][4 * half..].as_ptr()),
                    _mm256_loadu_pd(tile[3][4 * half..].as_ptr()),
                ]
            };
            for (k, v) in transpose4(r).into_iter().enumerate() {
                let l = 4 * half + k;
                if l < used {
                    let dst = &mut rows[l * stride + i..l * stride + i + 4];
                    // SAFETY: `dst` holds exactly the 4 numbers stored.
                    unsafe { _mm256_storeu_pd(dst.as_mut_ptr(), v) };
                }
            }
        }
    }
    for (i, r) in block.iter().enumerate().skip(full) {
        for l in 0..used {
            rows[l * stride + i] = r[l];
        }
    }
}

/// [`rows_to_lanes`] by 4 × 4 tiles in registers.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn rows_to_lanes_avx2(rows: &[f64], stride: usize, block: &mut [Row]) {
    use std::arch::x86_64::*;
    let full = block.len() / 4 * 4;
    assert!(rows.len() >= (LANES - 1) * stride + block.len());
    for i in (0..full).step_by(4) {
        for half in 0..LANES / 4 {
            let at = |k: usize| (4 * half + k) * stride + i;
            let (a, b, c, d) =
                (&rows[at(0)..at(0) + 4], &rows[at(1)..at(1) + 4], &rows[at(2)..at(2) + 4], &rows[at(3)..at(3) + 4]);
            // SAFETY: each load reads the 4 numbers of a slice of length 4.
            let r = unsafe {
                [
                    _mm256_loadu_pd(a.as_ptr()),
                    _mm256_loadu_pd(b.as_ptr()),
                    _mm256_loadu_pd(c.as_ptr()),
                    _mm256_loadu_pd(d.as_ptr()),
                ]
            };
            for (k, v) in transpose4(r).into_iter().enumerate() {
                // SAFETY: the store writes 4 of the 8 numbers of a row of `block`.
                unsafe { _mm256_storeu_pd(block[i + k][4 * half..].as_mut_ptr(), v) };
            }
        }
    }
    for (i, r) in block.iter_mut().enumerate().skip(full) {
        for l in 0..LANES {
            r[l] = rows[l * stride + i];
        }
    }
}

impl<'m> BatchMarginals<'m> {
    /// Every node's marginal, a row laid out as a flat per-node buffer (`tree.span(u)`).
    /// Copies the transition matrices into the two layouts the passes read.
    pub fn new(model: &'m Jghm) -> Self {
        let all: Vec<usize> = (0..model.tree().nodes.len()).collect();
        Self::selected(model, &all)
    }

    /// The marginals of `nodes` only (node ids of `model.tree()`, e.g. `tree.text_leaves`), a
    /// row holding them one after the other in that order (see [`Self::row_len`]). The
    /// downward pass visits only the nodes on the way from the root to them.
    ///
    /// Panics if a node id is out of range or repeated.
    pub fn selected(model: &'m Jghm, nodes: &[usize]) -> Self {
        let tree = model.tree();
        let (mut rows, mut cols, mut matrix) = (vec![], vec![], vec![usize::MAX]);
        let mut ids = std::collections::HashMap::new();
        let mut msg_offsets = vec![0];
        let mut messages = 0;
        for node in &tree.nodes[1..] {
            let id = node.transition.expect("non-root");
            let psi = model.transition(id);
            matrix.push(*ids.entry(id).or_insert_with(|| {
                rows.push((0..psi.nrows()).flat_map(|a| (0..psi.ncols()).map(move |b| psi[(a, b)])).collect());
                // nalgebra is column-major: its slice is Ψᵀ row-major.
                cols.push(psi.as_slice().to_vec());
                rows.len() - 1
            }));
            msg_offsets.push(messages);
            messages += psi.nrows();
        }
        let widest = tree.nodes.iter().map(|n| n.states).max().unwrap_or(1);
        let most_children = tree.nodes.iter().map(|n| n.children.len()).max().unwrap_or(1);
        let mut placed = vec![None; tree.nodes.len()];
        let mut row_len = 0;
        for &u in nodes {
            assert!(u < tree.nodes.len(), "node {u} is not in the model's tree of {} nodes", tree.nodes.len());
            assert!(placed[u].is_none(), "node {u} is asked for twice");
            placed[u] = Some(row_len);
            row_len += tree.nodes[u].states;
        }
        BatchMarginals {
            model,
            rows,
            cols,
            matrix,
            msg_offsets,
            messages,
            widest,
            most_children,
            placed,
            nodes: nodes.to_vec(),
            row_len,
        }
    }

    /// Numbers per observation in an output row: the asked-for nodes' alphabet sizes, summed.
    pub fn row_len(&self) -> usize {
        self.row_len
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
            need: vec![false; tree.nodes.len()],
            tokens: vec![[0; LANES]; tree.nodes.len()],
            gather: vec![0.0; LANES * self.widest],
            block: rows(self.row_len),
            exponent: [0; LANES],
            smallest: [f64::INFINITY; LANES],
        }
    }

    /// The asked-for marginals `p(z_u | o_i)` of each observation, into `out` (observation
    /// `i`'s row at `i · row_len`; with [`Self::new`], node `u` at `i · total_states +
    /// tree.span(u)`), and `log p(o_i)` into `log_likelihoods`. Rows of impossible
    /// observations are NaN (log-likelihood `-inf`). Evidence must be valid (checked by the
    /// caller). Parallel over fixed chunks of [`CHUNK`]: the numbers do not depend on the
    /// thread count. Returns how many observations the log-domain reference recomputed (those
    /// outside the probability domain's safe range, see the module doc).
    pub fn marginals_into<O: Observation + Sync>(
        &self,
        observations: &[O],
        out: &mut [f64],
        log_likelihoods: &mut [f64],
    ) -> usize {
        let n = self.row_len;
        assert_eq!(out.len(), observations.len() * n, "one marginal row per observation");
        assert_eq!(log_likelihoods.len(), observations.len(), "one log-likelihood per observation");
        // One slice of rows per chunk (empty ones when no node is asked for: `log p` only).
        let mut rows: Vec<&mut [f64]> = match n {
            0 => observations.chunks(CHUNK).map(|_| <&mut [f64]>::default()).collect(),
            _ => out.chunks_mut(CHUNK * n).collect(),
        };
        observations
            .par_chunks(CHUNK)
            .zip(rows.par_iter_mut())
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
        let n = self.row_len;
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

    /// One block: upward, root, downward, transposed into `out`; untrusted lanes recomputed by
    /// the oracle (counted).
    fn block<O: Observation>(
        &self,
        obs: &[&O; LANES],
        used: usize,
        s: &mut Scratch,
        out: &mut [f64],
        ll: &mut [f64],
    ) -> usize {
        let trusted = self.pass(obs, s, ll);
        lanes_to_rows(&s.block, out, self.row_len, used);
        let (tree, n) = (self.model.tree(), self.row_len);
        let mut recomputed = 0;
        for l in 0..used {
            if trusted[l] {
                continue;
            }
            recomputed += 1;
            // Outside the probability domain's safe range: the log-domain oracle decides.
            let row = &mut out[l * n..(l + 1) * n];
            ll[l] = bp::Workspace::new(self.model).upward(self.model, obs[l]);
            match bp::marginals(self.model, obs[l]) {
                Ok(m) => {
                    for &u in &self.nodes {
                        let at = self.placed[u].expect("asked for");
                        row[at..at + tree.nodes[u].states].copy_from_slice(&m[u]);
                    }
                }
                Err(_) => row.fill(f64::NAN),
            }
        }
        recomputed
    }

    /// The probability-domain passes of one block, marginals into `s.block`; per lane, whether
    /// its numbers are in the safe range (else its lane of `s.block` and `ll` hold garbage).
    fn pass<O: Observation>(&self, obs: &[&O; LANES], s: &mut Scratch, ll: &mut [f64]) -> [bool; LANES] {
        s.exponent = [0; LANES];
        s.smallest = [f64::INFINITY; LANES];
        self.leaves(obs, s);
        self.upward(s);
        let sums = self.root(s, ll);
        self.plan_downward(s);
        self.downward(s);
        std::array::from_fn(|l| s.smallest[l] >= FLOOR && sums[l] >= FLOOR)
    }

    /// Reads each leaf's evidence in every lane: its kind, tokens, and `b_u = λ_u` (rescaled)
    /// when mixed.
    fn leaves<O: Observation>(&self, obs: &[&O; LANES], s: &mut Scratch) {
        let tree = self.model.tree();
        let mut bulk = [false; 2];
        for (side, (part, leaves)) in
            [(Part::Image, &tree.image_leaves), (Part::Text, &tree.text_leaves)].into_iter().enumerate()
        {
            if obs.iter().all(|o| o.missing(part)) {
                // A side missing in every lane: nothing below its leaves, skipped upward.
                bulk[side] = true;
                leaves.iter().for_each(|&u| s.kind[u] = Kind::Empty);
                continue;
            }
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
            match s.kind[u] {
                Kind::Observed => {
                    for (l, view) in views.iter().enumerate() {
                        if let LeafView::Observed(t) = *view {
                            s.tokens[u][l] = t as u32;
                        }
                    }
                    continue;
                }
                Kind::Empty => continue,
                Kind::Computed => {}
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
            // Soft weights have any scale: rescaled like a belief, so that `m_u ≤ 1`.
            rescale(belief, Some(&mut s.exponent), &mut s.smallest);
        }
    }

    /// Upward, leaves to root: `b_u = Π_w m_w` (non-empty children, rescaled), `m_u = Ψ_u b_u`
    /// (`≤ 1` since rows sum to 1 and `b_u < 1`: not rescaled).
    fn upward(&self, s: &mut Scratch) {
        let tree = self.model.tree();
        for u in (0..tree.nodes.len()).rev() {
            let node = &tree.nodes[u];
            let span = tree.span(u);
            if node.children.is_empty() {
                if s.kind[u] == Kind::Empty {
                    continue;
                }
            } else if node.children.iter().all(|&w| s.kind[w] == Kind::Observed) {
                self.belief_of_observed_leaves(u, s);
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
            let siblings = &tree.nodes[parent].children;
            if s.kind[u] == Kind::Observed && siblings.iter().all(|&w| s.kind[w] == Kind::Observed) {
                continue; // the parent reads the leaf columns itself, and no cavity needs them
            }
            let (p, m) = (tree.nodes[parent].states, self.msg_offsets[u]);
            let message = &mut s.message[m..m + p];
            if s.kind[u] == Kind::Observed {
                // m_u(a) = Ψ_u(a, t): column t, contiguous in the transposed copy.
                for (l, &t) in s.tokens[u].iter().enumerate() {
                    let column = &self.cols[self.matrix[u]][t as usize * p..(t as usize + 1) * p];
                    message.iter_mut().zip(column).for_each(|(row, c)| row[l] = *c);
                }
            } else {
                // m_u(a) = Σ_b Ψ_u(a, b) b_u(b)
                matvec(message, &self.rows[self.matrix[u]], &s.belief[span]);
            }
        }
    }

    /// A parent of leaves all observed: `b_v(a) = Π_j Ψ_j(a, t_j)`, the product of the leaves'
    /// columns, formed lane by lane in contiguous vectors and then turned batch-major (the
    /// leaves' messages are not stored: no cavity of v needs them), rescaled.
    fn belief_of_observed_leaves(&self, v: usize, s: &mut Scratch) {
        let tree = self.model.tree();
        let sv = tree.nodes[v].states;
        let gather = &mut s.gather[..LANES * sv];
        for (l, lane) in gather.chunks_exact_mut(sv).enumerate() {
            for (j, &w) in tree.nodes[v].children.iter().enumerate() {
                let t = s.tokens[w][l] as usize;
                let column = &self.cols[self.matrix[w]][t * sv..(t + 1) * sv];
                if j == 0 {
                    lane.copy_from_slice(column);
                } else {
                    lane.iter_mut().zip(column).for_each(|(b, c)| *b *= c);
                }
            }
        }
        let belief = &mut s.belief[tree.span(v)];
        rows_to_lanes(gather, sv, belief);
        rescale(belief, Some(&mut s.exponent), &mut s.smallest);
        s.kind[v] = Kind::Computed;
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
        for (out, (sum, e)) in ll.iter_mut().zip(sums.iter().zip(s.exponent)) {
            *out = sum.ln() + e as f64 * std::f64::consts::LN_2;
        }
        sums
    }

    /// Which outside vectors this block needs, leaves to root: an asked-for node's (unless it
    /// is an observed leaf, whose marginal is one-hot), and every ancestor's of a needed one.
    fn plan_downward(&self, s: &mut Scratch) {
        let tree = self.model.tree();
        for u in (0..tree.nodes.len()).rev() {
            let asked = self.placed[u].is_some() && s.kind[u] != Kind::Observed;
            s.need[u] = asked || tree.nodes[u].children.iter().any(|&w| s.need[w]);
        }
    }

    /// Downward, root to leaves, through the needed nodes: each asked-for node's marginal
    /// `∝ o_v ⊙ b_v` into the block, then its needed children's outside vectors.
    fn downward(&self, s: &mut Scratch) {
        let tree = self.model.tree();
        for (row, p) in s.outside[tree.span(0)].iter_mut().zip(self.model.prior()) {
            *row = [*p; LANES];
        }
        for v in 0..tree.nodes.len() {
            if !s.need[v] {
                if let (Some(at), Kind::Observed) = (self.placed[v], s.kind[v]) {
                    self.one_hot(v, at, s);
                }
                continue;
            }
            if let Some(at) = self.placed[v] {
                self.write_marginal(v, at, s);
            }
            let children = &tree.nodes[v].children;
            if !children.iter().any(|&u| s.need[u]) {
                continue;
            }
            if s.kind[v] == Kind::Empty {
                // No evidence below v: `outside[v]` holds v's marginal, and each child's is
                // `p(z_u = b | o) = Σ_a p(z_v = a | o) Ψ_u(a, b)` (rows are stochastic).
                for &u in children.iter().filter(|&&u| s.need[u]) {
                    let (span_u, span_v) = (tree.span(u), tree.span(v));
                    let (lo, hi) = s.outside.split_at_mut(span_u.start);
                    matvec(&mut hi[..span_u.len()], &self.cols[self.matrix[u]], &lo[span_v]);
                }
                continue;
            }
            self.cavities(v, s);
        }
    }

    /// The outside vectors of v's needed children, v with evidence below:
    /// `o_u = Ψ_uᵀ (o_v ⊙ Π_{w ≠ u} m_w)`, rescaled; for a child without evidence below, its
    /// marginal (normalised).
    fn cavities(&self, v: usize, s: &mut Scratch) {
        let tree = self.model.tree();
        let (children, sv) = (&tree.nodes[v].children, tree.nodes[v].states);
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
        // A running prefix o_v ⊙ Π_{w < j} m_w (≤ o_v: messages are ≤ 1);
        // cavity_j = prefix ⊙ suffix[j + 1].
        s.prefix[..sv].copy_from_slice(&s.outside[tree.span(v)]);
        for (j, &u) in children.iter().enumerate() {
            if s.need[u] {
                let cavity = &mut s.cavity[..sv];
                product(cavity, &s.prefix[..sv], &s.suffix[(j + 1) * sv..(j + 2) * sv]);
                // o_u(b) = Σ_a Ψ_u(a, b) cavity(a). Σ_b o_u(b) = Σ_a cavity(a), so
                // max_b o_u(b) ≥ max_a cavity(a) / S_u: the floor on o_u also guards the cavity.
                let outside = &mut s.outside[tree.span(u)];
                matvec(outside, &self.cols[self.matrix[u]], cavity);
                if s.kind[u] == Kind::Empty {
                    normalise(outside, &mut s.smallest);
                } else {
                    rescale(outside, None, &mut s.smallest);
                }
            }
            if s.kind[u] != Kind::Empty && j + 1 < c {
                let m = self.msg_offsets[u];
                mul(&mut s.prefix[..sv], &s.message[m..m + sv]);
            }
        }
    }

    /// `p(z_v = b | o) = o_v(b) b_v(b) / Σ_b' o_v(b') b_v(b')` per lane, at `at` of the block;
    /// `b_v = 1` without evidence below, where `outside[v]` already holds the marginal.
    fn write_marginal(&self, v: usize, at: usize, s: &mut Scratch) {
        let span = self.model.tree().span(v);
        let joint = &mut s.block[at..at + span.len()];
        match s.kind[v] {
            Kind::Observed => unreachable!("an observed leaf needs no outside vector"),
            Kind::Empty => joint.copy_from_slice(&s.outside[span]),
            Kind::Computed => {
                product(joint, &s.outside[span.clone()], &s.belief[span]);
                normalise(joint, &mut s.smallest);
            }
        }
    }

    /// An observed leaf's marginal, the one-hot `e_t` of its token in each lane.
    fn one_hot(&self, v: usize, at: usize, s: &mut Scratch) {
        let states = self.model.tree().nodes[v].states;
        let tokens = &s.tokens[v];
        for (b, row) in s.block[at..at + states].iter_mut().enumerate() {
            for l in 0..LANES {
                row[l] = if tokens[l] as usize == b { 1.0 } else { 0.0 };
            }
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
    /// the caller then asks the log-domain [`bp::marginals()`].
    pub fn marginals_into(&mut self, obs: &impl Observation, out: &mut [f64]) -> bool {
        let block = [obs; LANES];
        let mut ll = [0.0];
        let trusted = self.batch.pass(&block, &mut self.scratch, &mut ll);
        // Lane 0 only: `out` holds one row.
        lanes_to_rows(&self.scratch.block, out, self.batch.row_len, 1);
        trusted[0]
    }

    /// Every node's marginal `p(z_u | evidence)`, flat (`tree.span(u)` per node): by
    /// [`MarginalWorkspace::marginals_into`], or by the log-domain [`bp::marginals`](fn@crate::bp::marginals) where that
    /// leaves the safe range. An error when the evidence does not fit the model or has
    /// probability zero.
    pub fn marginals(&mut self, obs: &impl Observation) -> Result<Vec<f64>, bp::BpError> {
        obs.check(self.batch.model)?;
        let mut flat = vec![0.0; self.batch.model.tree().total_states];
        if self.marginals_into(obs, &mut flat) {
            return Ok(flat);
        }
        // Node ids order the spans, so the oracle's rows laid end to end are the flat layout.
        Ok(bp::marginals(self.batch.model, obs)?.concat())
    }
}

/// [`lanes_to_rows`] without AVX2: one number at a time.
fn lanes_to_rows_portable(block: &[Row], rows: &mut [f64], stride: usize, used: usize) {
    for (i, r) in block.iter().enumerate() {
        for l in 0..used {
            rows[l * stride + i] = r[l];
        }
    }
}

/// [`rows_to_lanes`] without AVX2: one number at a time.
fn rows_to_lanes_portable(rows: &[f64], stride: usize, block: &mut [Row]) {
    for (i, r) in block.iter_mut().enumerate() {
        for l in 0..LANES {
            r[l] = rows[l * stride + i];
        }
    }
}

/// The two transposes, both paths (the AVX2 one runs only where the CPU has it, the portable
/// one only where it does not: each is checked here against the definition, on any CPU).
#[cfg(test)]
mod tests {
    use super::*;

    type ToRows = fn(&[Row], &mut [f64], usize, usize);
    type ToLanes = fn(&[f64], usize, &mut [Row]);

    /// A distinct number per position, so that a misplaced move is seen.
    fn numbered_block(states: usize) -> Vec<Row> {
        (0..states).map(|i| std::array::from_fn(|l| (100 * i + l) as f64 + 0.5)).collect()
    }

    /// Every block length around the 4 × 4 tiles, every lane count, a stride longer than the
    /// block: `rows[l · stride + i] = block[i][l]` for `l < used`, and nothing else written.
    #[test]
    fn lanes_to_rows_moves_each_number_to_its_row() {
        let mut paths: Vec<(&str, ToRows)> = vec![("portable", lanes_to_rows_portable)];
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU supports AVX2, checked just above.
            paths.push(("avx2", |b, r, s, u| unsafe { lanes_to_rows_avx2(b, r, s, u) }));
        }
        for (path, transpose) in paths {
            for states in 1..=9 {
                let (block, stride) = (numbered_block(states), states + 2);
                for used in 1..=LANES {
                    let mut rows = vec![-1.0; LANES * stride];
                    transpose(&block, &mut rows, stride, used);
                    for (at, &v) in rows.iter().enumerate() {
                        let (l, i) = (at / stride, at % stride);
                        let want = if l < used && i < states { block[i][l] } else { -1.0 };
                        assert_eq!(v, want, "{path}: {states} states, {used} lanes, lane {l} state {i}");
                    }
                }
            }
        }
    }

    /// The inverse: `block[i][l] = rows[l · stride + i]` for every lane.
    #[test]
    fn rows_to_lanes_moves_each_number_to_its_lane() {
        let mut paths: Vec<(&str, ToLanes)> = vec![("portable", rows_to_lanes_portable)];
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU supports AVX2, checked just above.
            paths.push(("avx2", |r, s, b| unsafe { rows_to_lanes_avx2(r, s, b) }));
        }
        for (path, transpose) in paths {
            for states in 1..=9 {
                let stride = states + 2;
                let rows: Vec<f64> = (0..LANES * stride).map(|at| at as f64 + 0.25).collect();
                let mut block = vec![[-1.0; LANES]; states];
                transpose(&rows, stride, &mut block);
                for (i, r) in block.iter().enumerate() {
                    for (l, &v) in r.iter().enumerate() {
                        assert_eq!(v, rows[l * stride + i], "{path}: {states} states, lane {l} state {i}");
                    }
                }
            }
        }
    }
}
