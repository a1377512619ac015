//! The two-stage sampling estimate of the sufficiency gap (`sufficiency::sampled_fibres`), used
//! when the statistic's side is too large to enumerate: checked against the exact gap on models
//! small enough to enumerate, its bias sign (high, by Jensen) shown with few fibre draws, the
//! exact shortcut of statistics that determine `p(w | a)`, and its refusal of a statistic with
//! too many classes.

use jghm::info::Enumeration;
use jghm::model::Part;
use jghm::sufficiency::{self, Evaluator, Gap, Statistic, SufficiencyError};
use jghm::RandomSpec;

fn exact(model: &jghm::Jghm, side: Part, st: Statistic) -> sufficiency::Sufficiency {
    let en = Enumeration::new(model).unwrap();
    let classes = Evaluator::new(model, side, st).unwrap().classes(en.side(side));
    Gap::new(&en, side, classes).all()
}

/// With towers that differ (3 image leaves, 2 text leaves) and a one-level trunk (so the root
/// posterior is not sufficient), for both sides and three statistics: at 2,000 and at 40,000
/// draws per stage the estimate is within 4 standard errors of the exact gap, and the standard
/// error shrinks by about `√20` (between 3.5× and 6.5×). `I(A; C)` and `I(T; C)` likewise.
#[test]
fn two_stage_estimate_agrees_with_exact_as_samples_grow() {
    let spec =
        RandomSpec { text_children: 2, shared_depth: 1, shared_children: 2, ..RandomSpec::symmetric(3, 3, 1, 6) };
    let model = spec.build().unwrap();
    for side in [Part::Image, Part::Text] {
        for st in [Statistic::FirstTokens(1), Statistic::MapRoot, Statistic::MaskedPosterior(2)] {
            let ex = exact(&model, side, st);
            assert!(ex.kl_form > 1e-3, "{side} {st}: a statistic with a gap to estimate ({})", ex.kl_form);
            let mut se = vec![];
            for n in [2_000, 40_000] {
                let s = sufficiency::sampled_fibres(&model, side, st, n, n, 11).unwrap();
                assert!(!s.fibre_constant && s.fibre_samples == n);
                assert_eq!(s.unmatched, 0, "{side} {st}: every class met in stage 1");
                for (name, e, m) in [
                    ("Suff", ex.kl_form, &s.sufficiency),
                    ("I(A; C)", ex.mutual_information, &s.mutual_information),
                    ("I(T; C)", ex.statistic_information, &s.statistic_information),
                ] {
                    assert!(m.stderr > 0.0, "{side} {st} {name}: a Monte Carlo standard error");
                    assert!(
                        (m.value - e).abs() < 4.0 * m.stderr,
                        "{side} {st} {name} at n = {n}: {} ± {} vs exact {e}",
                        m.value,
                        m.stderr
                    );
                }
                se.push(s.sufficiency.stderr);
            }
            let ratio = se[0] / se[1];
            assert!((3.5..6.5).contains(&ratio), "{side} {st}: se ratio {ratio} for 20× the samples");
        }
    }
}

/// The bias is upward (Jensen: `log` of an unbiased fibre mean is biased low, so `PMI_T` is
/// too, so `Suff` is too high). With 10 fibre draws for the 3 classes of `map-root` (a model
/// with a trunk, so the root's classes hold sequences of different separator posteriors), the
/// mean of 40 estimates (independent seeds, 4,000 stage-2 pairs each; a run whose stage 1 missed
/// a class is refused and skipped) exceeds the exact gap by more than 4 standard errors of that
/// mean; with 20,000 fibre draws the excess is gone (within 4 standard errors).
#[test]
fn two_stage_bias_is_upward_and_vanishes_with_fibre_draws() {
    let spec = RandomSpec { shared_depth: 1, shared_children: 2, ..RandomSpec::symmetric(3, 2, 1, 3) };
    let model = spec.build().unwrap();
    let st = Statistic::MapRoot;
    let ex = exact(&model, Part::Image, st).kl_form;
    let mean_of = |fibre_samples: usize| {
        let runs: Vec<f64> = (0..40)
            .filter_map(|seed| sufficiency::sampled_fibres(&model, Part::Image, st, 4_000, fibre_samples, seed).ok())
            .map(|s| s.sufficiency.value)
            .collect();
        assert!(runs.len() >= 30, "most runs meet every class ({} of 40)", runs.len());
        jghm::info::Estimate::from_samples(&runs)
    };
    let few = mean_of(10);
    assert!(few.value - ex > 4.0 * few.stderr, "few fibre draws: {} ± {} vs exact {ex}", few.value, few.stderr);
    eprintln!("exact {ex}; 10 fibre draws: mean {} ± {}", few.value, few.stderr);
    let many = mean_of(20_000);
    eprintln!("20,000 fibre draws: mean {} ± {}", many.value, many.stderr);
    assert!(
        (many.value - ex).abs() < 4.0 * many.stderr,
        "many fibre draws: {} ± {} vs exact {ex}",
        many.value,
        many.stderr
    );
}

/// A statistic that determines the separator posterior (the separator posterior; the root
/// posterior without a trunk) needs no stage 1 and has gap 0 (T7), to round-off, on a model
/// whose sides (3^9 sequences) are not enumerated.
#[test]
fn statistics_that_determine_the_separator_posterior_need_no_fibre_draws() {
    let model = RandomSpec::symmetric(3, 3, 2, 5).build().unwrap();
    for st in [Statistic::SeparatorPosterior, Statistic::RootPosterior] {
        let s = sufficiency::sampled_fibres(&model, Part::Text, st, 500, 500, 1).unwrap();
        assert!(s.fibre_constant && s.fibre_samples == 0 && s.unmatched == 0, "{st}");
        assert!(s.sufficiency.value.abs() < 1e-12 && s.sufficiency.stderr < 1e-12, "{st}: {:?}", s.sufficiency);
        assert!(s.mutual_information.value > 0.0 && s.mutual_information.stderr > 0.0);
    }
}

/// A continuous statistic of a large side (the posterior of the layer just above the leaves:
/// almost every sequence its own class) is refused, naming the count of unmatched draws.
#[test]
fn a_statistic_with_too_many_classes_is_refused() {
    let model = RandomSpec::symmetric(4, 3, 3, 2).build().unwrap();
    let err = sufficiency::sampled_fibres(&model, Part::Image, Statistic::LayerPosterior(1), 300, 300, 1).unwrap_err();
    assert!(matches!(err, SufficiencyError::TooManyClasses { samples: 300, fibre_samples: 300, .. }), "{err}");
    assert!(err.to_string().contains("coarser statistic"), "{err}");
    assert!(matches!(
        sufficiency::sampled_fibres(&model, Part::Image, Statistic::MapRoot, 1, 10, 1),
        Err(SufficiencyError::Info(jghm::info::InfoError::TooFewSamples(1)))
    ));
}
