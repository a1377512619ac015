//! The model file format (the book, "The JGHM"): validation that names the place, the tree layout, and the
//! standard random family.

use jghm::model::{Jghm, ModelError, Part};
use jghm::RandomSpec;

const TINY: &str = r#"{"prior":[0.5,0.5],
    "image":[{"transitions":[[[0.9,0.1],[0.2,0.8]],[[0.5,0.5],[0.5,0.5]]]}],
    "text":[{"transitions":[[[0.6,0.4],[0.3,0.7]]]}]}"#;

fn err(json: &str) -> ModelError {
    Jghm::from_json(json).expect_err("the model must be rejected")
}

#[test]
fn a_valid_file_round_trips() {
    let m = Jghm::from_json(TINY).unwrap();
    assert_eq!((m.image_len(), m.text_len(), m.image_vocab(), m.text_vocab()), (2, 1, 2, 2));
    let again = Jghm::from_json(&m.to_json()).unwrap();
    assert_eq!(again.to_json(), m.to_json());
}

#[test]
fn errors_name_the_place() {
    let cases = [
        (TINY.replace("0.9,0.1", "0.9,0.2"), "image level 0 child 0 row 0 sums to"),
        (TINY.replace("0.9,0.1", "1.1,-0.1"), "image level 0 child 0 row 0 entry 1 is -0.1"),
        (TINY.replace("[0.3,0.7]", "[0.3,0.7,0.0]"), "text level 0 child 0 row 1: has 3 entries"),
        (
            TINY.replace("[[0.6,0.4],[0.3,0.7]]", "[[0.6,0.4]]"),
            "text level 0 child 0: has 1 rows, but the parent level has 2",
        ),
        (TINY.replace("\"prior\":[0.5,0.5]", "\"prior\":[0.5,0.6]"), "prior sums to"),
        (TINY.replace("\"prior\":[0.5,0.5]", "\"prior\":[]"), "prior is empty"),
        (
            TINY.replace("\"text\":[{\"transitions\":[[[0.6,0.4],[0.3,0.7]]]}]", "\"text\":[]"),
            "text tower has no levels",
        ),
        (
            TINY.replace("\"text\":[{\"transitions\":[[[0.6,0.4],[0.3,0.7]]]}]", "\"text\":[{\"transitions\":[]}]"),
            "text level 0 has no transition matrices",
        ),
        // Rows but no columns: the matrix is empty, not a row that sums to 0.
        (TINY.replace("[[0.9,0.1],[0.2,0.8]]", "[[],[]]"), "image level 0 child 0: matrix has no rows or no columns"),
        (TINY.replace("[[0.9,0.1],[0.2,0.8]]", "[]"), "image level 0 child 0: matrix has no rows or no columns"),
        (TINY.replace("\"prior\"", "\"priors\""), "unknown field `priors`"),
        (TINY.replace("0.9,0.1", "0.9,\"x\""), "not valid JSON"),
        ("{\"prior\": [1.0]".to_string(), "not valid JSON"),
        (TINY.replace("0.9,0.1", "1e400,0.1"), "not valid JSON"),
    ];
    for (json, expected) in cases {
        let message = err(&json).to_string();
        assert!(message.contains(expected), "expected '{expected}' in '{message}'");
        assert!(!message.contains('\n') || message.starts_with("model file"), "one line: {message}");
    }
}

#[test]
fn dimensions_must_chain_through_the_trunk() {
    let json = r#"{"prior":[0.5,0.5],
        "shared":[{"transitions":[[[0.2,0.3,0.5],[0.1,0.1,0.8]]]}],
        "image":[{"transitions":[[[0.9,0.1],[0.2,0.8]]]}],
        "text":[{"transitions":[[[0.6,0.4],[0.3,0.7],[0.5,0.5]]]}]}"#;
    let message = err(json).to_string();
    assert!(message.contains("image level 0 child 0: has 2 rows, but the parent level has 3"), "{message}");
}

