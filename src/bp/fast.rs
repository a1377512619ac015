//! Fast batched belief propagation (T1), specialised to the level structure of a JGHM.
//!
//! The same upward pass as [`super::Workspace`], computed for [`LANES`] observations at once,
//! with four changes that keep its value and remove most of its cost:
//!
//! 1. **Probability domain, rescaled by powers of two.** Each node keeps
//!    `ĥ_u(b) = h_u(b) 2^{-e_u}` (with `h_u` now a likelihood, not its log), the exponent `e_u`
//!    chosen so that `max_b ĥ_u(b) ∈ [1/2, 1)`. Multiplying by a power of two is exact, so the
//!    rescaling adds no round-off; the exponents of all nodes add up per observation, and
//!    `log p(evidence) = ln Σ_a π(a) ĥ_root(a) + E ln 2` costs one logarithm per observation
//!    instead of one `exp` and one `ln` per state and node.
//! 2. **Batch-major layout.** A node's vector is stored `[state][lane]`: observation `l` of the
//!    block sits in lane `l`, so `μ_u(a) = Σ_b Ψ_u(a, b) ĥ_u(b)` is a loop over lanes with a
//!    broadcast matrix entry: straight SIMD, no gathers. Lanes never mix, so every
//!    observation's result is independent of its block, chunk and thread.
//! 3. **Depth-first over one tower.** Each level `k` has one buffer `[S_k][LANES]`; the pass
//!    walks the tree depth-first, so the working set is `depth × S × LANES` numbers (it stays in
//!    L1) and nothing is allocated per observation. Leaves read their parent's message from
//!    precomputed transition columns `Ψ_{L,j}(·, t)`.
//! 4. **Leaf tables.** When `V^m` token combinations fit the cache, the message every parent of
//!    leaves sends up is tabulated once per model ([`FastBp::new`]): the two lowest levels of
//!    the pass become one (prefetched) lookup per parent of leaves.
//!
//! Kernels are compiled twice (baseline and AVX2, chosen at run time); both run the same IEEE
//! operations in the same order, so results are identical bit for bit on either.
//!
//! Trunk models are supported: the trunk levels are walked the same way, and at a trunk leaf
//! the image and/or text tower below it supply the vector (the joint `p(x, y)` multiplies the
//! two towers' vectors there, the book, The JGHM: `X ⟂ Y` given the trunk leaves).
//!
//! **When the reference takes over.** A node whose largest scaled value falls below
//! [`FLOOR`] (`2^-960`, only reached with products of near-zero transition entries or
//! impossible evidence) would lose relative precision in the probability domain; its
//! observation is recomputed by the log-domain [`super::Workspace`]. So the fast path returns
//! the reference's answer (to round-off, tested to 1e-12 in `tests/bp_fast.rs`) on every input;
//! [`FastBp::reference_fallbacks`] counts the observations it recomputed.
//!
//! Longer than 600 lines because the leaf tables, the tower and trunk passes and the fallback
//! read one private block layout (`Scratch`); the kernels shared with [`super::marginals`](mod@super::marginals) are
//! in `bp/lanes.rs`.

use std::sync::atomic::{AtomicUsize, Ordering};

use rayon::prelude::*;

use super::lanes::{self, dispatch};
use super::{PmiParts, Tokens, Workspace, CHUNK};
use crate::model::{Jghm, Level, Part};

/// Observations per block: one per lane of the batch-major buffers.
pub const LANES: usize = 32;

/// Smallest scaled maximum trusted in the probability domain: `2^-960`. Entries this far below
/// a node's maximum contribute less than `2^-960` relative to its sums, but a maximum this small
/// would mean the whole vector lives near the subnormal range: the reference takes over.
pub const FLOOR: f64 = f64::from_bits((1023 - 960) << 52);

/// One block of vectors: `S` rows of [`LANES`] lanes.
type Block = Vec<[f64; LANES]>;

/// One level of a tower or trunk: the matrices drawing the children of a node at this depth.
#[derive(Clone, Debug)]
struct LevelPlan {
    /// `Ψ_j(a, b)` at `psi[j][a * states + b]` (row-major), `j` the child position.
    psi: Vec<Vec<f64>>,
    parent_states: usize,
    states: usize,
}

impl LevelPlan {
    fn new(level: &Level) -> Self {
        let parent_states = level.transitions[0].nrows();
        let states = level.states();
        let psi = level
            .transitions
            .iter()
            .map(|m| (0..parent_states).flat_map(|a| (0..states).map(move |b| m[(a, b)])).collect())
            .collect();
        LevelPlan { psi, parent_states, states }
    }
    fn children(&self) -> usize {
        self.psi.len()
    }
}

