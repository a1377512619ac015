//! Evaluation against the exact ground truth: the BP class at the true parameters *is* the PMI
//! (T7), so its excess risk is 0 on the same draws, its zero-shot protocol is the oracle's, and
//! its correlation with the PMI is 1; a perturbed one has a positive excess risk (T4).

use jghm::eval::{evaluate, EvalSpec, LearnedScore};
use jghm::learn::{BpEncoder, Head, Params};
use jghm::model::Part;
use jghm::random_family::RandomSpec;

fn learned(model: &jghm::Jghm, noise: f64) -> LearnedScore<f64, BpEncoder> {
    let mut image = BpEncoder::truth(model, Part::Image);
    let text = BpEncoder::truth(model, Part::Text);
    for (i, t) in image.iter_mut().enumerate() {
        *t += noise * ((i * 7919 % 13) as f64 - 6.0);
    }
    let head: Vec<f64> = model.prior().iter().map(|p| p.ln()).collect();
    LearnedScore::new(
        BpEncoder::for_tower(model, Part::Image).unwrap(),
        BpEncoder::for_tower(model, Part::Text).unwrap(),
        Params { image, text, head },
        Head::T7 { states: model.root_states() },
    )
}

#[test]
fn t4_bp_class_at_truth_has_zero_excess_risk_and_oracle_zero_shot() {
    let mut spec = RandomSpec::symmetric(4, 2, 3, 5);
    spec.flip = 0.3;
    let model = spec.build().unwrap();
    let es = EvalSpec { samples: 40, zero_shot_images: 300, prompts: 16, grid: 16, seed: 3 };
    let truth = evaluate(&model, &learned(&model, 0.0), &es).unwrap();
    assert!(truth.excess_risk.abs() < 1e-9, "excess risk at the truth: {}", truth.excess_risk);
    assert_eq!(truth.zero_shot_accuracy, truth.oracle_zero_shot_accuracy);
    assert!((truth.pmi_correlation - 1.0).abs() < 1e-9);
    let off = evaluate(&model, &learned(&model, 0.3), &EvalSpec { samples: 400, ..es }).unwrap();
    assert!(
        off.excess_risk > 3.0 * off.excess_risk_stderr,
        "perturbed: {} ± {}",
        off.excess_risk,
        off.excess_risk_stderr
    );
    assert!(off.pmi_correlation < 1.0 - 1e-6);
}

/// `eval`'s finite-K figures (T2): on a model small enough to enumerate, the Monte Carlo
/// `L_K(Ŝ)` and its optimum `L_K(PMI)` agree with the exact finite-K losses within 4 standard
/// errors, and the perturbed pair's excess over the optimum is positive beyond 3 of them.
#[test]
fn t2_eval_finite_k_losses_match_the_exact_ones() {
    use jghm::contrastive::{Batch, Exact};
    use jghm::eval::finite_k_losses;
    use jghm::info::Enumeration;
    // Towers of different sizes (27 images, 9 texts), so that the two directions differ.
    let mut spec = RandomSpec::symmetric(3, 3, 1, 9);
    spec.text_children = 2;
    spec.flip = 0.3;
    let model = spec.build().unwrap();
    let en = Enumeration::new(&model).unwrap();
    let ex = Exact::new(&en);
    let off = learned(&model, 0.3);
    let k = 4;
    let fk = finite_k_losses(&model, &off, k, 4000, 11).unwrap();
    let exact_opt = ex.clip_loss(&ex.pmi, Batch::Finite(k)).unwrap();
    let exact_off = ex.clip_loss(&ex.scores(&off), Batch::Finite(k)).unwrap();
    assert_eq!(fk.k, k);
    let close = |e: &jghm::info::Estimate, exact: f64| (e.value - exact).abs() < 4.0 * e.stderr;
    assert!(close(&fk.optimum, exact_opt), "optimum {:?} vs exact {exact_opt}", fk.optimum);
    assert!(close(&fk.loss, exact_off), "loss {:?} vs exact {exact_off}", fk.loss);
    assert!(close(&fk.excess, exact_off - exact_opt), "excess {:?} vs exact {}", fk.excess, exact_off - exact_opt);
    assert!(fk.excess.value > 3.0 * fk.excess.stderr, "excess {:?}", fk.excess);
}

/// A root state of prior 1e-9 does not stop the evaluation: the zero-shot prompts of the root
/// label are drawn below the fixed root state (no rejection), so every class gets its prompts
/// at once, and the BP class at the truth still matches the oracle's protocol.
#[test]
fn eval_runs_with_a_root_state_of_prior_1e_minus_9() {
    let base = RandomSpec::symmetric(3, 2, 2, 5).build().unwrap();
    let prior = vec![1e-9, 0.4, 0.6 - 1e-9];
    let model = jghm::Jghm::from_file(jghm::model::ModelFile { prior, ..base.to_file() }).unwrap();
    let es = EvalSpec { samples: 20, zero_shot_images: 200, prompts: 8, grid: 8, seed: 1 };
    let r = evaluate(&model, &learned(&model, 0.0), &es).unwrap();
    assert!(r.excess_risk.abs() < 1e-9, "excess risk at the truth: {}", r.excess_risk);
    assert_eq!(r.zero_shot_accuracy, r.oracle_zero_shot_accuracy);
    assert!(r.zero_shot_accuracy > 0.0 && r.zero_shot_accuracy <= 1.0);
}
