//! The Bayes side of the paper's four risks (`proofs/paper-risks.md`): the
//! conventions pinned on hand-checked cases, the Bayes risks computed two ways (BP Monte Carlo
//! against exact enumeration on a shrunken model of the standard family: 2 levels × 2
//! children, 3 states), the fast Bayes predictors against the log-domain BP and brute force,
//! mis-specified BP against its exact excess, and reproducibility across thread counts.

mod common;

use jghm::bp::{self, brute_force};
use jghm::contrastive::{Batch, Direction, Exact};
use jghm::downstream::noise::{ValueNoise, DENOISING};
use jghm::evidence::SoftImage;
use jghm::info::{decode_sequence, Enumeration};
use jghm::model::{Jghm, Part};
use jghm::reproduce::{
    clip_risk, clip_risks, denoise_risk, denoise_risks, vlm_risk, vlm_risks, zero_shot_risks, BayesDenoiser,
    BayesNextToken, Classifier, Denoiser, NextToken,
};
use jghm::score::{Pmi, Score};
use jghm::RandomSpec;
use proptest::prelude::*;

/// The shrunken model of the standard family: both towers 2 levels × 2 children, 3 states.
fn shrunken(flip: f64) -> Jghm {
    RandomSpec { flip, ..RandomSpec::symmetric(3, 2, 2, 5) }.build().expect("valid spec")
}

/// Monte Carlo and exact values agree within `z` standard errors (z = 4: a false alarm has
/// probability 6e-5 per comparison).
fn within(mc: f64, se: f64, exact: f64, z: f64) -> bool {
    (mc - exact).abs() <= z * se
}

/// A constant score: every candidate equally likely.
struct Constant;
impl Score for Constant {
    fn name(&self) -> String {
        "constant".into()
    }
    fn score(&self, _: &[usize], _: &[usize]) -> f64 {
        0.0
    }
}

/// Every (x, y) of a model with `p(x, y)`, by enumeration of both sides.
fn all_pairs(model: &Jghm) -> Vec<(Vec<usize>, Vec<usize>, f64)> {
    let (nx, ny) = (model.image_len(), model.text_len());
    let (vx, vy) = (model.image_vocab(), model.text_vocab());
    let mut out = vec![];
    for i in 0..vx.pow(nx as u32) {
        let x = decode_sequence(i, nx, vx);
        for j in 0..vy.pow(ny as u32) {
            let y = decode_sequence(j, ny, vy);
            let p = bp::log_pxy(model, &x, &y).unwrap().exp();
            out.push((x.clone(), y, p));
        }
    }
    out
}

// ---- CLIP ---------------------------------------------------------------------------------

/// Hand-checked: a constant score gives each direction exactly `log K` on every batch, so the
/// CLIP risk (the sum of the directions) is `2 log K` with no variance; the mean would be
/// `log K`.
#[test]
fn clip_risk_is_the_sum_of_both_directions_of_batch_k() {
    let model = shrunken(0.2);
    for k in [2, 4, 7] {
        let r = clip_risk(&model, &Constant, k, 50, 1).unwrap();
        let p = &r.predictors[0];
        assert!((p.risk.value - 2.0 * (k as f64).ln()).abs() < 1e-12, "K = {k}: {}", p.risk.value);
        assert!(p.risk.stderr < 1e-12);
    }
}

/// The Bayes CLIP risk `ℓ_K^{X→Y}(PMI) + ℓ_K^{Y→X}(PMI)` by Monte Carlo agrees with the exact
/// finite-batch loss by enumeration ([`Exact::loss`]). At `K = 3`: the exact `K = 4` sum over
/// the compositions of the negatives (6·10^8 terms on 81 × 81 sequences) is beyond the
/// enumeration limit; `K` itself is pinned by the constant-score test above.
#[test]
fn clip_bayes_risk_matches_exact_enumeration() {
    let model = shrunken(0.2);
    let en = Enumeration::new(&model).unwrap();
    let ex = Exact::new(&en);
    let s = ex.scores(&Pmi { model: &model });
    let exact = ex.loss(&s, Direction::ImageToText, Batch::Finite(3)).unwrap()
        + ex.loss(&s, Direction::TextToImage, Batch::Finite(3)).unwrap();
    let r = clip_risks(&model, &[], 3, 20_000, 3).unwrap();
    assert!(
        within(r.bayes.value, r.bayes.stderr, exact, 4.0),
        "MC {} ± {} vs exact {exact}",
        r.bayes.value,
        r.bayes.stderr
    );
    // The sum, not the mean: the two differ by far more than the error.
    assert!((r.bayes.value - exact / 2.0).abs() > 50.0 * r.bayes.stderr);
}

