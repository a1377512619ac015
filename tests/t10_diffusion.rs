//! T10: the exact Bayes denoiser `D = E[e_X | X_t, y]` by BP with soft leaf evidence, the
//! denoiser `D_g` through a statistic of the text, and
//! `E‖D - D_g‖² ≤ N_X I(X;Y|X_t,G) ≤ 2 N_X I(X;Y|X_t,G) ≤ 2 N_X Suff_X(g)` at every noise level;
//! the DDPM sampler driven by `D` approaches the exact sampler's TV (`proofs/T10-diffusion.md`).

mod common;
mod tiny;

use jghm::downstream::diffusion::{self, Condition, Schedule, TextClasses};
use jghm::downstream::laws::SideLaw;
use jghm::downstream::noise::NoiseLevel;
use jghm::info::{self, Enumeration};
use jghm::model::{Jghm, Part};
use jghm::rng;
use jghm::sufficiency::{Evaluator, Gap};
use proptest::prelude::*;
use tiny::*;

/// The grid of noise levels: the 8 steps of a cosine schedule and pure noise `α = 0`.
fn grid() -> Vec<NoiseLevel> {
    let s = Schedule::cosine(8);
    let mut levels: Vec<NoiseLevel> = (1..=8).map(|t| s.level(t)).collect();
    levels.push(NoiseLevel { alpha: 0.0, sigma: 1.0 });
    levels
}

/// `p(x | x_t, y)` straight from the Gaussian density and the brute-force joint (no BP, no
/// soft evidence): `∝ p(x, y) exp(-‖x_t - α e_x‖² / (2σ²))`, then its mean `E[e_X]`.
fn brute_mean(
    model: &Jghm,
    brute: &(Vec<Vec<usize>>, Vec<Vec<usize>>, Vec<f64>),
    y: usize,
    x_t: &[f64],
    l: NoiseLevel,
) -> Vec<f64> {
    let (xs, ys, p) = brute;
    let v = model.image_vocab();
    let logs: Vec<f64> = xs
        .iter()
        .enumerate()
        .map(|(i, x)| {
            let d2: f64 =
                (0..x.len() * v).map(|k| (x_t[k] - l.alpha * f64::from(u8::from(x[k / v] == k % v))).powi(2)).sum();
            p[i * ys.len() + y].ln() - d2 / (2.0 * l.sigma * l.sigma)
        })
        .collect();
    let w = jghm::logspace::normalise_log(&logs).unwrap();
    let mut mean = vec![0.0; x_t.len()];
    for (x, wx) in xs.iter().zip(&w) {
        for (i, &xi) in x.iter().enumerate() {
            mean[i * v + xi] += wx;
        }
    }
    mean
}

