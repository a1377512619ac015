//! T7: in the two-tower JGHM the root posterior `f*(x) = p(z | x)` is sufficient for `Y`,
//! `PMI(x, y) = log Σ_z f*(x)_z g*(y)_z / π(z)`, and (rows of `P_{Y|Z}` linearly independent)
//! every sufficient statistic determines `f*`. With a trunk: the same with the joint posterior
//! of the trunk leaves (`separator-posterior`). Proof: `proofs/T7-minimal-sufficient-statistic.md`.

mod common;
mod tiny;

use jghm::info::Enumeration;
use jghm::model::{Jghm, Level, Part};
use jghm::score::{LogWeighted, Score};
use jghm::sufficiency::{Classes, Evaluator, Gap, Statistic};
use nalgebra::DMatrix;
use proptest::prelude::*;
use tiny::*;

proptest! {
    #![proptest_config(config(24))]

    /// The log-weighted inner product of the posteriors equals the PMI of three BP passes, and
    /// the enumeration's PMI equals brute-force enumeration of all hidden states.
    /// Deep towers are kept only when the brute-force oracle visits at most 10⁶ configurations
    /// in all (see `brute_joint_work`).
    #[test]
    fn t7_log_weighted_inner_product_is_pmi(model in arb_shallow_or_deep_model(16.0)
        .prop_filter("brute-force oracle affordable", |m| brute_joint_work(m) <= 1e6)) {
        let t7 = LogWeighted::new(&model).unwrap();
        let en = Enumeration::new(&model).unwrap();
        let (xs, ys, p) = brute_joint(&model);
        let ny = ys.len();
        let px: Vec<f64> = (0..xs.len()).map(|i| (0..ny).map(|j| p[i * ny + j]).sum()).collect();
        let py: Vec<f64> = (0..ny).map(|j| (0..xs.len()).map(|i| p[i * ny + j]).sum()).collect();
        for (i, x) in en.image.tokens.iter().enumerate() {
            for (j, y) in en.text.tokens.iter().enumerate() {
                let bp_pmi = jghm::bp::pmi(&model, x, y).unwrap().pmi;
                prop_assert!((t7.score(x, y) - bp_pmi).abs() < 1e-10, "T7 score {} vs BP PMI {}", t7.score(x, y), bp_pmi);
                prop_assert!((en.pmi(i, j) - bp_pmi).abs() < 1e-10);
                let (bi, bj) = (index_of(&xs, x), index_of(&ys, y));
                let brute = (p[bi * ny + bj] / (px[bi] * py[bj])).ln();
                prop_assert!((en.pmi(i, j) - brute).abs() < 1e-10, "enumeration {} vs brute force {}", en.pmi(i, j), brute);
            }
        }
    }

    /// The separator's posterior (root posterior without trunk, trunk leaves' joint posterior
    /// with one) is sufficient for the other side, on both sides: `Suff = 0` to 1e-10.
    #[test]
    fn t7_separator_posterior_is_sufficient(model in arb_shallow_or_deep_model(64.0)) {
        let en = Enumeration::new(&model).unwrap();
        for side in [Part::Image, Part::Text] {
            let mut stats = vec![Statistic::SeparatorPosterior];
            if !model.has_trunk() {
                stats.push(Statistic::RootPosterior);
            }
            for st in stats {
                let classes = Evaluator::new(&model, side, st).unwrap().classes(en.side(side));
                let s = Gap::new(&en, side, classes).all();
                prop_assert!(s.kl_form.abs() < 1e-10 && s.information_form.abs() < 1e-10, "{st} on {side}: {s:?}");
            }
        }
    }

    /// Minimality: when `w ↦ P_{C|W=w}` has linearly independent rows (smallest singular value
    /// `σ > 0`), merging two classes `i, j` of `f*` loses information: by Pinsker and
    /// `‖r_i - r_j‖₂ ≥ σ ‖f_i - f_j‖₂` (`r = P_{C|T}` rows), the gap is at least
    /// `p_i p_j / (2 (p_i + p_j)) σ² ‖f_i - f_j‖²  > 0`. So every sufficient statistic separates
    /// what `f*` separates.
    #[test]
    fn t7_minimality_with_independent_rows(model in arb_shallow_or_deep_model(64.0), pick in any::<u64>()) {
        let en = Enumeration::new(&model).unwrap();
        for side in [Part::Image, Part::Text] {
            let rows = conditional_rows(&en, other(side));
            let sigma = smallest_singular_value(&rows);
            prop_assume!(sigma > 1e-3);
            let classes = Evaluator::new(&model, side, Statistic::SeparatorPosterior).unwrap().classes(en.side(side));
            prop_assume!(classes.count >= 2);
            let fstar = Gap::new(&en, side, classes.clone());
            let nw = en.cut.size();
            for k in 0..4u64 {
                let i = ((pick.wrapping_add(k * 7919)) % classes.count as u64) as usize;
                let j = (i + 1 + (k as usize)) % classes.count;
                if i == j { continue; }
                let (fi, fj) = (&fstar.wt[i * nw..(i + 1) * nw], &fstar.wt[j * nw..(j + 1) * nw]);
                let dist2: f64 = fi.iter().zip(fj).map(|(a, b)| (a - b).powi(2)).sum();
                let (pi, pj) = (fstar.pt[i], fstar.pt[j]);
                let bound = pi * pj / (2.0 * (pi + pj)) * sigma * sigma * dist2;
                prop_assert!(bound > 0.0);
                let gap = Gap::new(&en, side, classes.merge(i, j)).kl_form();
                prop_assert!(gap >= bound - 1e-14, "merging classes {i} and {j} of f*: Suff = {gap} < bound {bound}");
            }
        }
    }
}