// ---- Zero-shot ----------------------------------------------------------------------------

/// `E_X H(Y_1 | X)` exactly: every image, `p(x)` and `p(y_1 | x)` by brute-force enumeration.
fn exact_zero_shot_bayes(model: &Jghm) -> f64 {
    let (n, v) = (model.image_len(), model.image_vocab());
    let leaf = model.tree().text_leaves[0];
    (0..v.pow(n as u32))
        .map(|i| {
            let x = decode_sequence(i, n, v);
            let e = brute_force::enumerate(model, &bp::Tokens { image: Some(&x), text: None }).unwrap();
            let h: f64 = e.marginals[leaf].iter().filter(|p| **p > 0.0).map(|p| -p * p.ln()).sum();
            e.log_likelihood.exp() * h
        })
        .sum()
}

#[test]
fn zero_shot_bayes_risk_matches_exact_enumeration() {
    let model = shrunken(0.2);
    let exact = exact_zero_shot_bayes(&model);
    let r = zero_shot_risks(&model, &[], &[], 20_000, 4).unwrap();
    assert!(
        within(r.bayes.value, r.bayes.stderr, exact, 4.0),
        "MC {} ± {} vs exact {exact}",
        r.bayes.value,
        r.bayes.stderr
    );
}

/// Hand-checked: a constant score's prompt classifier is the label prior `p(c) = p(y_1 = c)`
/// (§5's `log p(c)` term), so its risk is `E_X Σ_c p(c|X) (-log p(c)) = H(Y_1)` exactly,
/// for any number of prompts. This pins the label (the *first* text token: the other
/// positions' marginals differ) and the prior term.
#[test]
fn zero_shot_of_a_constant_score_is_the_first_token_entropy() {
    let model = shrunken(0.3);
    let none = bp::marginals(&model, &jghm::Evidence::none(&model)).unwrap();
    let prior = &none[model.tree().text_leaves[0]];
    let h1: f64 = prior.iter().map(|p| -p * p.ln()).sum();
    let r = zero_shot_risks(&model, &[Classifier::Prompts(&Constant)], &[1, 8], 20_000, 5).unwrap();
    for p in &r.predictors {
        assert!(
            within(p.risk.value, p.risk.stderr, h1, 4.0),
            "M = {:?}: {} ± {} vs H(Y_1) = {h1}",
            p.prompts,
            p.risk.value,
            p.risk.stderr
        );
    }
    // Another position's entropy is not it (so the test tells the positions apart).
    let h2: f64 = none[model.tree().text_leaves[1]].iter().map(|p| -p * p.ln()).sum();
    assert!((h2 - h1).abs() > 10.0 * r.predictors[0].risk.stderr, "H(Y_1) = {h1}, H(Y_2) = {h2}");
}

/// The PMI's prompt classifier tends to Bayes as M grows (T8 with exact prompts): its excess
/// risk falls like `1/M`.
#[test]
fn zero_shot_of_the_pmi_tends_to_bayes_with_more_prompts() {
    let model = shrunken(0.2);
    let pmi = Pmi { model: &model };
    let r = zero_shot_risks(&model, &[Classifier::Prompts(&pmi)], &[4, 256], 4_000, 6).unwrap();
    let (few, many) = (&r.predictors[0].excess, &r.predictors[1].excess);
    assert!(few.value > 4.0 * few.stderr, "M = 4 excess {} ± {}", few.value, few.stderr);
    assert!(many.value < few.value / 8.0, "M = 256 excess {} vs M = 4 excess {}", many.value, few.value);
}

// ---- Vision-language -------------------------------------------------------------------

