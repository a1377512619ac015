//! T8: the zero-shot classifier `P̂^S(c | x) = Σ_y p(c|y) Q^S(y|x)` is Bayes at `S = PMI`, and
//! for any score `E_X KL(P_{C|X} ‖ P̂^S) ≤ E_X KL(P_{Y|X} ‖ Q^S) = ε`, with the 0-1 excess risk at
//! most `√(2 E_X KL(P_{C|X} ‖ P̂^S)) ≤ √(2ε)` (`proofs/T8-zero-shot.md`).

mod common;
mod tiny;

use jghm::downstream::labels::Label;
use jghm::downstream::laws::SideLaw;
use jghm::downstream::zero_shot::{
    self, classify_ensemble, classify_exact, PromptDraws, PromptEnsemble, Prompts, Spec, ZeroShotRule,
};
use jghm::info::{self, side_size};
use jghm::model::{Jghm, Part};
use jghm::score::{hash_unit, Perturbed, Pmi, Score, ShiftOf, Shifted};
use proptest::prelude::*;
use tiny::*;

/// A random stochastic channel `p(c | y)` over every text, `k` classes, fixed by `seed`.
fn random_channel(model: &Jghm, k: usize, seed: u64) -> Label {
    let n = side_size(model, Part::Text) as usize;
    Label::Channel(
        (0..n)
            .map(|i| {
                let w: Vec<f64> = (0..k).map(|c| (2.0 * hash_unit(seed, &[i, c])).exp()).collect();
                let z: f64 = w.iter().sum();
                w.iter().map(|v| v / z).collect()
            })
            .collect(),
    )
}

/// `C = Y` itself: the identity channel (data processing holds with equality).
fn identity_channel(model: &Jghm) -> Label {
    let n = side_size(model, Part::Text) as usize;
    Label::Channel((0..n).map(|i| (0..n).map(|c| f64::from(u8::from(c == i))).collect()).collect())
}

fn channel_labels(model: &Jghm, seed: u64) -> Vec<Label> {
    let mut labels: Vec<Label> = (0..model.text_len()).map(Label::TextToken).collect();
    labels.push(Label::TextMapRoot);
    labels.push(random_channel(model, 3, seed));
    labels
}

fn exact_spec() -> Spec {
    Spec { prompts: Prompts::Exact, images: None, bound_samples: 2 }
}

