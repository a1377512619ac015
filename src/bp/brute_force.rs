//! The slow, obvious oracle beside BP (T1): enumerate every joint state of the tree.
//!
//! `p(evidence) = Σ_{z over all nodes} π(z_root) Π_{u ≠ root} Ψ_u(z_pa(u), z_u) Π_{leaves} λ_u(z_u)`,
//! and `p(z_u = b | evidence)` is the same sum restricted to `z_u = b`, divided by it. Observed
//! leaves are fixed to their token (every other value has `λ = 0`); every other node runs over
//! its whole alphabet. Probability domain, no shared code with `bp` beyond the model's tree:
//! it is an independent check, meant for models with at most [`MAX_CONFIGURATIONS`] terms.

use crate::bp::{LeafView, Observation};
use crate::model::Jghm;

/// Largest number of joint configurations the oracle agrees to enumerate.
pub const MAX_CONFIGURATIONS: f64 = 5e6;

/// Exact answers by enumeration.
#[derive(Clone, Debug)]
pub struct Enumerated {
    /// `log p(evidence)`.
    pub log_likelihood: f64,
    /// `p(z_u = · | evidence)` for every node id (all zero if the evidence is impossible).
    pub marginals: Vec<Vec<f64>>,
}

/// Number of joint configurations the enumeration of this evidence visits.
pub fn configurations(model: &Jghm, obs: &impl Observation) -> f64 {
    let tree = model.tree();
    (0..tree.nodes.len()).map(|u| free_values(model, obs, u).len() as f64).product()
}

/// The values node `u` runs over: the observed token, or its whole alphabet.
fn free_values(model: &Jghm, obs: &impl Observation, u: usize) -> Vec<usize> {
    let tree = model.tree();
    match tree.leaf_slot[u].map(|(part, i)| obs.leaf(part, i)) {
        Some(LeafView::Observed(t)) => vec![t],
        _ => (0..tree.nodes[u].states).collect(),
    }
}

/// Enumerates all configurations; `None` when there are more than [`MAX_CONFIGURATIONS`].
pub fn enumerate(model: &Jghm, obs: &impl Observation) -> Option<Enumerated> {
    if configurations(model, obs) > MAX_CONFIGURATIONS {
        return None;
    }
    let tree = model.tree();
    let n = tree.nodes.len();
    let values: Vec<Vec<usize>> = (0..n).map(|u| free_values(model, obs, u)).collect();
    let mut marginals: Vec<Vec<f64>> = tree.nodes.iter().map(|node| vec![0.0; node.states]).collect();
    let mut total = 0.0;
    // An odometer over the configurations, in node order.
    let mut digit = vec![0usize; n];
    'configs: loop {
        let z: Vec<usize> = (0..n).map(|u| values[u][digit[u]]).collect();
        let w = weight(model, obs, &z);
        total += w;
        for u in 0..n {
            marginals[u][z[u]] += w;
        }
        for u in (0..n).rev() {
            digit[u] += 1;
            if digit[u] < values[u].len() {
                continue 'configs;
            }
            digit[u] = 0;
        }
        break;
    }
    if total > 0.0 {
        marginals.iter_mut().flatten().for_each(|m| *m /= total);
    }
    Some(Enumerated { log_likelihood: total.ln(), marginals })
}

/// `π(z_root) Π Ψ_u(z_pa(u), z_u) Π λ_u(z_u)` for one joint configuration `z`.
fn weight(model: &Jghm, obs: &impl Observation, z: &[usize]) -> f64 {
    let tree = model.tree();
    let mut w = model.prior()[z[0]];
    for (u, node) in tree.nodes.iter().enumerate().skip(1) {
        let psi = model.transition(node.transition.expect("non-root"));
        w *= psi[(z[node.parent.expect("non-root")], z[u])];
        if let Some(LeafView::Soft(lambda)) = tree.leaf_slot[u].map(|(part, i)| obs.leaf(part, i)) {
            w *= lambda[z[u]];
        }
    }
    w
}
