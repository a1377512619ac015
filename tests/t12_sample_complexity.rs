//! T12 (THEORY §7): on a sweep over `n` with several seeds, the fitted log-log slope of the
//! excess risk is at most −1/2 within its 95% interval, for the well-specified BP class.
//! Every run is measured exactly (enumeration), so the only noise is the learning's.
//! Also T8 on every run of the sweep: the zero-shot excess risk is at most the image→text
//! excess risk (data processing), and no zero-shot accuracy exceeds Bayes's.

use jghm::contrastive::Exact;
use jghm::info::Enumeration;
use jghm::learn::Class;
use jghm::random_family::RandomSpec;
use jghm::rates::{fit, Row, Settings, Sweep};

/// A quick BP sweep on the default sweep's model (4 states, 2 × 2 leaves a side: 256 images
/// and 256 texts): n = 256, 1024, 4096, three seeds, at most 1000 steps a run.
fn quick_bp_sweep() -> Vec<Row> {
    let model = RandomSpec { flip: 0.2, ..RandomSpec::symmetric(4, 2, 2, 1) }.build().unwrap();
    let en = Enumeration::new(&model).unwrap();
    let exact = Exact::new(&en);
    let settings = Settings {
        classes: vec![Class::Bp],
        ns: vec![256, 1024, 4096],
        seeds: 3,
        steps: 1000,
        bp_steps: 1000,
        ..Settings::default_sweep(true)
    };
    settings.validate(&model).unwrap();
    let sweep = Sweep { model: &model, model_sha256: "test".into(), exact: &exact, settings: &settings };
    let mut rows = vec![];
    for seed in 0..settings.seeds {
        for &n in &settings.ns {
            rows.push(sweep.run(Class::Bp, n, seed, &mut |_| {}).unwrap());
        }
    }
    rows
}

#[test]
fn t12_bp_class_excess_risk_slope_at_most_minus_one_half() {
    let rows = quick_bp_sweep();
    let runs: Vec<(usize, f64)> = rows.iter().map(|r| (r.n, r.figures.excess_risk)).collect();
    let f = fit(&runs, 0).expect("three sample sizes");
    eprintln!(
        "BP class: slope {:.3} [{:.3}, {:.3}], floor {:?}, fitted on n = {:?}",
        f.slope, f.slope_ci[0], f.slope_ci[1], f.floor, f.fitted_n
    );
    assert!(f.slope_ci[0] <= -0.5, "T12: the slope's interval [{}, {}] lies above -1/2", f.slope_ci[0], f.slope_ci[1]);
    // The curve falls: more data, less excess risk (a sweep that learns nothing has slope ≈ 0).
    assert!(f.slope < 0.0 && f.slope_ci[1] < 0.0, "{f:?}");

    // T8 on every run: E KL(P̂^PMI ‖ P̂^Ŝ) ≤ ℓ∞^{X→Y}(Ŝ) − ℓ∞^{X→Y}(PMI) (data processing),
    // and the accuracies are those of a classifier between 0 and Bayes.
    for r in &rows {
        let g = &r.figures;
        assert!(g.zero_shot_excess_risk <= g.excess_image_to_text + 1e-12, "T8 violated: {r:?}");
        assert!(g.zero_shot_accuracy <= g.bayes_accuracy + 1e-12 && g.exact_score_accuracy <= g.bayes_accuracy + 1e-12);
    }
}