/// A chain of levels below one node (a modality's tower, or the trunk).
#[derive(Clone, Debug)]
struct Chain {
    /// `levels[k]` draws the children of the nodes at depth `k` (depth 0: the chain's top).
    levels: Vec<LevelPlan>,
    /// `below[k]`: number of leaves under one node at depth `k` (`below[depth] = 1`).
    below: Vec<usize>,
    /// Alphabet size at the top (depth 0).
    top: usize,
}

impl Chain {
    fn new(levels: &[Level], top: usize) -> Self {
        let levels: Vec<LevelPlan> = levels.iter().map(LevelPlan::new).collect();
        let mut below = vec![1; levels.len() + 1];
        for k in (0..levels.len()).rev() {
            below[k] = below[k + 1] * levels[k].children();
        }
        Chain { levels, below, top }
    }
    fn depth(&self) -> usize {
        self.levels.len()
    }
    /// Alphabet size at depth `k`.
    fn states(&self, k: usize) -> usize {
        match k {
            0 => self.top,
            _ => self.levels[k - 1].states,
        }
    }
}

/// A modality's tower with its leaf columns and, when small enough, its leaf table.
#[derive(Clone, Debug)]
struct Tower {
    chain: Chain,
    /// `Ψ_{L,j}(a, t)` at `columns[j][t * S_{L-1} + a]`: the message a leaf in position `j`
    /// with token `t` sends to its parent, contiguous in `a`.
    columns: Vec<Vec<f64>>,
    /// The messages of the parents of leaves, tabulated by their leaves' tokens.
    table: Option<LeafTable>,
    vocab: usize,
}

/// Widest alphabet above a leaf table (the lookup keeps a row of it on the stack).
const MAX_LOOKUP_STATES: usize = 64;

/// Largest leaf table, in numbers (4 MiB: it stays in the L3 cache; with prefetching, a lookup
/// there still beats the two levels of work it replaces, measured for S = 10, 20, 50).
const TABLE_BUDGET: usize = 1 << 19;

/// The message a parent of leaves `v` (child position `j` at depth `L-1`) sends up, for every
/// combination `t = (t_1, .., t_m)` of its leaves' tokens:
/// `μ_{j,t}(a) = Σ_b Ψ_{L-1,j}(a, b) Π_i Ψ_{L,i}(b, t_i)`, stored rescaled like a node
/// (`μ̂ = μ 2^{-e}`, `max_a μ̂(a) ∈ [1/2, 1)`). Two levels of the pass become one lookup.
#[derive(Clone, Debug)]
struct LeafTable {
    /// `μ̂_{j,t}(a)` at `values[(j * codes + code(t)) * S_{L-2} + a]`,
    /// `code(t) = Σ_i t_i V^{m-1-i}`.
    values: Vec<f64>,
    /// `e_{j,t}` at `exponents[j * codes + code(t)]`.
    exponents: Vec<i64>,
    /// `V^m`.
    codes: usize,
}

impl Tower {
    /// Copies a block's tokens into `keys` (see [`Scratch::keys`]), lane by lane: each
    /// observation is read once, sequentially, and the pass then reads only this small array.
    /// Panics on a wrong length or a token outside the vocabulary (callers promise valid
    /// tokens; a code must never alias another combination).
    fn keys_into(&self, obs: &[&[usize]; LANES], trunk_leaves: usize, keys: &mut Vec<[u32; LANES]>) {
        let (len, vocab) = (trunk_leaves * self.chain.below[0], self.vocab);
        let group = if self.table.is_some() { self.columns.len() } else { 1 };
        keys.resize(len / group, [0; LANES]);
        for (l, x) in obs.iter().enumerate() {
            assert_eq!(x.len(), len, "an observation has {} tokens, the model expects {len}", x.len());
            if let Some(ahead) = obs.get(l + PREFETCH_AHEAD / 2) {
                prefetch_slice(ahead);
            }
            // One observation at a time: a sequential read the prefetcher follows.
            for (key, leaves) in keys.iter_mut().zip(x.chunks_exact(group)) {
                // code(t) = Σ_i t_i V^{m-1-i} (just t for single leaves)
                key[l] = leaves.iter().fold(0, |c, &t| {
                    assert!(t < vocab, "token {t} outside the vocabulary of size {vocab}");
                    c * vocab as u32 + t as u32
                });
            }
        }
    }
}