/// The incremental next-token pass equals the log-domain BP conditionals, position by
/// position, on random models of every shape (with and without a trunk).
#[test]
fn next_token_incremental_equals_log_domain_bp() {
    proptest!(ProptestConfig::with_cases(48), |(model in common::arb_model(), seed in 0u64..1000)| {
        let pairs = jghm::sample::sample_pairs(&model, 2, seed, false);
        let bayes = BayesNextToken::new(&model);
        let v = model.text_vocab();
        for pair in &pairs {
            let fast = bayes.conditionals(&pair.image, &pair.text).unwrap();
            for t in 0..model.text_len() {
                let slow = bp::next_token_conditional(&model, Some(&pair.image), &pair.text[..t]).unwrap();
                for (a, b) in fast[t * v..(t + 1) * v].iter().zip(&slow) {
                    prop_assert!((a - b).abs() < 1e-10, "position {t}: {a} vs {b}");
                }
            }
        }
    });
}

/// `(1/(N_Y-1)) Σ_{t=2}^{N_Y} -log q(y_t | y_<t, x)` exactly, summed over every pair of the
/// data model, with `q` from a predictor model (BP, log domain).
fn exact_vlm(data: &Jghm, predictor: &Jghm) -> f64 {
    let n = data.text_len();
    all_pairs(data)
        .iter()
        .map(|(x, y, p)| {
            let ce: f64 =
                (1..n).map(|t| -bp::next_token_conditional(predictor, Some(x), &y[..t]).unwrap()[y[t]].ln()).sum();
            p * ce / (n - 1) as f64
        })
        .sum()
}

#[test]
fn vlm_bayes_risk_matches_exact_enumeration() {
    let model = shrunken(0.2);
    let exact = exact_vlm(&model, &model);
    let r = vlm_risks(&model, &[], 20_000, 7).unwrap();
    assert!(
        within(r.bayes.value, r.bayes.stderr, exact, 4.0),
        "MC {} ± {} vs exact {exact}",
        r.bayes.value,
        r.bayes.stderr
    );
}

/// Bayes everywhere except at one row, where it predicts uniformly.
struct UniformAt<'m> {
    bayes: BayesNextToken<'m>,
    row: usize,
}
impl NextToken for UniformAt<'_> {
    fn name(&self) -> String {
        format!("uniform-at-{}", self.row)
    }
    fn next_token_log_probs(&self, x: &[usize], y: &[usize]) -> Vec<f64> {
        let v = self.bayes.model.text_vocab();
        let mut out = self.bayes.next_token_log_probs(x, y);
        out[self.row * v..(self.row + 1) * v].fill(-(v as f64).ln());
        out
    }
}

/// Hand-checked positions: row 0 (the first token, given the image alone) does not count, so a
/// model that errs only there has no excess; the last row counts with weight `1/(N_Y - 1)`:
/// excess `E[log V - H(Y_N | Y_<N, X)] / (N_Y - 1)`, computed exactly by enumeration.
#[test]
fn vlm_counts_positions_two_to_n_averaged() {
    let model = shrunken(0.2);
    let n = model.text_len();
    let v = model.text_vocab();
    let first = UniformAt { bayes: BayesNextToken::new(&model), row: 0 };
    let last = UniformAt { bayes: BayesNextToken::new(&model), row: n - 1 };
    let r = vlm_risks(&model, &[&first, &last], 20_000, 8).unwrap();
    assert_eq!(r.predictors[0].excess.value, 0.0, "row 0 must not count");
    let exact_last: f64 = all_pairs(&model)
        .iter()
        .map(|(x, y, p)| {
            let q = bp::next_token_conditional(&model, Some(x), &y[..n - 1]).unwrap();
            let h: f64 = q.iter().filter(|q| **q > 0.0).map(|q| -q * q.ln()).sum();
            p * ((v as f64).ln() - h) / (n - 1) as f64
        })
        .sum();
    let e = &r.predictors[1].excess;
    assert!(
        within(e.value, e.stderr, exact_last, 4.0),
        "last-row excess {} ± {} vs exact {exact_last}",
        e.value,
        e.stderr
    );
}

// ---- Denoising ----------------------------------------------------------------------------