/// The condition matters: when the text tower forgets the root (identical rows), `Y ⟂ X`, and
/// the constant statistic is sufficient although `f*` is not constant.
#[test]
fn t7_minimality_needs_independent_rows() {
    let rows = |r: Vec<Vec<f64>>| DMatrix::from_row_slice(r.len(), r[0].len(), &r.concat());
    let image = vec![Level { transitions: vec![rows(vec![vec![0.8, 0.2], vec![0.3, 0.7]]); 2] }];
    let text = vec![Level { transitions: vec![rows(vec![vec![0.6, 0.4], vec![0.6, 0.4]]); 2] }];
    let model = Jghm::new(vec![0.5, 0.5], vec![], image, text).unwrap();
    let en = Enumeration::new(&model).unwrap();
    let fstar = Evaluator::new(&model, Part::Image, Statistic::RootPosterior).unwrap().classes(&en.image);
    assert!(fstar.count > 1, "f* is not constant");
    let constant = Classes::from_keys(&vec![0; en.image.len()]);
    let gap = Gap::new(&en, Part::Image, constant).all();
    assert!(gap.kl_form.abs() < 1e-12 && gap.mutual_information.abs() < 1e-12, "{gap:?}");
}

fn index_of(list: &[Vec<usize>], t: &[usize]) -> usize {
    list.iter().position(|s| s == t).unwrap()
}

/// `P_{C|W}` as a `|W| × |C|` matrix: `p(c | w) = p(w | c) p(c) / p(w)`.
fn conditional_rows(en: &Enumeration, c: Part) -> DMatrix<f64> {
    let side = en.side(c);
    let prior = &en.cut.prior;
    DMatrix::from_fn(prior.len(), side.len(), |w, j| side.latent_row(j)[w] * side.p(j) / prior[w])
}

fn smallest_singular_value(m: &DMatrix<f64>) -> f64 {
    if m.nrows() > m.ncols() {
        return 0.0;
    }
    m.clone().svd(false, false).singular_values.iter().copied().fold(f64::INFINITY, f64::min)
}

#[test]
fn t7_trunk_models_are_covered() {
    // The strategies above draw both kinds; make sure a trunk model's separator is the trunk
    // leaves' joint state (|W| = product of their alphabets), not the root.
    let shape = common::Shape { root_states: 2, shared: vec![(2, 2)], image: vec![(1, 2)], text: vec![(1, 2)] };
    let model = common::build(&shape, common::Regime::Generic, 5);
    let en = Enumeration::new(&model).unwrap();
    assert_eq!(en.cut.size(), 4);
    assert!((en.cut.prior.iter().sum::<f64>() - 1.0).abs() < 1e-12);
}
