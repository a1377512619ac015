//! The tree-aware start of the transformer's learned positional embedding
//! (`"position_init": "tree"`, `Transformer::with_tree_positions`): which groups each position
//! belongs to, the correlation structure it starts with, and that nothing else changes.

use jghm::learn::{tree_position_groups, Encoder, PositionInit, TrainConfig, Transformer};
use jghm::model::{Jghm, Part};
use jghm::random_family::RandomSpec;
use jghm::rng;

/// Both towers `m` children per level, `depth` levels below the root.
fn tower(m: usize, depth: usize) -> Jghm {
    RandomSpec::symmetric(3, m, depth, 1).build().unwrap()
}

/// In a regular tower the leaves are numbered left to right, so positions `s` and `t` share
/// their level-`k` ancestor iff `s / m^{L−k} = t / m^{L−k}`: they share exactly that many
/// groups, and every position has `L` groups (its ancestors below the root and itself).
#[test]
fn positions_share_one_group_per_common_ancestor() {
    for (m, depth) in [(2, 3), (3, 2), (3, 4)] {
        let groups = tree_position_groups(&tower(m, depth), Part::Image);
        let n = m.pow(depth as u32);
        assert_eq!(groups.len(), n);
        for s in 0..n {
            assert_eq!(groups[s].len(), depth);
            for t in 0..n {
                let common =
                    (1..=depth).filter(|&k| s / m.pow((depth - k) as u32) == t / m.pow((depth - k) as u32)).count();
                let shared = groups[s].iter().filter(|g| groups[t].contains(g)).count();
                assert_eq!(shared, common, "m={m} L={depth} s={s} t={t}");
            }
        }
        // Dense numbering: one group per non-root node of the tower.
        let count = groups.iter().flatten().max().unwrap() + 1;
        assert_eq!(count, (1..=depth).map(|k| m.pow(k as u32)).sum::<usize>());
    }
}

fn start(cfg: &TrainConfig, model: &Jghm) -> (Vec<f64>, Transformer) {
    let net = cfg.check(model).unwrap().transformer(model, Part::Image);
    let w = Encoder::<f64>::init(&net, &mut rng::stream(7, 0));
    (w, net)
}

fn correlation(a: &[f64], b: &[f64]) -> f64 {
    let dot = |x: &[f64], y: &[f64]| x.iter().zip(y).map(|(p, q)| p * q).sum::<f64>();
    dot(a, b) / (dot(a, a) * dot(b, b)).sqrt()
}

/// With width 1024, the empirical correlation over coordinates of `wpe[s]` and `wpe[t]` is
/// within about 3/√1024 ≈ 0.09 of its expectation `shared(s, t) / L`; every coordinate has
/// variance 0.02² as with the default start; every other parameter is drawn as by the default.
#[test]
fn tree_start_correlates_positions_by_shared_ancestors_and_changes_nothing_else() {
    let model = tower(3, 3);
    let mut cfg = TrainConfig { width: 1024, heads: 4, ..Default::default() };
    let (normal, net) = start(&cfg, &model);
    cfg.position_init = PositionInit::Tree;
    let (tree, _) = start(&cfg, &model);
    let (v, c, t) = (net.shape.vocab, net.shape.width, net.shape.len);
    let wpe = v * c..(v + t) * c;
    for i in (0..normal.len()).filter(|i| !wpe.contains(i)) {
        assert_eq!(normal[i], tree[i], "parameter {i} outside wpe changed");
    }
    let row = |t: usize| &tree[wpe.start + t * c..wpe.start + (t + 1) * c];
    let groups = tree_position_groups(&model, Part::Image);
    for s in [0, 4, 13, 26] {
        for u in 0..t {
            let shared = groups[s].iter().filter(|g| groups[u].contains(g)).count() as f64;
            let r = correlation(row(s), row(u));
            assert!((r - shared / 3.0).abs() < 0.12, "s={s} u={u}: corr {r:.3}, expected {:.3}", shared / 3.0);
        }
    }
    let all = &tree[wpe];
    let var = all.iter().map(|x| x * x).sum::<f64>() / all.len() as f64;
    assert!((var.sqrt() - 0.02).abs() < 0.002, "sd {:.4}", var.sqrt());
}
