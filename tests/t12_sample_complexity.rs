//! T12 as a property of trained encoders: on an enumerable model, with every run
//! measured exactly (so the only noise is the learning's), the excess risk of the learned pair
//! falls with the number `n` of pre-training pairs at the rate the theorem states.
//!
//! One sweep: the BP class (well-specified: it contains the truth) and the MLP (not
//! well-specified), `n = 512 … 16384` (6 sizes, doubling), 5 seeds each, the quick sweep's
//! training settings. Asserted, on the fits of log excess risk against log n (least squares above
//! a floor chosen by BIC, 95% interval by bootstrap over seeds, `rates::fit`):
//! * the BP class falls at the parametric rate `n^-1`: no floor in the range, and the whole
//!   interval of the slope inside `[-1.3, -0.5]`; so does its zero-shot excess (T8's quantity);
//! * the MLP falls at least as fast as `n^-1/2` above its floor (the interval's upper end at
//!   most `-1/2`), its excess risk and its zero-shot excess alike;
//! * on every run, T8: the zero-shot excess is at most the image→text excess, and no accuracy
//!   exceeds Bayes's.
//!
//! A learner that silently uses only part of its data (a training set capped at 2,048 pairs)
//! stops improving past the cap: the BP fit then finds a floor, or a slope above `-1/2`, and the
//! test fails (`proofs/T12-sample-complexity.md` records the check).

use jghm::contrastive::Exact;
use jghm::info::Enumeration;
use jghm::learn::Class;
use jghm::random_family::RandomSpec;
use jghm::rates::{fit, Fit, Row, Settings, Sweep};

const NS: [usize; 6] = [512, 1024, 2048, 4096, 8192, 16384];
const SEEDS: usize = 5;

/// The sweep on the default sweep's model (4 states, 2 × 2 leaves a side: 256 images and 256
/// texts, flip 0.2).
fn sweep() -> Vec<Row> {
    let model = RandomSpec { flip: 0.2, ..RandomSpec::symmetric(4, 2, 2, 1) }.build().unwrap();
    let en = Enumeration::new(&model).unwrap();
    let exact = Exact::new(&en);
    let settings = Settings {
        classes: vec![Class::Bp, Class::Mlp],
        ns: NS.to_vec(),
        seeds: SEEDS,
        ..Settings::default_sweep(true)
    };
    settings.validate(&model).unwrap();
    let sweep = Sweep { model: &model, model_sha256: "test".into(), exact: &exact, settings: &settings };
    let mut rows = vec![];
    for &class in &settings.classes {
        for seed in 0..settings.seeds {
            for &n in &settings.ns {
                rows.push(sweep.run(class, n, seed, &mut |_| {}).unwrap());
            }
        }
    }
    rows
}

fn fit_of(rows: &[Row], class: Class, risk: fn(&Row) -> f64) -> Fit {
    let runs: Vec<(usize, f64)> = rows.iter().filter(|r| r.class == class).map(|r| (r.n, risk(r))).collect();
    assert_eq!(runs.len(), NS.len() * SEEDS);
    fit(&runs, 0).expect("six sample sizes")
}

fn show(what: &str, f: &Fit) {
    eprintln!(
        "{what}: slope {:.3} [{:.3}, {:.3}], floor {:?}, fitted on n = {:?}",
        f.slope, f.slope_ci[0], f.slope_ci[1], f.floor, f.fitted_n
    );
}

/// The well-specified class's rate: no floor, the whole interval inside `[-1.3, -0.5]`.
fn assert_parametric_rate(what: &str, f: &Fit) {
    assert!(f.floor.is_none(), "T12: {what} reaches a floor {:?} at n = {:?}", f.floor, f.floor_n);
    assert!(
        f.slope_ci[0] >= -1.3 && f.slope_ci[1] <= -0.5,
        "T12: {what}'s slope interval [{:.3}, {:.3}] is not inside [-1.3, -0.5]",
        f.slope_ci[0],
        f.slope_ci[1]
    );
}

/// A class that need not contain the truth: at least the slow rate above its floor, fitted on
/// at least three sizes.
fn assert_slow_rate(what: &str, f: &Fit) {
    assert!(f.fitted_n.len() >= 3, "T12: {what} is fitted on {:?} only", f.fitted_n);
    assert!(
        f.slope_ci[1] <= -0.5,
        "T12: {what}'s slope interval [{:.3}, {:.3}] reaches above -1/2",
        f.slope_ci[0],
        f.slope_ci[1]
    );
}

#[test]
fn t12_excess_risk_falls_at_the_rate_of_the_theorem_for_trained_encoders() {
    let rows = sweep();
    let excess = |r: &Row| r.figures.excess_risk;
    let zero_shot = |r: &Row| r.figures.zero_shot_excess_risk;

    let bp = fit_of(&rows, Class::Bp, excess);
    let bp_zero_shot = fit_of(&rows, Class::Bp, zero_shot);
    let mlp = fit_of(&rows, Class::Mlp, excess);
    let mlp_zero_shot = fit_of(&rows, Class::Mlp, zero_shot);
    show("BP class, excess risk", &bp);
    show("BP class, zero-shot excess", &bp_zero_shot);
    show("MLP, excess risk", &mlp);
    show("MLP, zero-shot excess", &mlp_zero_shot);

    assert_parametric_rate("the BP class's excess risk", &bp);
    assert_parametric_rate("the BP class's zero-shot excess", &bp_zero_shot);
    assert_slow_rate("the MLP's excess risk", &mlp);
    assert_slow_rate("the MLP's zero-shot excess", &mlp_zero_shot);

    // T8 on every run: E KL(P̂^PMI ‖ P̂^Ŝ) ≤ ℓ∞^{X→Y}(Ŝ) − ℓ∞^{X→Y}(PMI) (data processing),
    // and the accuracies are those of a classifier between 0 and Bayes.
    for r in &rows {
        let g = &r.figures;
        assert!(g.zero_shot_excess_risk <= g.excess_image_to_text + 1e-12, "T8 violated: {r:?}");
        assert!(g.zero_shot_accuracy <= g.bayes_accuracy + 1e-12 && g.exact_score_accuracy <= g.bayes_accuracy + 1e-12);
    }
}
