//! T6: the three forms of `Suff` agree; `Suff ≥ 0`; `Suff = 0` exactly when
//! `P_{C|A} = P_{C|T}` a.s. (quantitatively: Pinsker); `Suff(h∘f) ≥ Suff(f)`.
//! Proof: `proofs/T6-sufficiency-identities.md`.

mod common;
mod tiny;

use jghm::info::Enumeration;
use jghm::model::Part;
use jghm::score::hash_unit;
use jghm::sufficiency::{Evaluator, Gap, Statistic};
use proptest::prelude::*;
use tiny::*;

fn gap<'e, 'm>(en: &'e Enumeration<'m>, side: Part, st: Statistic) -> Gap<'e, 'm> {
    Gap::new(en, side, Evaluator::new(en.model, side, st).unwrap().classes(en.side(side)))
}

proptest! {
    #![proptest_config(config(16))]

    #[test]
    fn t6_three_forms_agree_and_are_nonnegative(model in arb_shallow_or_deep_model(64.0)) {
        let en = Enumeration::new(&model).unwrap();
        for side in [Part::Image, Part::Text] {
            for st in all_statistics(&model, side) {
                let s = gap(&en, side, st).all();
                prop_assert!((s.kl_form - s.information_form).abs() < 1e-10, "{st} {side}: {s:?}");
                prop_assert!((s.kl_form - s.variational_form).abs() < 1e-10, "{st} {side}: {s:?}");
                prop_assert!(s.kl_form >= -1e-12 && s.statistic_information <= s.mutual_information + 1e-12);
            }
        }
    }

    /// Sufficient statistics have `Suff = 0`: the separator's posterior, the identity
    /// (`first-tokens:N`) and the joint posterior of any layer at or below the trunk leaves.
    #[test]
    fn t6_zero_for_sufficient_statistics(model in arb_shallow_or_deep_model(64.0)) {
        let en = Enumeration::new(&model).unwrap();
        let trunk = model.levels(Part::Shared).len();
        for side in [Part::Image, Part::Text] {
            let mut stats = vec![Statistic::SeparatorPosterior, Statistic::FirstTokens(model.len_of(side))];
            stats.extend((trunk..=jghm::info::side_depth(&model, side)).map(Statistic::LayerPosterior));
            for st in stats {
                let s = gap(&en, side, st).all();
                prop_assert!(s.kl_form.abs() < 1e-10 && s.information_form.abs() < 1e-10, "{st} {side}: {s:?}");
            }
        }
    }

    /// Zero exactly when the conditionals agree, quantitatively: `Suff ≥ 2 E_A TV(P_{C|A},
    /// P_{C|T(A)})²` (Pinsker), so `Suff = 0` forces equal rows wherever `p(a) > 0`; conversely
    /// equal rows make every KL term zero (checked by `t6_zero_for_sufficient_statistics`).
    #[test]
    fn t6_zero_iff_conditionals_agree(model in arb_shallow_or_deep_model(64.0)) {
        let en = Enumeration::new(&model).unwrap();
        for side in [Part::Image, Part::Text] {
            for st in all_statistics(&model, side) {
                let g = gap(&en, side, st);
                let q = g.best_conditional();
                let (an, cn) = (en.side(side), en.side(other(side)));
                let mut pinsker = 0.0;
                for a in 0..an.len() {
                    let t = g.classes.of[a];
                    let tv: f64 = (0..cn.len()).map(|c| {
                        let pmi = if side == Part::Image { en.pmi(a, c) } else { en.pmi(c, a) };
                        (cn.p(c) * pmi.exp() - q[t * cn.len() + c]).abs()
                    }).sum::<f64>() / 2.0;
                    pinsker += an.p(a) * 2.0 * tv * tv;
                }
                let suff = g.kl_form();
                prop_assert!(suff >= pinsker - 1e-12, "{st} {side}: Suff {suff} below Pinsker {pinsker}");
            }
        }
    }

    /// Coarsening never lowers the gap: merging two classes, `first-tokens:k` against `:k+1`,
    /// `map-root` against `root-posterior`.
    #[test]
    fn t6_coarsening_increases_gap(model in arb_shallow_or_deep_model(64.0), pick in any::<u64>()) {
        let en = Enumeration::new(&model).unwrap();
        for side in [Part::Image, Part::Text] {
            for st in all_statistics(&model, side) {
                let g = gap(&en, side, st);
                if g.classes.count < 2 { continue; }
                let i = (pick % g.classes.count as u64) as usize;
                let j = (i + 1) % g.classes.count;
                let coarser = Gap::new(&en, side, g.classes.merge(i, j)).kl_form();
                prop_assert!(coarser >= g.kl_form() - 1e-12, "{st} {side}: merged {coarser} < {}", g.kl_form());
            }
            for k in 0..model.len_of(side) {
                let (a, b) = (gap(&en, side, Statistic::FirstTokens(k)).kl_form(), gap(&en, side, Statistic::FirstTokens(k + 1)).kl_form());
                prop_assert!(a >= b - 1e-12);
            }
            let (map, post) = (gap(&en, side, Statistic::MapRoot).kl_form(), gap(&en, side, Statistic::RootPosterior).kl_form());
            prop_assert!(map >= post - 1e-12);
        }
    }

    /// The variational form is an infimum attained at `q* = P_{C|T}`:
    /// `F(q) - F(q*) = E_T KL(q*(·|T) ‖ q(·|T)) ≥ 0` for any `q`.
    #[test]
    fn t6_variational_form_is_attained_infimum(model in arb_shallow_or_deep_model(64.0), seed in any::<u64>()) {
        let en = Enumeration::new(&model).unwrap();
        for side in [Part::Image, Part::Text] {
            let g = gap(&en, side, Statistic::MapRoot);
            let qstar = g.best_conditional();
            let n = en.side(other(side)).len();
            let mut q: Vec<f64> = (0..qstar.len()).map(|i| (hash_unit(seed, &[i]) * 2.0).exp()).collect();
            for row in q.chunks_mut(n) {
                let s: f64 = row.iter().sum();
                row.iter_mut().for_each(|v| *v /= s);
            }
            let pyth: f64 = (0..g.classes.count).map(|t| g.pt[t] * jghm::info::kl(&qstar[t * n..(t + 1) * n], &q[t * n..(t + 1) * n])).sum();
            let (fq, fstar) = (g.variational(&q), g.variational(&qstar));
            prop_assert!((fq - fstar - pyth).abs() < 1e-10 && pyth >= 0.0, "F(q) {fq}, F(q*) {fstar}, E KL {pyth}");
        }
    }
}