#[test]
fn rows_within_tolerance_are_accepted_and_renormalised() {
    let m = Jghm::from_json(&TINY.replace("0.9,0.1", "0.9,0.1000000005")).unwrap();
    let row_sum: f64 = m.levels(Part::Image)[0].transitions[0].row(0).sum();
    assert!((row_sum - 1.0).abs() < 1e-15);
    // The prior too: `p / Σ p`, each entry scaled by the same sum (kills `/ -> *`, `/ -> %`).
    let m = Jghm::from_json(&TINY.replace("\"prior\":[0.5,0.5]", "\"prior\":[0.25,0.7500000005]")).unwrap();
    let sum = 1.0000000005;
    assert!((m.prior().iter().sum::<f64>() - 1.0).abs() < 1e-15, "prior {:?}", m.prior());
    assert!((m.prior()[0] - 0.25 / sum).abs() < 1e-16 && (m.prior()[1] - 0.7500000005 / sum).abs() < 1e-16);
}

/// With a trunk, x concatenates the image subtrees of the trunk leaves in trunk order.
#[test]
fn leaves_are_ordered_by_trunk_leaf() {
    let spec = RandomSpec { shared_depth: 1, shared_children: 2, ..RandomSpec::symmetric(2, 3, 1, 1) };
    let m = spec.build().unwrap();
    let tree = m.tree();
    assert_eq!(tree.trunk_leaves.len(), 2);
    assert_eq!(m.image_len(), 6);
    for (i, &u) in tree.image_leaves.iter().enumerate() {
        assert_eq!(tree.nodes[u].parent, Some(tree.trunk_leaves[i / 3]), "image leaf {i}");
        assert_eq!(tree.nodes[u].transition.unwrap().position, i % 3);
    }
    // Pre-order: every parent comes before its children, and a depth-first walk from the root
    // (children left to right) visits the ids 0, 1, 2, ... in turn, so each subtree is a range
    // of ids (kills `reorder_preorder -> ()`: construction order puts both towers after the trunk).
    assert!(tree.nodes.iter().enumerate().all(|(u, n)| n.parent.is_none_or(|p| p < u)));
    let mut walk = vec![];
    let mut stack = vec![0];
    while let Some(u) = stack.pop() {
        walk.push(u);
        stack.extend(tree.nodes[u].children.iter().rev());
    }
    assert_eq!(walk, (0..tree.nodes.len()).collect::<Vec<_>>());
}

/// The per-modality accessors read the right tower: `leaves_of`, `len_of`, `vocab_of` of the
/// image are the image tower's, of the text the text tower's (the book, "The JGHM": `x` and `y` are the
/// two towers' leaves); `has_trunk` says whether a shared trunk sits between root and towers.
/// Kills `leaves_of -> &[]`, the deleted `Part::Image` arm and `has_trunk -> true/false`.
#[test]
fn modality_accessors_read_their_own_tower() {
    let spec = RandomSpec { text_children: 2, text_depth: 1, vocab: 5, ..RandomSpec::symmetric(3, 3, 2, 8) };
    let m = spec.build().unwrap();
    let tree = m.tree();
    assert_eq!((tree.image_leaves.len(), tree.text_leaves.len()), (9, 2));
    assert_eq!(m.leaves_of(Part::Image), &tree.image_leaves[..]);
    assert_eq!(m.leaves_of(Part::Text), &tree.text_leaves[..]);
    assert_eq!((m.len_of(Part::Image), m.len_of(Part::Text)), (9, 2));
    assert_eq!((m.vocab_of(Part::Image), m.vocab_of(Part::Text)), (5, 5));
    assert!(!m.has_trunk());
    let trunk = RandomSpec { shared_depth: 1, shared_children: 2, ..spec }.build().unwrap();
    assert!(trunk.has_trunk());
    assert_eq!(trunk.leaves_of(Part::Image).len(), 18);
}

/// The draws depend on the seed only: Ψ_ε = (1 - ε) P + ε R is affine in ε with the same P, R.
#[test]
fn random_family_shares_draws_across_flips() {
    let psi = |flip: f64| {
        let m = RandomSpec { flip, ..RandomSpec::symmetric(4, 2, 2, 7) }.build().unwrap();
        m.levels(Part::Image)[1].transitions[1].clone()
    };
    let (p0, p1, p_half) = (psi(0.0), psi(1.0), psi(0.5));
    // ε = 0 is a permutation matrix.
    for r in 0..4 {
        assert_eq!(p0.row(r).iter().filter(|&&v| v == 1.0).count(), 1);
    }
    let mid = (&p0 + &p1) * 0.5;
    assert!((mid - p_half).abs().max() < 1e-15);
    // A different seed draws a different model.
    let other = RandomSpec { flip: 0.5, ..RandomSpec::symmetric(4, 2, 2, 8) }.build().unwrap();
    assert_ne!(other.levels(Part::Image)[1].transitions[1], psi(0.5));
}