proptest! {
    #![proptest_config(config(12))]

    /// With the exact PMI and exact prompts, the classifier equals the Bayes posterior (computed
    /// by BP marginals for text tokens, by enumeration otherwise) image by image, to 1e-10.
    #[test]
    fn t8_pmi_zero_shot_is_bayes(model in arb_any_tiny_model(27.0), seed in any::<u64>()) {
        let texts = SideLaw::new(&model, Part::Text).unwrap();
        let images = SideLaw::new(&model, Part::Image).unwrap();
        for label in channel_labels(&model, seed) {
            let law = label.law(&model, Some(&texts)).unwrap();
            let hat = classify_exact(&Pmi { model: &model }, &law, &images.table.tokens).unwrap();
            for (x, h) in images.table.tokens.iter().zip(&hat) {
                let bayes = law.bayes(&model, x).unwrap();
                for (b, q) in bayes.iter().zip(h) {
                    prop_assert!((b - q).abs() < 1e-10, "{label}: Bayes {b} vs zero-shot {q} at x = {x:?}");
                }
            }
            let r = zero_shot::evaluate(&model, &Pmi { model: &model }, &label, &exact_spec()).unwrap();
            prop_assert!((r.accuracy.value - r.bayes_accuracy.value).abs() < 1e-9);
            prop_assert!((r.log_loss.value - r.bayes_log_loss.value).abs() < 1e-9);
            prop_assert!(r.excess_log_loss.value.abs() < 1e-10 && r.bound.holds == Some(true));
        }
    }

    /// For perturbed and shifted scores: excess log-loss ≤ ε, 0-1 excess ≤ √(2 excess) ≤ √(2ε),
    /// on every channel label; equality `excess = ε` for the identity channel `C = Y`.
    #[test]
    fn t8_excess_below_contrastive_excess(model in arb_any_tiny_model(27.0), seed in any::<u64>(), amp in 0.05f64..3.0) {
        let pmi = Pmi { model: &model };
        let scores: Vec<Box<dyn Score + Send + '_>> = vec![
            Box::new(Perturbed { base: Pmi { model: &model }, amplitude: amp, seed }),
            Box::new(Shifted { base: Perturbed { base: Pmi { model: &model }, amplitude: amp, seed }, of: ShiftOf::Text, amplitude: amp, seed: seed ^ 1 }),
        ];
        for score in &scores {
            let eps = zero_shot::contrastive_excess(&model, &**score, 2, 0).unwrap().value;
            prop_assert!(eps > 0.0);
            let mut labels = channel_labels(&model, seed);
            labels.push(identity_channel(&model));
            for label in labels {
                let r = zero_shot::evaluate(&model, &**score, &label, &exact_spec()).unwrap();
                let (excess, zero_one) = (r.excess_log_loss.value, r.zero_one_excess.value);
                prop_assert!(excess >= -1e-12 && excess <= eps + 1e-12, "{label}: excess {excess} > eps {eps}");
                prop_assert!(zero_one <= (2.0 * excess.max(0.0)).sqrt() + 1e-12, "{label}: 0-1 {zero_one} vs excess {excess}");
                prop_assert!(zero_one <= (2.0 * eps).sqrt() + 1e-12);
                prop_assert!(r.bound.holds == Some(true));
                if matches!(&label, Label::Channel(rows) if rows.len() == rows[0].len() && rows[0][0] == 1.0) {
                    prop_assert!((excess - eps).abs() < 1e-10, "identity channel: excess {excess} vs eps {eps}");
                }
            }
        }
        let _ = pmi;
    }

    /// The root label is not a channel of the text: even the PMI only reaches
    /// `Σ_y p(z|y) p(y|x)`, never better than Bayes `p(z|x)`; T8's bound is not claimed.
    #[test]
    fn t8_root_label_is_not_a_channel(model in arb_any_tiny_model(27.0)) {
        let r = zero_shot::evaluate(&model, &Pmi { model: &model }, &Label::Root, &exact_spec()).unwrap();
        prop_assert!(r.accuracy.value <= r.bayes_accuracy.value + 1e-12);
        prop_assert!(r.log_loss.value >= r.bayes_log_loss.value - 1e-12);
        prop_assert!(r.bound.holds.is_none() && !r.bound.applies);
        // The gap is E_X KL(p(z|x) ‖ Σ_y p(z|y) p(y|x)), computed here from its definition.
        let texts = SideLaw::new(&model, Part::Text).unwrap();
        let images = SideLaw::new(&model, Part::Image).unwrap();
        let rows = Label::Root.rows(&model, &texts);
        let gap: f64 = (0..images.table.len()).map(|i| {
            let through = jghm::downstream::labels::mix(&texts.conditional(&model, &images.table.tokens[i]).unwrap(), &rows, model.root_states());
            images.table.p(i) * info::kl(images.table.root_row(i), &through)
        }).sum();
        prop_assert!((r.excess_log_loss.value - gap).abs() < 1e-10);
    }
}

/// Prompt ensembles converge to the exact expectation: with `M = 20000` exact prompts per class
/// the classifier is within 0.02 of the exact one on every image (fixed model and seed).
#[test]
fn t8_prompt_ensembles_converge_to_exact() {
    let shape = common::Shape { root_states: 3, shared: vec![], image: vec![(2, 3)], text: vec![(2, 3)] };
    let model = common::build(&shape, common::Regime::Generic, 5);
    let texts = SideLaw::new(&model, Part::Text).unwrap();
    let images = SideLaw::new(&model, Part::Image).unwrap();
    let score = Perturbed { base: Pmi { model: &model }, amplitude: 0.5, seed: 3 };
    for label in [Label::TextToken(1), Label::TextMapRoot] {
        let law = label.law(&model, Some(&texts)).unwrap();
        let exact = classify_exact(&score, &law, &images.table.tokens).unwrap();
        let ens = classify_ensemble(&model, &score, &law, 20_000, 9, &images.table.tokens).unwrap();
        let worst = exact.iter().flatten().zip(ens.iter().flatten()).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
        assert!(worst < 0.02, "{label}: ensemble off by {worst}");
        let few = classify_ensemble(&model, &score, &law, 2, 9, &images.table.tokens).unwrap();
        let far = exact.iter().flatten().zip(few.iter().flatten()).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
        assert!(far > worst, "{label}: 2 prompts ({far}) no farther than 20000 ({worst})");
    }
}