proptest! {
    #![proptest_config(config(10))]

    /// The BP denoiser equals the posterior mean from the Gaussian density and brute force, for
    /// the text, a statistic of it, and no condition, at every level of the grid (1e-10).
    #[test]
    fn t10_denoiser_is_the_posterior_mean(model in arb_any_tiny_model(27.0), seed in any::<u64>()) {
        let brute = brute_joint(&model);
        let ny = brute.1.len();
        let mut r = rng::stream(seed, 0);
        let pair = jghm::sample::sample_pairs(&model, 1, seed, false).remove(0);
        let y = jghm::downstream::sequence_index(&pair.text, model.text_vocab());
        let classes = TextClasses::new(&model, "map-root".parse().unwrap()).unwrap();
        let through = classes.condition_of(&pair.text).unwrap();
        let Condition::Statistic { texts, .. } = &through else { unreachable!() };
        let members: Vec<usize> = texts.iter().map(|t| jghm::downstream::sequence_index(t, model.text_vocab())).collect();
        for l in grid().into_iter().filter(|l| l.alpha > 0.0) {
            let x_t = l.forward(&pair.image, model.image_vocab(), &mut r);
            let d = diffusion::denoise(&model, &Condition::Text(pair.text.clone()), &x_t, l).unwrap();
            let want = brute_mean(&model, &brute, y, &x_t, l);
            for (a, b) in d.iter().zip(&want) {
                prop_assert!((a - b).abs() < 1e-10, "D {a} vs brute {b} at alpha {}", l.alpha);
            }
            // Through g and unconditional: the brute-force joint summed over the texts seen.
            for (cond, seen) in [(&through, members.clone()), (&Condition::None, (0..ny).collect::<Vec<_>>())] {
                let mut summed = brute.clone();
                for i in 0..brute.0.len() {
                    let s: f64 = seen.iter().map(|&j| brute.2[i * ny + j]).sum();
                    summed.2[i * ny] = s;
                }
                let want = brute_mean(&model, &summed, 0, &x_t, l);
                let d = diffusion::denoise(&model, cond, &x_t, l).unwrap();
                for (a, b) in d.iter().zip(&want) {
                    prop_assert!((a - b).abs() < 1e-10, "D_g {a} vs brute {b}");
                }
            }
        }
    }

    /// Per sample, `‖D - D_g‖² ≤ N_X KL(p(x|x_t,y) ‖ p(x|x_t,g(y)))` (hence `≤ 2 N_X KL`), for every
    /// text statistic and level; in expectation `I(X;Y|X_t,G) ≤ Suff_X(g)` (4 standard errors),
    /// with equality at `α = 0` computed exactly over the texts (1e-10).
    #[test]
    fn t10_denoiser_gap_below_sufficiency(model in arb_any_tiny_model(27.0), seed in any::<u64>()) {
        let en = Enumeration::new(&model).unwrap();
        let images = SideLaw::new(&model, Part::Image).unwrap();
        let nx = model.image_len() as f64;
        for st in ["map-root", "first-tokens:1", "masked-posterior:1", "root-posterior"] {
            let st = st.parse().unwrap();
            let classes = Evaluator::new(&model, Part::Text, st).unwrap().classes(&en.text);
            let suff = Gap::new(&en, Part::Text, classes).kl_form();
            let by_class = TextClasses::new(&model, st).unwrap();
            for (k, l) in grid().into_iter().enumerate() {
                let r = diffusion::t10_level(&en, st, l, 48, seed ^ k as u64).unwrap();
                let info = r.conditional_information;
                prop_assert!(info.value <= suff + 4.0 * info.stderr + 1e-12, "{st} alpha {}: I {info:?} > Suff {suff}", l.alpha);
                prop_assert!(r.squared_distance.value <= nx * info.value + 1e-12);
                let mut rr = rng::stream(seed, 1 + k as u64);
                for pair in jghm::sample::sample_pairs(&model, 4, seed ^ (k as u64) << 8, false) {
                    let x_t = l.forward(&pair.image, model.image_vocab(), &mut rr);
                    let s = diffusion::t10_sample(&model, &images, &pair.text, &by_class.condition_of(&pair.text).unwrap(), &x_t, l).unwrap();
                    prop_assert!(s.squared_distance <= nx * s.kl + 1e-12, "{st}: {s:?}");
                }
            }
            // α = 0: X_t carries nothing, so I(X;Y|X_t,G) = I(X;Y|G) = Suff_X(g), summed exactly over y.
            let l = NoiseLevel { alpha: 0.0, sigma: 1.0 };
            let x_t = vec![0.0; model.image_len() * model.image_vocab()];
            let exact: f64 = (0..en.text.len()).map(|j| {
                let y = &en.text.tokens[j];
                let s = diffusion::t10_sample(&model, &images, y, &by_class.condition_of(y).unwrap(), &x_t, l).unwrap();
                en.text.p(j) * s.kl
            }).sum();
            prop_assert!((exact - suff).abs() < 1e-10, "{st}: I at alpha 0 {exact} vs Suff {suff}");
        }
    }
}

/// The cosine schedule is variance preserving and decreasing, with `β_t ≤ 0.999`.
#[test]
fn t10_schedule_is_variance_preserving() {
    let s = Schedule::cosine(400);
    for t in 1..=400 {
        let l = s.level(t);
        assert!((l.alpha.powi(2) + l.sigma.powi(2) - 1.0).abs() < 1e-12);
        assert!(s.alpha_bar[t] < s.alpha_bar[t - 1] && s.beta(t) <= 0.999 + 1e-12 && s.beta(t) > 0.0);
    }
}

/// DDPM driven by the exact denoiser: with 200 steps its TV to `p(x | y)` is within 0.02 of the
/// TV of as many exact BP draws, and with 5 steps (where the Gaussian reverse kernel is poor) it
/// is clearly farther. The model is `jghm model random --states 3 --children 2 --depth 2 --seed 1`
/// (81 images), the text `1,1,1,1`, seeds fixed.
#[test]
fn t10_ddpm_approaches_the_exact_sampler() {
    let model = jghm::RandomSpec::symmetric(3, 2, 2, 1).build().unwrap();
    let images = SideLaw::new(&model, Part::Image).unwrap();
    let y = vec![1, 1, 1, 1];
    let cond = Condition::Text(y);
    let law = cond.law(&model, &images).unwrap();
    let n = 4000;
    let reference = diffusion::total_variation(&images, &law, &diffusion::sample_exact(&model, &cond, n, 1));
    let tv = |steps| {
        let xs = diffusion::ddpm(&model, &cond, &Schedule::cosine(steps), n, 2).unwrap();
        diffusion::total_variation(&images, &law, &xs)
    };
    let (coarse, fine) = (tv(5), tv(200));
    assert!((fine - reference).abs() < 0.02, "200 steps: TV {fine} vs exact sampler {reference}");
    assert!(coarse > reference + 0.03, "5 steps: TV {coarse} not above the floor {reference}");
    assert!(info::side_size(&model, Part::Image) <= 81.0);
}