impl LeafTable {
    /// The table of a tower of depth at least 2, if it has at most `max_rows` rows, fits
    /// [`TABLE_BUDGET`] and every entry stays above [`FLOOR`] (else the pass computes these
    /// messages node by node).
    fn new(chain: &Chain, columns: &[Vec<f64>], vocab: usize, max_rows: usize) -> Option<Self> {
        let depth = chain.depth();
        if depth < 2 {
            return None;
        }
        let (upper, leaves) = (&chain.levels[depth - 2], columns.len());
        let (s_up, s_mid) = (upper.parent_states, upper.states);
        if s_up > MAX_LOOKUP_STATES {
            return None;
        }
        let codes = vocab.checked_pow(leaves as u32)?;
        if codes.checked_mul(upper.children() * s_up)? > TABLE_BUDGET || codes * upper.children() > max_rows {
            return None;
        }
        let mut values = Vec::with_capacity(upper.children() * codes * s_up);
        let mut exponents = Vec::with_capacity(upper.children() * codes);
        let (mut h, mut mu) = (vec![0.0; s_mid], vec![0.0; s_up]);
        for psi in &upper.psi {
            for code in 0..codes {
                // h(b) = Π_i Ψ_{L,i}(b, t_i), t_i the i-th digit of `code` in base V.
                h.fill(1.0);
                let mut rest = code;
                for column in columns.iter().rev() {
                    let t = rest % vocab;
                    rest /= vocab;
                    h.iter_mut().zip(&column[t * s_mid..(t + 1) * s_mid]).for_each(|(hb, p)| *hb *= p);
                }
                // μ(a) = Σ_b Ψ_{L-1,j}(a, b) h(b)
                for (a, m) in mu.iter_mut().enumerate() {
                    *m = psi[a * s_mid..(a + 1) * s_mid].iter().zip(&h).map(|(p, hb)| p * hb).sum();
                }
                let (h_max, max) = (h.iter().fold(0.0f64, |m, &x| m.max(x)), mu.iter().fold(0.0f64, |m, &x| m.max(x)));
                if h_max < FLOOR || max < FLOOR {
                    return None;
                }
                let biased = (max.to_bits() >> 52) as i64;
                let scale = f64::from_bits(((2045 - biased) as u64) << 52);
                values.extend(mu.iter().map(|m| m * scale));
                exponents.push(biased - 1022);
            }
        }
        Some(LeafTable { values, exponents, codes })
    }
}

impl Tower {
    fn new(levels: &[Level], top: usize, batch: Option<usize>) -> Self {
        let chain = Chain::new(levels, top);
        // A table row costs about as much to build as one use of it saves: worth it when the
        // batch uses each row at least once on average (parents of leaves × observations).
        let parents_of_leaves = chain.below[0] / levels.last().map_or(1, Level::children);
        let max_rows = batch.map_or(usize::MAX, |n| n.saturating_mul(parents_of_leaves));
        let last = levels.last().expect("validated: towers are nonempty");
        let columns = last
            .transitions
            .iter()
            .map(|m| (0..m.ncols()).flat_map(|t| (0..m.nrows()).map(move |a| m[(a, t)])).collect())
            .collect::<Vec<Vec<f64>>>();
        let vocab = last.states();
        let table = LeafTable::new(&chain, &columns, vocab, max_rows);
        Tower { chain, columns, table, vocab }
    }
}

/// Which evidence an upward pass carries (the text of a pair is the other side of `p(x, y)`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// One modality: channel 0 holds `h` for its evidence.
    One(Part),
    /// A pair: channels 0, 1, 2 hold `h` for `x`, for `y`, and for `(x, y)`.
    Pair,
}

impl Mode {
    fn channels(self) -> usize {
        match self {
            Mode::One(_) => 1,
            Mode::Pair => 3,
        }
    }
}

/// A JGHM compiled for batched upward passes. Build once per model, use from many threads.
#[derive(Debug)]
pub struct FastBp<'m> {
    model: &'m Jghm,
    trunk: Chain,
    image: Tower,
    text: Tower,
    /// Observations (or pairs) the reference recomputed so far: [`FastBp::reference_fallbacks`].
    fallbacks: AtomicUsize,
}

impl Clone for FastBp<'_> {
    fn clone(&self) -> Self {
        FastBp {
            model: self.model,
            trunk: self.trunk.clone(),
            image: self.image.clone(),
            text: self.text.clone(),
            fallbacks: AtomicUsize::new(self.reference_fallbacks()),
        }
    }
}