/// The one prompt-ensemble classifier read nested: with `M` prompts it uses the first `M` of
/// each class's set and nothing else, its log form normalises to the probabilities of
/// [`PromptEnsemble::classify`], and [`PromptEnsemble::predict`] is their argmax. Checked on the
/// root label (draws below the fixed root) and a text token (BP draws), with a shared generator and with
/// one stream per class.
#[test]
fn t8_prompt_ensemble_is_nested_and_normalised() {
    let shape = common::Shape { root_states: 3, shared: vec![], image: vec![(2, 3)], text: vec![(2, 3)] };
    let model = common::build(&shape, common::Regime::Generic, 5);
    let images = SideLaw::new(&model, Part::Image).unwrap();
    let score = Perturbed { base: Pmi { model: &model }, amplitude: 0.5, seed: 3 };
    let mut shared = jghm::rng::stream(4, 0);
    for (label, draws) in
        [(Label::Root, PromptDraws::Streams(11)), (Label::TextToken(1), PromptDraws::Shared(&mut shared))]
    {
        let law = label.law(&model, None).unwrap();
        let prior = law.prior();
        let size = 6;
        let ensemble = PromptEnsemble::draw(&model, &law, size, draws).unwrap();
        let prompts = ensemble.flat();
        let classes = prior.iter().filter(|&&p| p > 0.0).count();
        assert_eq!(prompts.len(), classes * size);
        let grid = score.grid(&images.table.tokens, &prompts);
        for row in grid.chunks(prompts.len()) {
            let probabilities = ensemble.classify(row);
            let logs = ensemble.log_classifier(row, size);
            for (p, l) in probabilities.iter().zip(&logs) {
                assert!((p - l.exp()).abs() < 1e-12, "{label}: {p} vs exp {l}");
            }
            assert!((probabilities.iter().sum::<f64>() - 1.0).abs() < 1e-12);
            let best = ensemble.predict(row);
            assert!(probabilities.iter().all(|&p| p <= probabilities[best]));
            // Scores of prompts beyond the first 2 of each class do not move the 2-prompt classifier.
            let mut moved = row.to_vec();
            for class in 0..classes {
                moved[class * size + 2..(class + 1) * size].iter_mut().for_each(|s| *s += 3.0 * (class + 1) as f64);
            }
            assert_eq!(ensemble.log_classifier(row, 2), ensemble.log_classifier(&moved, 2), "{label}");
            assert_ne!(ensemble.log_classifier(row, size), ensemble.log_classifier(&moved, size), "{label}");
        }
    }
}

/// The paper's zero-shot rule (no `log p(c)`, [`ZeroShotRule::Paper`]) against ours. With the
/// exact score `S = PMI`, `mean_m exp S(x, y_{c,m}) → p(c | x) / p(c)` (T8), so ours tends to
/// `p(c | x)` and the paper's to `p(c | x) / p(c)` normalised. Checked with `M = 20000` exact
/// prompts per class on a text-token label of unequal prior: the paper's rule is within 0.02 of
/// its limit, and that limit is more than 0.02 away from `p(c | x)` on some image.
#[test]
fn t8_the_papers_rule_tends_to_the_posterior_over_the_prior() {
    let shape = common::Shape { root_states: 3, shared: vec![], image: vec![(2, 3)], text: vec![(2, 3)] };
    let model = common::build(&shape, common::Regime::Generic, 5);
    let images = SideLaw::new(&model, Part::Image).unwrap();
    let texts = SideLaw::new(&model, Part::Text).unwrap();
    let label = Label::TextToken(1);
    let law = label.law(&model, Some(&texts)).unwrap();
    let prior = law.prior();
    let spread = prior.iter().cloned().fold(0.0, f64::max) - prior.iter().cloned().fold(1.0, f64::min);
    assert!(spread > 0.05, "the label's prior must be unequal for the test to mean anything: {prior:?}");
    let pmi = Pmi { model: &model };
    let posterior = classify_exact(&pmi, &law, &images.table.tokens).unwrap();
    let ensemble = PromptEnsemble::draw(&model, &law, 20_000, PromptDraws::Streams(9)).unwrap();
    let prompts = ensemble.flat();
    let grid = pmi.grid(&images.table.tokens, &prompts);
    let (mut worst, mut apart) = (0.0f64, 0.0f64);
    for (row, post) in grid.chunks(prompts.len()).zip(&posterior) {
        let paper: Vec<f64> =
            ensemble.log_classifier_by(row, 20_000, ZeroShotRule::Paper).iter().map(|l| l.exp()).collect();
        let tilted: Vec<f64> = post.iter().zip(prior.iter()).map(|(p, c)| if *c > 0.0 { p / c } else { 0.0 }).collect();
        let z: f64 = tilted.iter().sum();
        for ((q, t), p) in paper.iter().zip(&tilted).zip(post) {
            worst = worst.max((q - t / z).abs());
            apart = apart.max((t / z - p).abs());
        }
    }
    assert!(worst < 0.02, "the paper's rule is {worst} from p(c|x)/p(c) normalised");
    assert!(apart > 0.02, "p(c|x)/p(c) normalised is only {apart} from p(c|x): the rules would not differ");
}
