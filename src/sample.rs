//! Exact ancestral sampling of a JGHM: `z ~ π`, then every node from its parent's row of `Ψ_u`.
//!
//! Seeded and portable ([`crate::rng`]). Many samples are drawn in fixed chunks of
//! [`CHUNK`] pairs, chunk `c` from stream `c` of the seed, in parallel: the output is the same
//! whatever the number of threads. Conditional samples given evidence are in [`crate::bp`].

use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

use crate::model::{Jghm, TransitionId};
use crate::rng::{self, Rng};

/// Pairs per chunk (one random stream each).
pub const CHUNK: usize = 1024;

/// One sampled pair `(x, y)`, optionally with the state of every node (by node id).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pair {
    pub image: Vec<usize>,
    pub text: Vec<usize>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub hidden: Option<Vec<usize>>,
}

/// Ancestral sampler with each transition's rows laid out contiguously.
pub struct Sampler<'m> {
    model: &'m Jghm,
    /// Row-major copies of the transition matrices.
    tables: Vec<Vec<f64>>,
    /// For node `u ≥ 1`, the index of its table.
    table_of: Vec<usize>,
}

impl<'m> Sampler<'m> {
    pub fn new(model: &'m Jghm) -> Self {
        let mut index: HashMap<TransitionId, usize> = HashMap::new();
        let mut tables = vec![];
        let table_of = model
            .tree()
            .nodes
            .iter()
            .map(|node| match node.transition {
                None => usize::MAX,
                Some(id) => *index.entry(id).or_insert_with(|| {
                    let psi = model.transition(id);
                    tables
                        .push((0..psi.nrows()).flat_map(|a| psi.row(a).iter().copied().collect::<Vec<_>>()).collect());
                    tables.len() - 1
                }),
            })
            .collect();
        Sampler { model, tables, table_of }
    }

    /// Draws the state of every node, in node order, into `states`: `z ~ π`, then
    /// [`Sampler::below_root_into`].
    pub fn joint_into(&self, rng: &mut Rng, states: &mut [usize]) {
        let root = rng::categorical(rng, self.model.prior());
        self.below_root_into(rng, root, states);
    }

    /// Draws every node below a *fixed* root state `z = root`, from the root's children down:
    /// an exact draw of `p(hidden states, x, y | z = root)`, whatever `π(root)` (no rejection,
    /// so a root state of tiny prior costs no more than any other). `states[0] = root`.
    pub fn below_root_into(&self, rng: &mut Rng, root: usize, states: &mut [usize]) {
        let tree = self.model.tree();
        states[0] = root;
        for (u, node) in tree.nodes.iter().enumerate().skip(1) {
            let s = node.states;
            let a = states[node.parent.expect("non-root")];
            states[u] = rng::categorical(rng, &self.tables[self.table_of[u]][a * s..(a + 1) * s]);
        }
    }

    /// One pair `(x, y)`, with the hidden states when asked.
    pub fn pair(&self, rng: &mut Rng, with_hidden: bool) -> Pair {
        let mut states = vec![0; self.model.tree().nodes.len()];
        self.joint_into(rng, &mut states);
        self.pair_of(states, with_hidden)
    }

    /// One pair `(x, y) ~ p(x, y | z = root)` ([`Sampler::below_root_into`]), with the hidden
    /// states when asked.
    pub fn pair_given_root(&self, rng: &mut Rng, root: usize, with_hidden: bool) -> Pair {
        let mut states = vec![0; self.model.tree().nodes.len()];
        self.below_root_into(rng, root, &mut states);
        self.pair_of(states, with_hidden)
    }

    fn pair_of(&self, states: Vec<usize>, with_hidden: bool) -> Pair {
        let tree = self.model.tree();
        Pair {
            image: tree.image_leaves.iter().map(|&u| states[u]).collect(),
            text: tree.text_leaves.iter().map(|&u| states[u]).collect(),
            hidden: with_hidden.then_some(states),
        }
    }
}

/// `n` i.i.d. pairs from `p(x, y)`, reproducible from `seed` whatever the thread count.
pub fn sample_pairs(model: &Jghm, n: usize, seed: u64, with_hidden: bool) -> Vec<Pair> {
    let sampler = Sampler::new(model);
    let chunks = n.div_ceil(CHUNK);
    (0..chunks)
        .into_par_iter()
        .flat_map_iter(|c| {
            let mut rng = rng::stream(seed, c as u64);
            let len = CHUNK.min(n - c * CHUNK);
            (0..len).map(|_| sampler.pair(&mut rng, with_hidden)).collect::<Vec<_>>()
        })
        .collect()
}