/// Every buffer of one block's pass (one per worker, reused across blocks).
struct Scratch {
    /// `trunk[k][c]`: the vector of channel `c` at the current trunk node of depth `k`.
    trunk: Vec<Vec<Block>>,
    /// `tower[k]`: the vector at the current tower node of depth `k`.
    tower: Vec<Block>,
    /// Per channel and lane, the summed exponent `E` of every rescaling so far; slot 3 collects
    /// the current tower's exponents before they go to the channels that use it.
    exponent: [[i64; LANES]; 4],
    /// Per lane, the smallest scaled maximum met (compared with [`FLOOR`]).
    smallest: [f64; LANES],
    /// Per side of the block (0: `x` or the one modality, 1: `y`), the leaves' tokens
    /// `keys[i][lane]` (leaf `i`), or, when the tower has a leaf table, the codes of each
    /// group of sibling leaves (group `g` = leaves `g m ..(g + 1) m`).
    keys: [Vec<[u32; LANES]>; 2],
    /// The reference, for observations that leave the safe range.
    reference: Workspace,
}

/// Lanes ahead whose table rows are requested before they are needed (the table lives in L2 or
/// beyond; a row read on demand stalls the lane).
const PREFETCH_AHEAD: usize = 8;

/// Asks the cache for every line of `xs` (a hint: no effect on any value).
#[inline(always)]
fn prefetch_slice<T>(xs: &[T]) {
    #[cfg(target_arch = "x86_64")]
    for line in (0..std::mem::size_of_val(xs)).step_by(64) {
        // SAFETY: `_mm_prefetch` only hints the cache; the address is inside `xs`.
        unsafe {
            use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
            _mm_prefetch::<_MM_HINT_T0>(xs.as_ptr().cast::<i8>().add(line));
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = xs;
}

/// Asks the cache for lane `l`'s table rows (a hint: no effect on any value).
#[inline(always)]
fn prefetch_rows(table: &LeafTable, codes: &[[u32; LANES]], l: usize, states: usize) {
    #[cfg(target_arch = "x86_64")]
    for (j, group) in codes.iter().enumerate() {
        let at = (j * table.codes + group[l] as usize) * states;
        if let Some(row) = table.values.get(at..at + states) {
            // SAFETY: `_mm_prefetch` only hints the cache; SSE is part of x86_64.
            unsafe {
                use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
                _mm_prefetch::<_MM_HINT_T0>(row.as_ptr().cast());
                _mm_prefetch::<_MM_HINT_T0>(row.as_ptr().add(states - 1).cast());
            }
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (table, codes, l, states);
}

/// `h(a) = Π_j μ̂_{j, t_j}(a)` per lane, `t_j` the `j`-th group of leaves below the node,
/// given by its code (`codes[j][lane]`); adds the rows' exponents.
#[inline(always)]
fn lookup_impl(table: &LeafTable, h: &mut [[f64; LANES]], exponent: &mut [i64; LANES], codes: &[[u32; LANES]]) {
    let states = h.len();
    let mut product = [0.0f64; MAX_LOOKUP_STATES];
    let product = &mut product[..states];
    for l in 0..LANES {
        prefetch_rows(table, codes, (l + PREFETCH_AHEAD) % LANES, states);
        // Each lane's product over the children in a small contiguous vector, then one
        // scattered write into the lane.
        let mut e = 0;
        for (j, group) in codes.iter().enumerate() {
            let at = j * table.codes + group[l] as usize;
            let row = &table.values[at * states..(at + 1) * states];
            if j == 0 {
                product.copy_from_slice(row);
            } else {
                product.iter_mut().zip(row).for_each(|(p, r)| *p *= r);
            }
            e += table.exponents[at];
        }
        h.iter_mut().zip(product.iter()).for_each(|(hr, p)| hr[l] = *p);
        exponent[l] += e;
    }
}

/// Absorbs a child's message into its parent: `ĥ_v(a) ← ĥ_v(a) Σ_b Ψ(a, b) ĥ_u(b)`.
#[inline(always)]
fn absorb_impl(parent: &mut [[f64; LANES]], child: &[[f64; LANES]], psi: &[f64]) {
    let states = child.len();
    for (a, out) in parent.iter_mut().enumerate() {
        let row = &psi[a * states..(a + 1) * states];
        // μ(a) = Σ_b Ψ(a, b) ĥ_u(b), lane by lane.
        let mut mu = [0.0f64; LANES];
        for (p, h) in row.iter().zip(child) {
            for l in 0..LANES {
                mu[l] += p * h[l];
            }
        }
        for l in 0..LANES {
            out[l] *= mu[l];
        }
    }
}

dispatch!(rescale, rescale_avx2, lanes::rescale_impl, (h: &mut [[f64; LANES]], exponent: Option<&mut [i64; LANES]>, smallest: &mut [f64; LANES]));
dispatch!(product, product_avx2, lanes::product_impl, (out: &mut [[f64; LANES]], a: &[[f64; LANES]], b: &[[f64; LANES]]));
dispatch!(absorb, absorb_avx2, absorb_impl, (parent: &mut [[f64; LANES]], child: &[[f64; LANES]], psi: &[f64]));
dispatch!(lookup, lookup_avx2, lookup_impl, (table: &LeafTable, h: &mut [[f64; LANES]], exponent: &mut [i64; LANES], codes: &[[u32; LANES]]));

impl<'m> FastBp<'m> {
    /// Compiles `model` (copies its matrices into the layouts the passes read, and tabulates
    /// the leaves' messages when the table fits the cache).
    pub fn new(model: &'m Jghm) -> Self {
        Self::build(model, None)
    }

    /// Like [`Self::new`], for about `batch` observations per side: skips leaf tables that
    /// would cost more to build than they save on such a batch.
    pub fn for_batch(model: &'m Jghm, batch: usize) -> Self {
        Self::build(model, Some(batch))
    }

    fn build(model: &'m Jghm, batch: Option<usize>) -> Self {
        let trunk = Chain::new(model.levels(Part::Shared), model.root_states());
        let top = trunk.states(trunk.depth());
        let per_side = batch.map(|n| n.saturating_mul(trunk.below[0]));
        FastBp {
            model,
            image: Tower::new(model.levels(Part::Image), top, per_side),
            text: Tower::new(model.levels(Part::Text), top, per_side),
            trunk,
            fallbacks: AtomicUsize::new(0),
        }
    }

    fn tower(&self, part: Part) -> &Tower {
        if part == Part::Image {
            &self.image
        } else {
            &self.text
        }
    }

    fn scratch(&self) -> Scratch {
        let widest = |c: &Chain| (0..=c.depth()).map(|k| c.states(k)).max().unwrap_or(1);
        let wide = widest(&self.trunk).max(widest(&self.image.chain)).max(widest(&self.text.chain));
        let block = || vec![[0.0; LANES]; wide];
        let tower_depth = self.image.chain.depth().max(self.text.chain.depth());
        Scratch {
            trunk: (0..=self.trunk.depth()).map(|_| (0..3).map(|_| block()).collect()).collect(),
            tower: (0..=tower_depth).map(|_| block()).collect(),
            exponent: [[0; LANES]; 4],
            smallest: [f64::INFINITY; LANES],
            keys: [vec![], vec![]],
            reference: Workspace::new(self.model),
        }
    }

    /// The tower node at depth `k` whose first leaf is token `first`: leaves `ĥ` (rescaled) in
    /// `s.tower[k]`, adding its exponents to `s.exponent[3]`.
    fn tower_up(&self, tower: &Tower, k: usize, first: usize, side: usize, s: &mut Scratch) {
        let chain = &tower.chain;
        let level = &chain.levels[k];
        let states = level.parent_states;
        if let (Some(table), true) = (&tower.table, k + 2 == chain.depth()) {
            // A grandparent of leaves: ĥ(a) = Π_j μ̂_{j, t(j)}(a), one table row per child.
            let m = tower.columns.len();
            let codes = &s.keys[side][first / m..first / m + level.children()];
            lookup(table, &mut s.tower[k][..states], &mut s.exponent[3], codes);
        } else if k + 1 == chain.depth() {
            // A parent of leaves: ĥ(a) = Π_j Ψ_{L,j}(a, t_j), read from the leaf columns.
            let h = &mut s.tower[k][..states];
            for (j, column) in tower.columns.iter().enumerate() {
                for (l, &t) in s.keys[side][first + j].iter().enumerate() {
                    let col = &column[t as usize * states..(t as usize + 1) * states];
                    if j == 0 {
                        h.iter_mut().zip(col).for_each(|(row, p)| row[l] = *p);
                    } else {
                        h.iter_mut().zip(col).for_each(|(row, p)| row[l] *= *p);
                    }
                }
            }
        } else {
            s.tower[k][..states].iter_mut().for_each(|row| *row = [1.0; LANES]);
            for (j, psi) in level.psi.iter().enumerate() {
                self.tower_up(tower, k + 1, first + j * chain.below[k + 1], side, s);
                let (up, down) = s.tower.split_at_mut(k + 1);
                absorb(&mut up[k][..states], &down[0][..level.states], psi);
            }
        }
        rescale(&mut s.tower[k][..states], Some(&mut s.exponent[3]), &mut s.smallest);
    }

    /// The trunk node at depth `k` whose first trunk leaf is `first`: leaves each channel's `ĥ`
    /// (rescaled) in `s.trunk[k][c]`.
    fn trunk_up(&self, mode: Mode, k: usize, first: usize, s: &mut Scratch) {
        let states = self.trunk.states(k);
        if k == self.trunk.depth() {
            self.trunk_leaf(mode, first, s);
            return;
        }
        let level = &self.trunk.levels[k];
        for c in 0..mode.channels() {
            s.trunk[k][c][..states].iter_mut().for_each(|row| *row = [1.0; LANES]);
        }
        for (j, psi) in level.psi.iter().enumerate() {
            self.trunk_up(mode, k + 1, first + j * self.trunk.below[k + 1], s);
            let (up, down) = s.trunk.split_at_mut(k + 1);
            for c in 0..mode.channels() {
                absorb(&mut up[k][c][..states], &down[0][c][..level.states], psi);
            }
        }
        for c in 0..mode.channels() {
            rescale(&mut s.trunk[k][c][..states], Some(&mut s.exponent[c]), &mut s.smallest);
        }
    }

    /// Trunk leaf number `t`: the towers below it give its channels.
    fn trunk_leaf(&self, mode: Mode, t: usize, s: &mut Scratch) {
        let k = self.trunk.depth();
        let states = self.trunk.states(k);
        // (modality, side of the block, channel)
        let sides: &[(Part, usize, usize)] = match mode {
            Mode::One(part) => &[(part, 0, 0)],
            Mode::Pair => &[(Part::Image, 0, 0), (Part::Text, 1, 1)],
        };
        for &(part, side, c) in sides {
            let tower = self.tower(part);
            s.exponent[3] = [0; LANES];
            self.tower_up(tower, 0, t * tower.chain.below[0], side, s);
            s.trunk[k][c][..states].copy_from_slice(&s.tower[0][..states]);
            // The tower's scale 2^E belongs to its own channel and, for a pair, to (x, y).
            let e = s.exponent[3];
            for target in [c, 2].into_iter().take(if mode == Mode::Pair { 2 } else { 1 }) {
                s.exponent[target].iter_mut().zip(e).for_each(|(acc, e)| *acc += e);
            }
        }
        if mode == Mode::Pair {
            // h_{xy}(a) = h_x(a) h_y(a): X ⟂ Y given the trunk leaf.
            let [hx, hy, hxy] = &mut s.trunk[k][..3] else { unreachable!("three channels") };
            product(&mut hxy[..states], &hx[..states], &hy[..states]);
            rescale(&mut hxy[..states], Some(&mut s.exponent[2]), &mut s.smallest);
        }
    }

    /// One block's upward pass from the root; channel vectors in `s.trunk[0]`.
    fn block_up(&self, mode: Mode, x: &[&[usize]; LANES], y: &[&[usize]; LANES], s: &mut Scratch) {
        match mode {
            Mode::One(part) => self.tower(part).keys_into(x, self.trunk.below[0], &mut s.keys[0]),
            Mode::Pair => {
                self.image.keys_into(x, self.trunk.below[0], &mut s.keys[0]);
                self.text.keys_into(y, self.trunk.below[0], &mut s.keys[1]);
            }
        }
        s.exponent = [[0; LANES]; 4];
        s.smallest = [f64::INFINITY; LANES];
        self.trunk_up(mode, 0, 0, s);
    }

    /// Per lane: `(log Σ_a π(a) ĥ(a) + E ln 2, Σ_a π(a) ĥ(a))` of channel `c` at the root.
    fn root_sum(&self, s: &Scratch, c: usize, l: usize) -> (f64, f64) {
        let h = &s.trunk[0][c];
        let sum: f64 = self.model.prior().iter().zip(h).map(|(p, row)| p * row[l]).sum();
        (sum.ln() + s.exponent[c][l] as f64 * std::f64::consts::LN_2, sum)
    }

    fn trusted(&self, s: &Scratch, l: usize, sum: f64) -> bool {
        s.smallest[l] >= FLOOR && sum >= FLOOR
    }
}

/// Gathers the observations of one block (the last block repeats its last observation).
fn block_of<O: AsRef<[usize]>>(chunk: &[O], start: usize) -> [&[usize]; LANES] {
    std::array::from_fn(|l| chunk[(start + l).min(chunk.len() - 1)].as_ref())
}

impl FastBp<'_> {
    /// Root posteriors `p(z = a | x_i) = π(a) h_root(a) / p(x_i)` and log-likelihoods
    /// `log p(x_i)` of observations of one modality (T1), written into `posteriors`
    /// (row `i` at `i * S_0..`) and `log_likelihoods`. Rows of impossible observations are NaN
    /// and their log-likelihood `-inf`. Tokens must be valid (checked by the caller).
    /// Parallel over fixed chunks of [`CHUNK`] observations; the result does not depend on the
    /// number of threads.
    pub fn root_posteriors_into<O: AsRef<[usize]> + Sync>(
        &self,
        part: Part,
        observations: &[O],
        posteriors: &mut [f64],
        log_likelihoods: &mut [f64],
    ) {
        let s0 = self.model.root_states();
        assert_eq!(posteriors.len(), observations.len() * s0, "one posterior row per observation");
        assert_eq!(log_likelihoods.len(), observations.len(), "one log-likelihood per observation");
        observations
            .par_chunks(CHUNK)
            .zip(posteriors.par_chunks_mut(CHUNK * s0))
            .zip(log_likelihoods.par_chunks_mut(CHUNK))
            .for_each_init(
                || self.scratch(),
                |s, ((obs, post), ll)| {
                    for start in (0..obs.len()).step_by(LANES) {
                        let block = block_of(obs, start);
                        self.block_up(Mode::One(part), &block, &block, s);
                        for (l, x) in block.iter().enumerate().take(obs.len() - start) {
                            let i = start + l;
                            let row = &mut post[i * s0..(i + 1) * s0];
                            ll[i] = self.posterior_lane(part, s, l, x, row);
                        }
                    }
                },
            );
    }

    /// Lane `l`'s posterior into `row`; returns its log-likelihood.
    fn posterior_lane(&self, part: Part, s: &mut Scratch, l: usize, obs: &[usize], row: &mut [f64]) -> f64 {
        let (log_likelihood, sum) = self.root_sum(s, 0, l);
        if self.trusted(s, l, sum) {
            // p(z = a | x) = π(a) ĥ(a) / Σ_a' π(a') ĥ(a').
            for ((r, p), h) in row.iter_mut().zip(self.model.prior()).zip(&s.trunk[0][0]) {
                *r = p * h[l] / sum;
            }
            return log_likelihood;
        }
        self.fallbacks.fetch_add(1, Ordering::Relaxed);
        let tokens = one_side(part, obs);
        let log_likelihood = s.reference.upward(self.model, &tokens);
        if log_likelihood > f64::NEG_INFINITY {
            s.reference.root_posterior_into(self.model, row);
        } else {
            row.fill(f64::NAN);
        }
        log_likelihood
    }

    /// [`Self::root_posteriors_into`], one `Vec` per observation.
    pub fn root_posteriors(&self, part: Part, observations: &[impl AsRef<[usize]> + Sync]) -> Vec<Vec<f64>> {
        let s0 = self.model.root_states();
        let mut post = vec![0.0; observations.len() * s0];
        let mut ll = vec![0.0; observations.len()];
        self.root_posteriors_into(part, observations, &mut post, &mut ll);
        post.chunks(s0).map(<[f64]>::to_vec).collect()
    }

    /// `PMI(x_i, y_i) = log p(x_i, y_i) - log p(x_i) - log p(y_i)` with its three parts, for
    /// pairs `(images[i], texts[i])` (T1), into `out`. `pmi` is NaN when `p(x_i, y_i) = 0`.
    /// Tokens must be valid. Parallel over fixed chunks; independent of the thread count.
    pub fn pmi_into<O: AsRef<[usize]> + Sync>(&self, images: &[O], texts: &[O], out: &mut [PmiParts]) {
        assert_eq!(images.len(), texts.len(), "one text per image");
        assert_eq!(out.len(), images.len(), "one result per pair");
        images.par_chunks(CHUNK).zip(texts.par_chunks(CHUNK)).zip(out.par_chunks_mut(CHUNK)).for_each_init(
            || self.scratch(),
            |s, ((xs, ys), out)| {
                for start in (0..xs.len()).step_by(LANES) {
                    let (x, y) = (block_of(xs, start), block_of(ys, start));
                    self.block_up(Mode::Pair, &x, &y, s);
                    for l in 0..LANES.min(xs.len() - start) {
                        out[start + l] = self.pmi_lane(s, l, x[l], y[l]);
                    }
                }
            },
        );
    }

    /// `log p(x_i, y_i)` of pairs (T1; `-inf` for impossible pairs), into `out`: the pair pass
    /// of [`Self::pmi_into`] (`X ⟂ Y` given the trunk leaves, the towers' vectors multiplied
    /// there), reading only the joint channel. Tokens must be valid. Parallel over fixed chunks;
    /// independent of the thread count.
    pub fn log_pxy_into<O: AsRef<[usize]> + Sync>(&self, images: &[O], texts: &[O], out: &mut [f64]) {
        assert_eq!(images.len(), texts.len(), "one text per image");
        assert_eq!(out.len(), images.len(), "one result per pair");
        images.par_chunks(CHUNK).zip(texts.par_chunks(CHUNK)).zip(out.par_chunks_mut(CHUNK)).for_each_init(
            || self.scratch(),
            |s, ((xs, ys), out)| {
                for start in (0..xs.len()).step_by(LANES) {
                    let (x, y) = (block_of(xs, start), block_of(ys, start));
                    self.block_up(Mode::Pair, &x, &y, s);
                    for l in 0..LANES.min(xs.len() - start) {
                        let (log_pxy, sum) = self.root_sum(s, 2, l);
                        out[start + l] = if self.trusted(s, l, sum) {
                            log_pxy
                        } else {
                            self.fallbacks.fetch_add(1, Ordering::Relaxed);
                            s.reference.upward(self.model, &Tokens { image: Some(x[l]), text: Some(y[l]) })
                        };
                    }
                }
            },
        );
    }

    fn pmi_lane(&self, s: &mut Scratch, l: usize, x: &[usize], y: &[usize]) -> PmiParts {
        let (log_px, sx) = self.root_sum(s, 0, l);
        let (log_py, sy) = self.root_sum(s, 1, l);
        let (log_pxy, sxy) = self.root_sum(s, 2, l);
        let parts = if self.trusted(s, l, sx.min(sy).min(sxy)) {
            (log_pxy, log_px, log_py)
        } else {
            self.fallbacks.fetch_add(1, Ordering::Relaxed);
            let up = |tokens: Tokens| s.reference.upward(self.model, &tokens);
            let mut up = up;
            (
                up(Tokens { image: Some(x), text: Some(y) }),
                up(Tokens { image: Some(x), text: None }),
                up(Tokens { image: None, text: Some(y) }),
            )
        };
        let (log_pxy, log_px, log_py) = parts;
        let pmi = if log_pxy == f64::NEG_INFINITY { f64::NAN } else { log_pxy - log_px - log_py };
        PmiParts { pmi, log_pxy, log_px, log_py }
    }
}

fn one_side(part: Part, obs: &[usize]) -> Tokens<'_> {
    if part == Part::Image {
        Tokens { image: Some(obs), text: None }
    } else {
        Tokens { image: None, text: Some(obs) }
    }
}

impl FastBp<'_> {
    /// Whether the compiled `part` tower tabulates the messages of its parents of leaves
    /// (`LeafTable`): it does when the tower has depth at least 2, the alphabet above the
    /// table has at most 64 states, the table holds at most `TABLE_BUDGET = 2^19` numbers
    /// (`V^m` leaf codes × parents per grandparent × states of the grandparent), every entry stays
    /// above [`FLOOR`], and (for [`FastBp::for_batch`]) the batch uses each row once on average.
    /// A diagnostic for benchmarks and tests: the answers are the same either way (to
    /// round-off, T1); only the cost differs.
    pub fn has_leaf_table(&self, part: Part) -> bool {
        self.tower(part).table.is_some()
    }

    /// How many observations (or pairs) the log-domain reference has recomputed since this
    /// `FastBp` was built, summed over every call and thread: those that left the safe range
    /// of the probability domain (a scaled maximum or a root sum below [`FLOOR`]: impossible
    /// evidence, or products of near-zero transition entries). On a well-conditioned model it
    /// stays 0; a fast path that fell back everywhere would give the same answers (T1) at the
    /// reference's cost, and only this count shows it. A diagnostic for tests and benchmarks.
    pub fn reference_fallbacks(&self) -> usize {
        self.fallbacks.load(Ordering::Relaxed)
    }
}
