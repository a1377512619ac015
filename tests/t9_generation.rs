//! T9: the induced generator `Q^S` is off the truth by exactly the T4 excess risk,
//! `E_X KL(P_{Y|X} ‖ Q^S) = ℓ_∞^{X→Y}(S) - ℓ_∞^{X→Y}(PMI)`, and no generator that sees only `f(x)`
//! beats `Suff_Y(f)`, reached by `P_{Y|f(X)}` (`proofs/T9-generation.md`).

mod common;
mod tiny;

use jghm::contrastive::{Batch, Direction, Exact};
use jghm::downstream::generation::{self, expected_divergence, Generator, KlSpec, ThroughStatistic};
use jghm::downstream::laws::SideLaw;
use jghm::info::Enumeration;
use jghm::model::Part;
use jghm::score::{hash_unit, Perturbed, Pmi, Table};
use jghm::sufficiency::{Evaluator, Gap};
use proptest::prelude::*;
use tiny::*;

proptest! {
    #![proptest_config(config(12))]

    /// `E_X KL(P_{Y|X} ‖ Q^S)` from the generator's law equals the exact `ℓ_∞` excess (1e-10).
    #[test]
    fn t9_induced_generator_kl_is_excess_risk(model in arb_any_tiny_model(27.0), seed in any::<u64>(), amp in 0.0f64..3.0) {
        let en = Enumeration::new(&model).unwrap();
        let ex = Exact::new(&en);
        let score = Perturbed { base: Pmi { model: &model }, amplitude: amp, seed };
        let s = ex.scores(&score);
        let excess = ex.loss(&s, Direction::ImageToText, Batch::Infinite).unwrap()
            - ex.loss(&ex.pmi, Direction::ImageToText, Batch::Infinite).unwrap();
        let kl = expected_divergence(&model, &Generator::Induced { score: &score, pool: 2 }).unwrap();
        prop_assert!((kl - excess).abs() < 1e-10, "E KL {kl} vs excess {excess}");
        prop_assert!(expected_divergence(&model, &Generator::Exact).unwrap().abs() < 1e-10);
    }

    /// Every built-in statistic: `P_{Y|f(X)}` has `E_X KL = Suff_Y(f)` (1e-10), and the `Q^S` of
    /// scores through `f` (`PMI_T + a·u(t, y)`) never do better.
    #[test]
    fn t9_no_generator_through_f_beats_suff(model in arb_any_tiny_model(27.0), seed in any::<u64>(), amp in 0.01f64..2.0) {
        let en = Enumeration::new(&model).unwrap();
        for st in all_statistics(&model, Part::Image) {
            let classes = Evaluator::new(&model, Part::Image, st).unwrap().classes(&en.image);
            let gap = Gap::new(&en, Part::Image, classes.clone());
            let suff = gap.kl_form();
            let through = ThroughStatistic::new(&model, st).unwrap();
            let kl = expected_divergence(&model, &Generator::Statistic(&through)).unwrap();
            prop_assert!((kl - suff).abs() < 1e-10, "{st}: E KL {kl} vs Suff {suff}");
            let mut s = gap.statistic_pmi_grid();
            let ny = en.text.len();
            for (k, v) in s.iter_mut().enumerate() {
                *v += amp * hash_unit(seed, &[classes.of[k / ny], k % ny]);
            }
            let table = Table::new("through-f", &en.image.tokens, &en.text.tokens, s);
            let kl = expected_divergence(&model, &Generator::Induced { score: &table, pool: 2 }).unwrap();
            prop_assert!(kl >= suff - 1e-12, "{st}: a generator through f has E KL {kl} < Suff {suff}");
        }
    }
}

/// The samplers draw from their laws: empirical TV of 20000 draws below `√(K/n)` (the expected
/// TV of exact draws is at most `½√(K/n)`), and the Monte Carlo KL agrees with the exact one
/// within 4 standard errors (fixed model and seeds).
#[test]
fn t9_samplers_follow_their_laws() {
    let shape = common::Shape { root_states: 3, shared: vec![], image: vec![(2, 3)], text: vec![(2, 3)] };
    let model = common::build(&shape, common::Regime::Generic, 11);
    let texts = SideLaw::new(&model, Part::Text).unwrap();
    let x = vec![2, 0];
    let through = ThroughStatistic::new(&model, "map-root".parse().unwrap()).unwrap();
    let score = Perturbed { base: Pmi { model: &model }, amplitude: 1.0, seed: 4 };
    let n = 20_000;
    let k = texts.table.len() as f64;
    for (gen, n) in [
        (Generator::Exact, n),
        (Generator::Statistic(&through), n),
        (Generator::Induced { score: &score, pool: 400 }, 5000),
    ] {
        let law = generation::law(&model, &gen, &texts, &x).unwrap();
        let draws = generation::sample(&model, &gen, &x, n, 3).unwrap();
        let mut counts = vec![0.0; law.len()];
        for y in &draws {
            counts[texts.index_of(y).unwrap()] += 1.0 / n as f64;
        }
        let tv = 0.5 * counts.iter().zip(&law).map(|(c, p)| (c - p).abs()).sum::<f64>();
        assert!(tv < (k / n as f64).sqrt(), "{}: TV {tv}", gen.name());
        if !matches!(gen, Generator::Exact) {
            let exact =
                generation::divergence(&model, &gen, &x, &KlSpec { samples: 2, pool: 2, seed: 0 }).unwrap().kl.value;
            let mc = generation::monte_carlo_divergence(
                &model,
                &gen,
                &x,
                &KlSpec { samples: 20_000, pool: 20_000, seed: 5 },
            )
            .unwrap()
            .kl;
            assert!((mc.value - exact).abs() < 4.0 * mc.stderr + 1e-3, "{}: MC {mc:?} vs exact {exact}", gen.name());
        }
    }
}