/// The Bayes denoiser (fast marginals with soft evidence) equals the posterior mean by
/// brute-force enumeration.
#[test]
fn bayes_denoiser_is_the_brute_force_posterior_mean() {
    let model = shrunken(0.2);
    let d = BayesDenoiser::new(&model, DENOISING);
    let pairs = jghm::sample::sample_pairs(&model, 20, 9, false);
    for (i, pair) in pairs.iter().enumerate() {
        let noisy: Vec<f64> =
            pair.image.iter().enumerate().map(|(j, &v)| v as f64 + ((i * 7 + j) as f64 * 0.37).sin()).collect();
        let lambda = DENOISING.evidence(&noisy, model.image_vocab());
        let obs = SoftImage { lambda: &lambda, vocab: model.image_vocab(), text: &pair.text };
        let e = brute_force::enumerate(&model, &obs).unwrap();
        let fast = d.denoise(&noisy, &pair.text);
        for (j, &u) in model.tree().image_leaves.iter().enumerate() {
            let mean: f64 = e.marginals[u].iter().enumerate().map(|(v, p)| v as f64 * p).sum();
            assert!((fast[j] - mean).abs() < 1e-10, "leaf {j}: {} vs {mean}", fast[j]);
        }
    }
}

/// The paper's plain estimator `Σ_i (D(x̃, y)_i - v_i)²` at the sampled values, beside the
/// Rao-Blackwellised one: independent draws, so agreement checks the reduction.
fn plain_denoise(model: &Jghm, d: &dyn Denoiser, n: usize, seed: u64) -> (f64, f64) {
    use rand_distr::{Distribution, StandardNormal};
    let mut rng = jghm::rng::stream(seed, 0);
    let sampler = jghm::sample::Sampler::new(model);
    let losses: Vec<f64> = (0..n)
        .map(|_| {
            let pair = sampler.pair(&mut rng, false);
            let noisy: Vec<f64> = pair
                .image
                .iter()
                .map(|&v| v as f64 + <StandardNormal as Distribution<f64>>::sample(&StandardNormal, &mut rng))
                .collect();
            d.denoise(&noisy, &pair.text).iter().zip(&pair.image).map(|(e, &v)| (e - v as f64).powi(2)).sum()
        })
        .collect();
    let est = jghm::info::Estimate::from_samples(&losses);
    (est.value, est.stderr)
}

/// A denoiser that ignores everything: `D_i = c`.
struct ConstantDenoiser(f64);
impl Denoiser for ConstantDenoiser {
    fn name(&self) -> String {
        "constant".into()
    }
    fn denoise(&self, noisy: &[f64], _: &[usize]) -> Vec<f64> {
        vec![self.0; noisy.len()]
    }
}

/// Hand-checked: a constant denoiser's risk is `Σ_i E(v_i - c)²`, a sum over the image leaves
/// (not a mean), from the exact leaf marginals.
#[test]
fn denoise_risk_sums_squared_errors_over_leaves() {
    let model = shrunken(0.2);
    let m = bp::marginals(&model, &jghm::Evidence::none(&model)).unwrap();
    let c = 1.0;
    let exact: f64 = model
        .tree()
        .image_leaves
        .iter()
        .map(|&u| m[u].iter().enumerate().map(|(v, p)| p * (v as f64 - c).powi(2)).sum::<f64>())
        .sum();
    let r = denoise_risk(&model, &ConstantDenoiser(c), DENOISING, 20_000, 10).unwrap();
    let p = &r.predictors[0].risk;
    assert!(within(p.value, p.stderr, exact, 4.0), "{} ± {} vs exact {exact}", p.value, p.stderr);
}

/// The Bayes denoising risk two ways: Rao-Blackwellised `E Σ Var[v_i | x̃, y]` against the
/// plain squared error of the Bayes denoiser on independent samples; and the Bayes denoiser
/// as a predictor has no excess.
#[test]
fn denoise_bayes_risk_two_ways() {
    let model = shrunken(0.2);
    let d = BayesDenoiser::new(&model, DENOISING);
    let r = denoise_risks(&model, &[&d], DENOISING, 20_000, 11).unwrap();
    let (plain, plain_se) = plain_denoise(&model, &d, 20_000, 12);
    let se = (r.bayes.stderr.powi(2) + plain_se.powi(2)).sqrt();
    assert!(
        within(r.bayes.value, se, plain, 4.0),
        "RB {} ± {} vs plain {plain} ± {plain_se}",
        r.bayes.value,
        r.bayes.stderr
    );
    assert!(r.predictors[0].excess.value.abs() < 1e-12);
    // The RB estimator is the point: a smaller standard error than the plain one.
    assert!(r.bayes.stderr < plain_se);
}