#[test]
fn random_family_rejects_nonsense() {
    let bad = [
        RandomSpec { flip: 1.5, ..RandomSpec::symmetric(3, 2, 2, 1) },
        RandomSpec { scale: f64::NAN, ..RandomSpec::symmetric(3, 2, 2, 1) },
        RandomSpec::symmetric(3, 10, 10, 1),
        // 4096² entries per matrix, 64 levels: far too large to allocate.
        RandomSpec::symmetric(4096, 1, 64, 1),
    ];
    for spec in bad {
        assert!(matches!(spec.build(), Err(ModelError::Spec(_))), "{spec:?}");
    }
}

/// Each field is checked on its own: one bad field among good ones is refused, whichever it
/// is, and the edges of the flip and the scale are accepted.
#[test]
fn random_family_checks_each_field() {
    let good = RandomSpec { shared_depth: 1, ..RandomSpec::symmetric(3, 2, 2, 1) };
    let bad = [
        RandomSpec { states: 0, ..good.clone() },
        RandomSpec { vocab: 0, ..good.clone() },
        RandomSpec { children: 0, ..good.clone() },
        RandomSpec { text_children: 0, ..good.clone() },
        RandomSpec { shared_children: 0, ..good.clone() },
        RandomSpec { depth: 0, ..good.clone() },
        RandomSpec { text_depth: 0, ..good.clone() },
        RandomSpec { flip: -0.1, ..good.clone() },
        RandomSpec { flip: f64::NAN, ..good.clone() },
        RandomSpec { scale: -1.0, ..good.clone() },
        RandomSpec { scale: f64::INFINITY, ..good.clone() },
    ];
    for spec in bad {
        assert!(matches!(spec.build(), Err(ModelError::Spec(_))), "{spec:?}");
    }
    for spec in [
        RandomSpec { flip: 0.0, scale: 0.0, ..good.clone() },
        RandomSpec { flip: 1.0, ..good.clone() },
        RandomSpec { shared_depth: 0, ..good },
    ] {
        assert!(spec.build().is_ok(), "{spec:?}");
    }
}

/// `R` is a row-wise softmax of `s·N`: at flip 1 (`Ψ = R`) its rows sum to 1, centred
/// log-rows scale linearly with `s` (the same normals for the same seed), and `s = 0` gives the
/// uniform rows `1/V`; at flip 0 each row of the towers' last level (`V ≠ S`) holds one 1.
#[test]
fn random_family_noise_is_a_softmax_of_scaled_normals() {
    let spec = |scale: f64, flip: f64| RandomSpec { scale, flip, vocab: 5, ..RandomSpec::symmetric(3, 2, 2, 21) };
    let last = |scale: f64, flip: f64| spec(scale, flip).build().unwrap().levels(Part::Text)[1].transitions[0].clone();
    let centred_log_rows = |m: &nalgebra::DMatrix<f64>| {
        let logs = m.map(f64::ln);
        let means = logs.column_mean();
        nalgebra::DMatrix::from_fn(m.nrows(), m.ncols(), |a, b| logs[(a, b)] - means[a])
    };
    let (r1, r2) = (last(1.5, 1.0), last(3.0, 1.0));
    for r in [&r1, &r2] {
        for a in 0..3 {
            assert!((r.row(a).sum() - 1.0).abs() < 1e-15, "row {a} sums to {}", r.row(a).sum());
        }
    }
    let (c1, c2) = (centred_log_rows(&r1), centred_log_rows(&r2));
    assert!(c1.abs().max() > 0.1, "the noise is not flat");
    assert!((c2 - c1 * 2.0).abs().max() < 1e-12, "doubling s doubles the logits");
    assert!(last(0.0, 1.0).iter().all(|&v| (v - 0.2).abs() < 1e-15), "s = 0: uniform over V = 5");
    let p = last(1.5, 0.0);
    for a in 0..3 {
        assert_eq!(p.row(a).iter().filter(|&&v| v == 1.0).count(), 1, "row {a}: {p}");
        assert_eq!(p.row(a).iter().filter(|&&v| v == 0.0).count(), 4, "row {a}: {p}");
    }
}