// ---- Mis-specified BP -------------------------------------------------------------------

/// BP of the ε = 0.2 model on data of the ε = 0.05 model (same seed): its excess equals the
/// exact expected KL, for the vision-language and the zero-shot task; the data and the
/// predictor's model are kept apart.
#[test]
fn misspecified_bp_excess_matches_exact_kl() {
    let (data, assumed) = (shrunken(0.05), shrunken(0.2));
    let wrong = BayesNextToken::new(&assumed);
    let r = vlm_risk(&data, &wrong, 20_000, 13).unwrap();
    let exact = exact_vlm(&data, &assumed);
    let p = &r.predictors[0];
    assert!(
        within(p.risk.value, p.risk.stderr, exact, 4.0),
        "VLM {} ± {} vs exact {exact}",
        p.risk.value,
        p.risk.stderr
    );
    assert!(p.excess.value > 10.0 * p.excess.stderr, "mis-specification must cost: {:?}", p.excess);

    let (n, v) = (data.image_len(), data.image_vocab());
    let leaf = data.tree().text_leaves[0];
    let exact_zs: f64 = (0..v.pow(n as u32))
        .map(|i| {
            let x = decode_sequence(i, n, v);
            let p = bp::marginals(&data, &bp::Tokens { image: Some(&x), text: None }).unwrap();
            let q = bp::marginals(&assumed, &bp::Tokens { image: Some(&x), text: None }).unwrap();
            bp::log_px(&data, &x).unwrap().exp() * p[leaf].iter().zip(&q[leaf]).map(|(p, q)| -p * q.ln()).sum::<f64>()
        })
        .sum();
    let z = zero_shot_risks(&data, &[Classifier::Bayes(&assumed)], &[], 20_000, 14).unwrap();
    let p = &z.predictors[0];
    assert!(
        within(p.risk.value, p.risk.stderr, exact_zs, 4.0),
        "zero-shot {} ± {} vs exact {exact_zs}",
        p.risk.value,
        p.risk.stderr
    );
}

// ---- Reproducibility ----------------------------------------------------------------------

/// One thread or two: the same numbers, bit for bit, for every estimator.
#[test]
fn risks_do_not_depend_on_the_thread_count() {
    let model = shrunken(0.2);
    let run = || {
        let pmi = Pmi { model: &model };
        let d = BayesDenoiser::new(&model, DENOISING);
        let b = BayesNextToken::new(&model);
        [
            clip_risk(&model, &pmi, 4, 300, 1).unwrap().bayes.value,
            zero_shot_risks(&model, &[Classifier::Prompts(&pmi)], &[3], 300, 2).unwrap().predictors[0].risk.value,
            denoise_risk(&model, &d, DENOISING, 300, 3).unwrap().bayes.value,
            vlm_risk(&model, &b, 300, 4).unwrap().bayes.value,
        ]
    };
    let pool = |n| rayon::ThreadPoolBuilder::new().num_threads(n).build().unwrap();
    let one = pool(1).install(run);
    let two = pool(2).install(run);
    assert_eq!(one.map(f64::to_bits), two.map(f64::to_bits));
}

/// Bad arguments end in an error, not a panic or a NaN.
#[test]
fn bad_arguments_are_errors() {
    let model = shrunken(0.2);
    assert!(clip_risk(&model, &Constant, 1, 100, 1).is_err());
    assert!(clip_risk(&model, &Constant, 4, 1, 1).is_err());
    assert!(zero_shot_risks(&model, &[Classifier::Prompts(&Constant)], &[0], 100, 1).is_err());
    assert!(denoise_risk(&model, &ConstantDenoiser(0.0), ValueNoise { sigma: 0.0 }, 100, 1).is_err());
    let _ = Part::Image;
}
