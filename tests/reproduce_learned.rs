//! The learned side of `jghm reproduce` (the paper's simulations): every new backward pass against
//! central finite differences in f64 (per-position transformer with causal attention and a
//! real-valued input, the guided class's BP-message penalty, the denoiser and next-token
//! heads), the causal mask, and short trainings on a small model that must beat chance on each
//! task by a wide margin, with valid outputs and thread-count-independent parameters.
//!
//! Finite differences: as in tests/learn_gradients.rs, `h = 1e-5`, error bound
//! `1e-6 · max(|analytic|, |numeric|) + 1e-9 · max(1, |ℓ(θ)|/10)` per coordinate. The
//! absolute floor there is derived for `|ℓ| ≈ 10` (round-off of the central difference
//! `≈ ε_mach |ℓ| / h`); the guided objective carries the penalty of random read-outs
//! (`|ℓ| ≈ 10²`), so the floor scales with `|ℓ|`: it matters only for gradients that are
//! exactly zero (e.g. the key biases, to which attention is invariant).

use std::sync::Arc;
use std::time::Instant;

use jghm::learn::frozen_heads::{ConditionalHead, DenoiserHead, HeadShape, NextTokenHead};
use jghm::learn::guided::GuidedTransformer;
use jghm::learn::joint_heads::{JointDenoiser, JointNextToken};
use jghm::learn::{Encoder, Transformer, TransformerShape};
use jghm::logspace::log_sum_exp;
use jghm::model::{Jghm, Part};
use jghm::random_family::RandomSpec;
use jghm::reproduce::learned::{
    train_learned_steps, Checkpoints, LearnedClass, LearnedModels, Negatives, Plan, Protocol, Steps,
};
use jghm::rng;
use jghm::sample::sample_pairs;
use jghm::score::{Pmi, Score};
use rand::Rng as _;
use rand_distr::{Distribution, StandardNormal};

const H: f64 = 1e-5;
const REL: f64 = 1e-6;
const ABS: f64 = 1e-9;

fn normals(rng: &mut rng::Rng, n: usize) -> Vec<f64> {
    (0..n).map(|_| StandardNormal.sample(rng)).collect()
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Central differences of `loss` at `theta` against `analytic`, coordinate by coordinate.
fn check(what: &str, theta: &[f64], analytic: &[f64], mut loss: impl FnMut(&[f64]) -> f64) {
    assert_eq!(theta.len(), analytic.len(), "{what}: gradient length");
    let mut t = theta.to_vec();
    let floor = ABS * (loss(&t).abs() / 10.0).max(1.0);
    for i in 0..t.len() {
        let keep = t[i];
        t[i] = keep + H;
        let up = loss(&t);
        t[i] = keep - H;
        let down = loss(&t);
        t[i] = keep;
        let numeric = (up - down) / (2.0 * H);
        let err = (analytic[i] - numeric).abs();
        let bound = REL * analytic[i].abs().max(numeric.abs()) + floor;
        assert!(err <= bound, "{what}[{i}]: analytic {} vs numeric {numeric} (error {err:e} > {bound:e})", analytic[i]);
    }
}

fn tokens(rng: &mut rng::Rng, n: usize, vocab: usize) -> Vec<u32> {
    (0..n).map(|_| rng.random_range(0..vocab as u32)).collect()
}

/// The per-position transformer (no pooling, projection per position) with a real-valued
/// input added to the embedding, bidirectional and causal: gradient in (parameters, input).
#[test]
fn per_position_transformer_backward_matches_finite_differences() {
    for causal in [false, true] {
        let enc = Transformer::new(TransformerShape { vocab: 3, len: 4, width: 8, layers: 2, heads: 2, out: 3 });
        let (b, t, c, p) = (2, 4, 8, 3);
        let n = b * t;
        let mut rng = rng::stream(31, causal as u64);
        let np = Encoder::<f64>::num_params(&enc);
        let theta: Vec<f64> = normals(&mut rng, np + n * c).iter().map(|x| 0.5 * x).collect();
        let toks = tokens(&mut rng, n, 3);
        let dout = normals(&mut rng, n * p);
        let mut cache = Encoder::<f64>::new_cache(&enc, b);
        let mut fwd = |th: &[f64]| {
            let mut out = vec![0.0; n * p];
            enc.forward_positions(&th[..np], &toks, Some(&th[np..]), b, &mut cache, causal, &mut out);
            dot(&out, &dout)
        };
        let mut cache2 = Encoder::<f64>::new_cache(&enc, b);
        let mut out = vec![0.0; n * p];
        enc.forward_positions(&theta[..np], &toks, Some(&theta[np..]), b, &mut cache2, causal, &mut out);
        let (mut dw, mut dx) = (vec![0.0; np], vec![0.0; n * c]);
        enc.backward_positions(&theta[..np], &toks, b, &mut cache2, &dout, Some(&mut dx), &mut dw);
        check(&format!("positions causal={causal}"), &theta, &[dw, dx].concat(), &mut fwd);
    }
}

fn tiny_model(seed: u64) -> Jghm {
    let mut spec = RandomSpec::symmetric(3, 2, 2, seed);
    spec.flip = 0.2;
    spec.build().unwrap()
}

/// The guided encoder: `ℓ(θ) = ⟨f(x), dout⟩ + weight · Σ_samples pen(x)`, gradient in every
/// parameter (transformer and read-outs), both towers, three blocks against two tree levels.
#[test]
fn guided_penalty_backward_matches_finite_differences() {
    let model = Arc::new(tiny_model(3));
    for part in [Part::Image, Part::Text] {
        let inner = Transformer::new(TransformerShape { vocab: 3, len: 4, width: 8, layers: 3, heads: 2, out: 3 });
        let enc = GuidedTransformer::new(inner, model.clone(), part, 0.7).unwrap();
        let b = 3;
        let mut rng = rng::stream(41, part as u64);
        let np = Encoder::<f64>::num_params(&enc);
        let theta: Vec<f64> = normals(&mut rng, np).iter().map(|x| 0.5 * x).collect();
        let toks = tokens(&mut rng, b * 4, 3);
        let dout = normals(&mut rng, b * 3);
        let mut cache = Encoder::<f64>::new_cache(&enc, b);
        let mut out = vec![0.0; b * 3];
        enc.forward(&theta, &toks, b, &mut cache, &mut out);
        assert!(cache.penalty > 0.0, "random read-outs do not match BP's messages");
        let mut grad = vec![0.0; np];
        enc.backward(&theta, &toks, b, &mut cache, &dout, &mut grad);
        let mut cache2 = Encoder::<f64>::new_cache(&enc, b);
        check(&format!("guided {part:?}"), &theta, &grad, |th| {
            let mut out = vec![0.0; b * 3];
            enc.forward(th, &toks, b, &mut cache2, &mut out);
            dot(&out, &dout) + enc.weight * cache2.penalty
        });
    }
}

/// A head's summed loss against its parameters (the condition and targets fixed).
fn check_head<H: ConditionalHead<f64>>(what: &str, head: &H, inp: &[f64], target: &[f64], b: usize, seed: u64) {
    let mut rng = rng::stream(seed, 0);
    let np = head.num_params();
    let theta: Vec<f64> = normals(&mut rng, np).iter().map(|x| 0.5 * x).collect();
    let cond = normals(&mut rng, b * head.cond_dim());
    let mut cache = head.new_cache(b);
    head.forward(&theta, inp, &cond, b, &mut cache);
    let mut grad = vec![0.0; np];
    let scale = 0.8;
    let loss = head.loss_and_grad(&theta, &cond, target, b, scale, &mut cache, &mut grad);
    assert!(loss.is_finite() && loss > 0.0);
    let mut scratch = vec![0.0; np];
    check(what, &theta, &grad, |th| {
        head.forward(th, inp, &cond, b, &mut cache);
        scale * head.loss_and_grad(th, &cond, target, b, scale, &mut cache, &mut scratch)
    });
}

#[test]
fn denoiser_head_backward_matches_finite_differences() {
    let head = DenoiserHead::new(4, 3, 2, HeadShape { width: 8, layers: 2, heads: 2 });
    let mut rng = rng::stream(51, 0);
    let b = 3;
    let target: Vec<f64> = tokens(&mut rng, b * 4, 3).iter().map(|&v| v as f64).collect();
    let inp: Vec<f64> = target.iter().map(|v| v + Distribution::<f64>::sample(&StandardNormal, &mut rng)).collect();
    check_head("denoiser", &head, &inp, &target, b, 52);
}

#[test]
fn next_token_head_backward_matches_finite_differences() {
    let head = NextTokenHead::new(4, 3, 2, HeadShape { width: 8, layers: 2, heads: 2 });
    let mut rng = rng::stream(61, 0);
    let b = 3;
    let y: Vec<f64> = tokens(&mut rng, b * 4, 3).iter().map(|&v| v as f64).collect();
    check_head("next-token", &head, &y, &y, b, 62);
}

/// Row `t` of the next-token model depends on `y_{<t}` only: changing `y_k` leaves rows
/// `0..=k` unchanged and changes row `k + 1`.
#[test]
fn next_token_head_is_causal() {
    let head = NextTokenHead::new(6, 4, 2, HeadShape { width: 8, layers: 2, heads: 2 });
    let mut rng = rng::stream(71, 0);
    let theta = normals(&mut rng, ConditionalHead::<f64>::num_params(&head));
    let cond = normals(&mut rng, 2);
    let y = [0.0, 1.0, 2.0, 3.0, 0.0, 1.0];
    let rows = |y: &[f64]| {
        let mut cache = head.new_cache(1);
        head.forward(&theta, y, &cond, 1, &mut cache);
        head.outputs(&cache, 1).to_vec()
    };
    let base = rows(&y);
    for k in 0..5 {
        let mut z = y;
        z[k] = (z[k] + 1.0) % 4.0;
        let changed = rows(&z);
        assert_eq!(base[..(k + 1) * 4], changed[..(k + 1) * 4], "changing y_{k} moved an earlier row");
        assert_ne!(base[(k + 1) * 4..(k + 2) * 4], changed[(k + 1) * 4..(k + 2) * 4], "row {} ignores y_{k}", k + 1);
    }
}

/// A plan small enough for a test: encoders of 2 blocks of width 32, heads of 1 block,
/// in-batch negatives (a test's few steps learn more from them).
fn small_plan(class: LearnedClass) -> Plan {
    let protocol = Protocol { negatives: Negatives::InBatch, ..Protocol::default() };
    let mut plan = Plan::new(class, true, &protocol);
    plan.encoder = HeadShape { width: 32, layers: if class == LearnedClass::Shallow { 1 } else { 2 }, heads: 2 };
    plan.denoiser_head = HeadShape { width: 32, layers: 1, heads: 2 };
    plan.next_token_head = plan.denoiser_head;
    plan.clip_batch = 64;
    plan.head_batch = 32;
    plan.clip_lr = (3e-3, 3e-5);
    plan.head_lr = (3e-3, 3e-5);
    plan
}

/// Held-out figures of a learned model: the CLIP risk at `K = 4` (sum of both directions,
/// groups of 4 independent pairs), the denoising risk (σ = 1, summed over leaves) and the
/// mean next-token cross-entropy, on `n` fresh pairs.
struct Risks {
    /// `None` for the joint class (no CLIP score).
    clip: Option<f64>,
    denoise: f64,
    next_token: f64,
}

fn clip_risk_k4(score: &dyn Score, pairs: &[jghm::sample::Pair]) -> f64 {
    let mut total = 0.0;
    let groups = pairs.chunks_exact(4);
    let n = groups.len();
    for g in groups {
        let xs: Vec<Vec<usize>> = g.iter().map(|p| p.image.clone()).collect();
        let ys: Vec<Vec<usize>> = g.iter().map(|p| p.text.clone()).collect();
        let s = score.grid(&xs, &ys);
        for i in 0..4 {
            let row: Vec<f64> = (0..4).map(|j| s[i * 4 + j]).collect();
            let col: Vec<f64> = (0..4).map(|j| s[j * 4 + i]).collect();
            total += log_sum_exp(&row) + log_sum_exp(&col) - 2.0 * s[i * 4 + i];
        }
    }
    total / (4 * n) as f64
}

fn risks(model: &Jghm, m: &LearnedModels, n: usize) -> Risks {
    let pairs = sample_pairs(model, n, 999, false);
    let mut rng = rng::stream(998, 0);
    let (mut denoise, mut nt) = (0.0, 0.0);
    for p in &pairs {
        let noisy: Vec<f64> =
            p.image.iter().map(|&v| v as f64 + Distribution::<f64>::sample(&StandardNormal, &mut rng)).collect();
        let d = m.denoiser().denoise(&noisy, &p.text);
        assert_eq!(d.len(), model.image_len());
        assert!(d.iter().all(|v| v.is_finite()), "denoiser output not finite");
        denoise += d.iter().zip(&p.image).map(|(a, &v)| (a - v as f64).powi(2)).sum::<f64>();
        let lp = m.next_token().next_token_log_probs(&p.image, &p.text);
        let v = model.text_vocab();
        assert_eq!(lp.len(), p.text.len() * v);
        for (row, &y) in lp.chunks_exact(v).zip(&p.text) {
            assert!(log_sum_exp(row).abs() < 1e-5, "a row of log-probabilities does not normalise");
            nt -= row[y] / p.text.len() as f64;
        }
    }
    Risks { clip: m.score().map(|s| clip_risk_k4(s, &pairs)), denoise: denoise / n as f64, next_token: nt / n as f64 }
}

/// A small model with strong structure: 4 states, 2 levels × 3 children (9 leaves), flip 0.1.
fn small_model() -> Jghm {
    let mut spec = RandomSpec::symmetric(4, 3, 2, 5);
    spec.flip = 0.1;
    spec.build().unwrap()
}

/// Training lowers each risk far below its chance level: CLIP below `2 log 4` (uninformative
/// score) by at least 3/4 of the gap to the Bayes value (the exact PMI on the same pairs);
/// denoising below 40% of the better trivial denoiser's risk (the noisy value itself, `N σ²`,
/// or the per-leaf marginal mean, `Σ_i Var v_i`); next-token cross-entropy below half of
/// `log V` (uniform guessing). (Measured when written with 300 steps each and 2,000 pairs: CLIP 1.12 against
/// chance 2.77 and Bayes 1.05; denoising 1.99 against 9.0; next-token 0.48 against 1.39.)
/// The joint class (no CLIP) is held to the same bounds on its two tasks.
#[test]
fn training_beats_chance_on_every_task() {
    let model = small_model();
    let steps = Steps { clip: 200, denoiser: 200, next_token: 200 };
    for class in [LearnedClass::Standard, LearnedClass::Guided, LearnedClass::Joint] {
        let m = train_learned_steps(&model, &small_plan(class), steps, 3, None).unwrap();
        let done = if class == LearnedClass::Joint { Steps { clip: 0, ..steps } } else { steps };
        assert_eq!(m.report.done, done);
        let r = risks(&model, &m, 1000);
        let pairs = sample_pairs(&model, 1000, 999, false);
        let bayes_clip = clip_risk_k4(&Pmi { model: &model }, &pairs);
        let chance_clip = 2.0 * 4f64.ln();
        // trivial denoisers
        let n_x = model.image_len() as f64;
        let values: Vec<Vec<f64>> = pairs.iter().map(|p| p.image.iter().map(|&v| v as f64).collect()).collect();
        let var_sum: f64 = (0..model.image_len())
            .map(|i| {
                let mean = values.iter().map(|v| v[i]).sum::<f64>() / values.len() as f64;
                values.iter().map(|v| (v[i] - mean).powi(2)).sum::<f64>() / values.len() as f64
            })
            .sum();
        let chance_denoise = n_x.min(var_sum);
        let log_v = (model.text_vocab() as f64).ln();
        eprintln!(
            "{class:?}: CLIP {:?} (chance {chance_clip:.3}, Bayes {bayes_clip:.3}); denoise {:.3} (trivial {chance_denoise:.3}); next-token {:.3} (chance {log_v:.3}); {}",
            r.clip,
            r.denoise,
            r.next_token,
            m.describe()
        );
        assert_eq!(
            r.clip.is_none(),
            class == LearnedClass::Joint,
            "{class:?}: a CLIP score exactly when the class has CLIP"
        );
        if let Some(clip) = r.clip {
            assert!(clip < chance_clip - 0.75 * (chance_clip - bayes_clip), "{class:?}: CLIP risk {clip} too high");
        }
        assert!(r.denoise < 0.4 * chance_denoise, "{class:?}: denoising risk {} too high", r.denoise);
        assert!(r.next_token < 0.5 * log_v, "{class:?}: next-token risk {} too high", r.next_token);
    }
}

/// The same steps and seed give the same models whatever the thread count.
#[test]
fn learned_models_do_not_depend_on_the_thread_count() {
    let model = small_model();
    let steps = Steps { clip: 4, denoiser: 3, next_token: 3 };
    let run = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        pool.install(|| {
            let m = train_learned_steps(&model, &small_plan(LearnedClass::Guided), steps, 8, None).unwrap();
            let p = &sample_pairs(&model, 20, 4, false)[..];
            let xs: Vec<Vec<usize>> = p.iter().map(|q| q.image.clone()).collect();
            let ys: Vec<Vec<usize>> = p.iter().map(|q| q.text.clone()).collect();
            let noisy: Vec<f64> = xs[0].iter().map(|&v| v as f64 + 0.3).collect();
            (
                m.score().unwrap().grid(&xs, &ys),
                m.denoiser().denoise(&noisy, &ys[0]),
                m.next_token().next_token_log_probs(&xs[0], &ys[0]),
            )
        })
    };
    assert_eq!(run(1), run(3));
}

/// A training fixed by steps that is cut after every step (each part's checkpoint saved at
/// its deadline) and continued from its checkpoints ends with exactly the models of the uncut
/// training: the CLIP pair (standard and guided classes) and both heads (also the joint class's).
/// The batches are a function of the seed and the step, and a checkpoint holds the parameters,
/// the optimiser's moments and the losses. Checkpoints of another seed are refused.
#[test]
fn a_training_cut_after_every_step_and_continued_equals_the_uncut_one() {
    let model = small_model();
    let steps = Steps { clip: 60, denoiser: 7, next_token: 5 };
    let dir = std::env::temp_dir().join(format!("jghm-training-cut-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let pairs = sample_pairs(&model, 20, 4, false);
    let xs: Vec<Vec<usize>> = pairs.iter().map(|q| q.image.clone()).collect();
    let ys: Vec<Vec<usize>> = pairs.iter().map(|q| q.text.clone()).collect();
    let noisy: Vec<f64> = xs[0].iter().map(|&v| v as f64 + 0.3).collect();
    let outputs = |m: &LearnedModels| {
        (
            m.score().map(|s| s.grid(&xs, &ys)),
            m.denoiser().denoise(&noisy, &ys[0]),
            m.next_token().next_token_log_probs(&xs[0], &ys[0]),
            format!("{:?}", m.report.final_losses),
        )
    };
    for class in [LearnedClass::Standard, LearnedClass::Guided, LearnedClass::Joint] {
        let plan = small_plan(class);
        let uncut = train_learned_steps(&model, &plan, steps, 5, None).unwrap();
        let stem = dir.join(class.name());
        let at_once = Checkpoints { stem: stem.clone(), deadline: Some(Instant::now()) };
        // The first CLIP call does the first step and one more; every later call, one step.
        let mut expected: Vec<String> = vec![];
        if class != LearnedClass::Joint {
            expected.extend(
                (2..60).map(|k| format!("the CLIP training of the {} class stopped at step {k} of 60", class.name())),
            );
        }
        expected.extend(
            (1..7).map(|k| format!("the denoiser head of the {} class stopped at step {k} of 7", class.name())),
        );
        expected.extend(
            (1..5).map(|k| format!("the next-token head of the {} class stopped at step {k} of 5", class.name())),
        );
        let mut errors = vec![];
        let continued = loop {
            match train_learned_steps(&model, &plan, steps, 5, Some(&at_once)) {
                Ok(m) => break m,
                Err(e) => errors.push(e),
            }
            if errors.len() == 1 && class != LearnedClass::Joint {
                let other_seed = train_learned_steps(&model, &plan, steps, 6, Some(&at_once)).err().expect("refused");
                assert!(other_seed.contains("another training"), "{class:?}: {other_seed}");
            }
            assert!(errors.len() <= expected.len(), "{class:?}: {:?}", errors.last());
        };
        assert_eq!(errors.len(), expected.len(), "{class:?}");
        for (e, x) in errors.iter().zip(&expected) {
            assert!(e.starts_with(x.as_str()), "{class:?}: {e} (expected {x})");
        }
        assert_eq!(continued.report.done, uncut.report.done, "{class:?}");
        assert_eq!(outputs(&continued), outputs(&uncut), "{class:?}: the continued training's models");
        // The last call continued every part from its checkpoint, so its seconds are of that
        // call alone, and the rows' note says so.
        let clip_at = if class == LearnedClass::Joint { 0 } else { 60 };
        assert_eq!(uncut.report.resumed, Steps { clip: 0, denoiser: 0, next_token: 0 }, "{class:?}");
        assert_eq!(continued.report.resumed, Steps { clip: clip_at, denoiser: 7, next_token: 4 }, "{class:?}");
        let note = continued.describe();
        assert!(note.contains("7 steps, continued from its checkpoint at step 7: the last 0 in"), "{note}");
        assert!(note.contains("5 steps, continued from its checkpoint at step 4: the last 1 in"), "{note}");
        if class != LearnedClass::Joint {
            assert!(note.contains("CLIP 60 steps, continued from its checkpoint at step 60: the last 0 in"), "{note}");
        }
        assert!(!uncut.describe().contains("continued"), "{}", uncut.describe());
    }
    std::fs::remove_dir_all(&dir).ok();
}

/// A learned denoiser gives the same numbers one image at a time and in a batch (more images
/// than one chunk, with a text that does not fit in the middle: its row alone is NaN), for the
/// frozen heads and the joint class.
#[test]
fn learned_denoisers_batch_as_they_denoise_one_by_one() {
    let model = small_model();
    let steps = Steps { clip: 2, denoiser: 2, next_token: 1 };
    let pairs = sample_pairs(&model, 40, 6, false);
    let mut rng = rng::stream(7, 0);
    let noisy: Vec<Vec<f64>> = pairs
        .iter()
        .map(|p| p.image.iter().map(|&v| v as f64 + Distribution::<f64>::sample(&StandardNormal, &mut rng)).collect())
        .collect();
    let bad = vec![99usize; model.text_len()];
    let mut texts: Vec<&[usize]> = pairs.iter().map(|p| p.text.as_slice()).collect();
    texts[17] = &bad;
    for class in [LearnedClass::Standard, LearnedClass::Joint] {
        let m = train_learned_steps(&model, &small_plan(class), steps, 2, None).unwrap();
        let batch = m.denoiser().denoise_batch(&noisy, &texts);
        for (i, (x, y)) in noisy.iter().zip(&texts).enumerate() {
            let one = m.denoiser().denoise(x, y);
            if i == 17 {
                assert!(one.iter().chain(&batch[i]).all(|v| v.is_nan()), "{class:?}: the bad text's row");
            } else {
                assert_eq!(one, batch[i], "{class:?}: image {i}");
            }
        }
    }
}

/// The standard model of the paper's simulations at ε = 0.2 (`jghm model random --states 10 --children 3
/// --depth 4 --text-depth 4 --flip 0.2 --seed 1`): trains each class within
/// `JGHM_BUDGET_SECONDS` (default 60) and prints the steps, the per-step times and the four
/// risks with their Bayes values (the estimators of `reproduce::risks`, 2,000 pairs).
/// `cargo test --release --test reproduce_learned -- --ignored --nocapture`
#[test]
#[ignore]
fn measure_classes_on_the_standard_model() {
    use jghm::reproduce::learned::{train_learned, Budget};
    use jghm::reproduce::risks;
    let mut spec = RandomSpec::symmetric(10, 3, 4, 1);
    spec.flip = 0.2;
    let model = spec.build().unwrap();
    let seconds: f64 = std::env::var("JGHM_BUDGET_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(60.0);
    let samples: usize = std::env::var("JGHM_RISK_SAMPLES").ok().and_then(|s| s.parse().ok()).unwrap_or(2000);
    let classes = std::env::var("JGHM_CLASSES").unwrap_or("standard,shallow,guided".into());
    for class in classes.split(',') {
        let class = match class {
            "standard" => LearnedClass::Standard,
            "shallow" => LearnedClass::Shallow,
            _ => LearnedClass::Guided,
        };
        let t0 = std::time::Instant::now();
        let m = train_learned(&model, class, &Budget { seconds, quick: false }, &Protocol::default(), 7).unwrap();
        let r = &m.report;
        eprintln!("{} (wall {:.1} s)", m.describe(), t0.elapsed().as_secs_f64());
        eprintln!(
            "  per step: CLIP {:.3} s, denoiser {:.3} s, next-token {:.3} s; final training losses {:?}",
            r.seconds[0] / r.done.clip as f64,
            r.seconds[1] / r.done.denoiser as f64,
            r.seconds[2] / r.done.next_token as f64,
            r.final_losses
        );
        let t1 = std::time::Instant::now();
        let show = |name: &str, t: risks::TaskRisk| {
            let p = &t.predictors[0];
            eprintln!(
                "  {name}: risk {:.4} ± {:.4}, Bayes {:.4} ± {:.4}, excess {:.4} ± {:.4}",
                p.risk.value, p.risk.stderr, t.bayes.value, t.bayes.stderr, p.excess.value, p.excess.stderr
            );
        };
        show("clip", risks::clip_risk(&model, m.score().unwrap(), 4, samples, 11).unwrap());
        show("zero-shot (M = 10)", risks::zero_shot_risk(&model, m.score().unwrap(), 10, samples, 12).unwrap());
        show(
            "denoise",
            risks::denoise_risk(&model, m.denoiser(), jghm::downstream::noise::DENOISING, samples, 13).unwrap(),
        );
        show("vlm", risks::vlm_risk(&model, m.next_token(), samples, 14).unwrap());
        eprintln!("  (risk estimation {:.1} s)", t1.elapsed().as_secs_f64());
    }
}

/// A joint model's summed loss against its parameters; the condition is the other modality's
/// tokens.
fn check_joint<H: ConditionalHead<f64>>(what: &str, head: &H, inp: &[f64], cond: &[f64], target: &[f64], b: usize) {
    let mut rng = rng::stream(81, 0);
    let np = head.num_params();
    let theta: Vec<f64> = normals(&mut rng, np).iter().map(|x| 0.5 * x).collect();
    let mut cache = head.new_cache(b);
    head.forward(&theta, inp, cond, b, &mut cache);
    let mut grad = vec![0.0; np];
    let scale = 0.8;
    let loss = head.loss_and_grad(&theta, cond, target, b, scale, &mut cache, &mut grad);
    assert!(loss.is_finite() && loss > 0.0);
    let mut scratch = vec![0.0; np];
    check(what, &theta, &grad, |th| {
        head.forward(th, inp, cond, b, &mut cache);
        scale * head.loss_and_grad(th, cond, target, b, scale, &mut cache, &mut scratch)
    });
}

#[test]
fn joint_models_backward_match_finite_differences() {
    let mut rng = rng::stream(82, 0);
    let b = 3;
    let shape = HeadShape { width: 8, layers: 2, heads: 2 };
    // Denoiser: 4 image values of alphabet 3, conditioned on 3 text tokens of alphabet 2.
    let head = JointDenoiser::new(4, 3, 3, 2, shape);
    let target: Vec<f64> = tokens(&mut rng, b * 4, 3).iter().map(|&v| v as f64).collect();
    let inp: Vec<f64> = target.iter().map(|v| v + Distribution::<f64>::sample(&StandardNormal, &mut rng)).collect();
    let ys: Vec<f64> = tokens(&mut rng, b * 3, 2).iter().map(|&v| v as f64).collect();
    check_joint("joint denoiser", &head, &inp, &ys, &target, b);
    // Next-token: 3 text tokens of alphabet 2, conditioned on 4 image tokens of alphabet 3.
    let head = JointNextToken::new(3, 2, 4, 3, shape);
    let xs: Vec<f64> = tokens(&mut rng, b * 4, 3).iter().map(|&v| v as f64).collect();
    check_joint("joint next-token", &head, &ys, &xs, &ys, b);
}

/// Row `j` of the joint next-token model sees every image token and `y_{<j}` only: changing
/// `y_k` leaves rows `0..=k` unchanged and changes row `k + 1`; changing an image token
/// changes row 0. The joint denoiser reads the text: changing a text token changes its output.
#[test]
fn joint_models_read_what_they_should() {
    let mut rng = rng::stream(83, 0);
    let shape = HeadShape { width: 8, layers: 2, heads: 2 };
    let head = JointNextToken::new(5, 4, 3, 3, shape);
    let theta = normals(&mut rng, ConditionalHead::<f64>::num_params(&head));
    let x = [0.0, 2.0, 1.0];
    let y = [0.0, 1.0, 2.0, 3.0, 0.0];
    let rows = |x: &[f64], y: &[f64]| {
        let mut cache = head.new_cache(1);
        head.forward(&theta, y, x, 1, &mut cache);
        head.outputs(&cache, 1).to_vec()
    };
    let base = rows(&x, &y);
    for k in 0..4 {
        let mut z = y;
        z[k] = (z[k] + 1.0) % 4.0;
        let changed = rows(&x, &z);
        assert_eq!(base[..(k + 1) * 4], changed[..(k + 1) * 4], "changing y_{k} moved an earlier row");
        assert_ne!(base[(k + 1) * 4..(k + 2) * 4], changed[(k + 1) * 4..(k + 2) * 4], "row {} ignores y_{k}", k + 1);
    }
    let mut other = x;
    other[0] = 1.0;
    assert_ne!(base[..4], rows(&other, &y)[..4], "row 0 ignores the image");
    let head = JointDenoiser::new(4, 3, 3, 2, shape);
    let theta = normals(&mut rng, ConditionalHead::<f64>::num_params(&head));
    let noisy = [0.3, 1.2, 2.5, -0.4];
    let out = |y: &[f64]| {
        let mut cache = head.new_cache(1);
        head.forward(&theta, &noisy, y, 1, &mut cache);
        head.outputs(&cache, 1).to_vec()
    };
    assert_ne!(out(&[0.0, 1.0, 1.0]), out(&[1.0, 1.0, 1.0]), "the denoiser ignores the text");
}

/// `--clip-lr` sets the CLIP encoders' cosine from the peak to a thousandth of it, and a run
/// recorded before the option existed (no `clip_lr` in its settings) reads back with our 3e-4.
#[test]
fn the_clip_learning_rate_is_switchable_and_old_settings_keep_ours() {
    use jghm::reproduce::learned::{ClipLr, CLIP_LR};
    let paper = Protocol { clip_lr: ClipLr::Rate(1e-3), ..Protocol::default() };
    let plan = Plan::new(LearnedClass::Standard, false, &paper);
    assert_eq!(plan.clip_lr, (1e-3, 1e-6));
    let ours = Plan::new(LearnedClass::Guided, false, &Protocol::default());
    assert_eq!(ours.clip_lr, (3e-4, 3e-7));
    let old = r#"{"negatives": {"independent": {"k": 4}}, "heads": "small", "products": "exact"}"#;
    let read: Protocol = serde_json::from_str(old).unwrap();
    assert_eq!(read, Protocol::default());
    assert_eq!(read.clip_lr, ClipLr::Rate(CLIP_LR));
    let new = serde_json::to_value(paper).unwrap();
    assert_eq!(new["clip_lr"], serde_json::json!(0.001), "a rate is written as a number, as before");
    assert_eq!(serde_json::from_value::<Protocol>(new).unwrap(), paper);
    // The rate is in every learned row's note, so a result file says which rate made it.
    let mut one_step = small_plan(LearnedClass::Standard);
    one_step.clip_lr = plan.clip_lr;
    let steps = Steps { clip: 1, denoiser: 1, next_token: 1 };
    let note = train_learned_steps(&small_model(), &one_step, steps, 1, None).unwrap().describe();
    assert!(note.contains("lr 1e-3 cosine"), "{note}");
}

/// `--clip-lr paper` trains each class at the rate of the paper's figure runs (its
/// `exp_clip_*TF.sh`): 3e-4 for the standard and shallow classes, 1e-3 for the guided class; it
/// is written in the settings as `"paper"`, and the flag refuses anything else that is not a
/// rate in (0, 1].
#[test]
fn the_paper_learning_rates_are_per_class() {
    use jghm::reproduce::learned::ClipLr;
    let paper = Protocol { clip_lr: ClipLr::PAPER, ..Protocol::default() };
    let rate = |class| Plan::new(class, false, &paper).clip_lr;
    assert_eq!(rate(LearnedClass::Standard), (3e-4, 3e-7));
    assert_eq!(rate(LearnedClass::Shallow), (3e-4, 3e-7));
    assert_eq!(rate(LearnedClass::Guided), (1e-3, 1e-6));
    let written = serde_json::to_value(paper).unwrap();
    assert_eq!(written["clip_lr"], serde_json::json!("paper"));
    assert_eq!(serde_json::from_value::<Protocol>(written).unwrap(), paper);
    assert_eq!("paper".parse::<ClipLr>(), Ok(ClipLr::PAPER));
    assert_eq!("1e-3".parse::<ClipLr>(), Ok(ClipLr::Rate(1e-3)));
    assert_eq!("1".parse::<ClipLr>(), Ok(ClipLr::Rate(1.0)));
    for bad in ["0", "-1e-3", "1.5", "nan", "inf", "Paper", "fast", ""] {
        let err = bad.parse::<ClipLr>().unwrap_err();
        assert!(err.contains("'paper' or a rate in (0, 1]") && !err.contains('\n'), "{bad}: {err}");
    }
    assert_eq!(ClipLr::PAPER.to_string(), "the paper's (3e-4; guided 1e-3)");
    assert_eq!(ClipLr::Rate(1e-3).to_string(), "1e-3");
}

/// `--encoder paper` builds the CLIP encoders as the paper's (its block, one head, learned
/// pool, `N(0, 1)` embeddings), says so in every learned row's note, and a run recorded before
/// the option existed (no `encoder` in its settings) reads back with ours.
#[test]
fn the_paper_encoder_is_switchable_and_old_settings_keep_ours() {
    use jghm::reproduce::learned::EncoderForm;
    let paper = Protocol { encoder: EncoderForm::Paper, ..Protocol::default() };
    let plan = Plan::new(LearnedClass::Standard, false, &paper);
    assert_eq!((plan.encoder.heads, plan.encoder_form), (1, EncoderForm::Paper));
    let ours = Plan::new(LearnedClass::Standard, false, &Protocol::default());
    assert_eq!((ours.encoder.heads, ours.encoder_form), (4, EncoderForm::Ours));
    let old = r#"{"negatives": {"independent": {"k": 4}}, "heads": "small", "products": "exact", "clip_lr": 0.001}"#;
    let read: Protocol = serde_json::from_str(old).unwrap();
    assert_eq!(read.encoder, EncoderForm::Ours);
    let new = serde_json::to_value(paper).unwrap();
    assert_eq!(serde_json::from_value::<Protocol>(new).unwrap(), paper);
    for class in [LearnedClass::Standard, LearnedClass::Guided] {
        let mut one_step = small_plan(class);
        one_step.encoder_form = EncoderForm::Paper;
        let steps = Steps { clip: 1, denoiser: 1, next_token: 1 };
        let models = train_learned_steps(&small_model(), &one_step, steps, 1, None).unwrap();
        let note = models.describe();
        assert!(note.contains("the paper's encoder with 2 attention heads, learned pool"), "{note}");
        let ours_note = train_learned_steps(&small_model(), &small_plan(class), steps, 1, None).unwrap().describe();
        assert!(!ours_note.contains("the paper's encoder"), "{ours_note}");
    }
}

/// `--negatives paper` trains on the paper's batches (each direction with its own 128
/// positives: [`jghm::learn::Scheme::KWay`] with `split`), `--clip-max-norm` sets the CLIP
/// encoders' clipping (the paper's 1.0 on its summed loss is 0.5 on ours); runs recorded before
/// either option existed read back with shared positives and 1.0, and both are in the notes.
#[test]
fn the_papers_batch_layout_and_clipping_are_switchable_and_old_settings_keep_ours() {
    use jghm::learn::Scheme;
    use jghm::reproduce::learned::{CLIP_MAX_NORM, PAPER_CLIP_MAX_NORM};
    assert_eq!("paper".parse::<Negatives>(), Ok(Negatives::PAPER_LAYOUT));
    assert_eq!("4-split".parse::<Negatives>(), Ok(Negatives::PAPER_LAYOUT));
    assert_eq!("3-split".parse::<Negatives>(), Ok(Negatives::Independent { k: 3, split: true }));
    assert_eq!("4".parse::<Negatives>(), Ok(Negatives::PAPER));
    for n in
        [Negatives::PAPER, Negatives::PAPER_LAYOUT, Negatives::Independent { k: 3, split: true }, Negatives::InBatch]
    {
        assert_eq!(n.to_string().parse::<Negatives>(), Ok(n), "{n}");
    }
    assert_eq!(Negatives::PAPER_LAYOUT.to_string(), "paper");
    assert_eq!(Negatives::PAPER_LAYOUT.scheme(), Scheme::PAPER);
    let paper =
        Protocol { negatives: Negatives::PAPER_LAYOUT, clip_max_norm: PAPER_CLIP_MAX_NORM, ..Protocol::default() };
    let plan = Plan::new(LearnedClass::Standard, false, &paper);
    assert_eq!((plan.scheme, plan.clip_norm, plan.head_clip_norm), (Scheme::PAPER, 0.5, CLIP_MAX_NORM));
    let ours = Plan::new(LearnedClass::Standard, false, &Protocol::default());
    assert_eq!((ours.scheme, ours.clip_norm), (Scheme::KWay { k: 4, split: false }, 1.0));
    let old = r#"{"negatives": {"independent": {"k": 4}}, "heads": "small", "products": "exact", "clip_lr": 0.0003}"#;
    let read: Protocol = serde_json::from_str(old).unwrap();
    assert_eq!(read, Protocol::default());
    assert_eq!(serde_json::to_value(read).unwrap(), serde_json::from_str::<serde_json::Value>(old).unwrap());
    let new = serde_json::to_value(paper).unwrap();
    assert_eq!(new["negatives"], serde_json::json!({"independent": {"k": 4, "split": true}}));
    assert_eq!(new["clip_max_norm"], serde_json::json!(0.5));
    assert_eq!(serde_json::from_value::<Protocol>(new).unwrap(), paper);
    // Both in the learned rows' notes.
    let mut one_step = small_plan(LearnedClass::Standard);
    (one_step.scheme, one_step.clip_norm) = (plan.scheme, plan.clip_norm);
    let steps = Steps { clip: 1, denoiser: 1, next_token: 1 };
    let note = train_learned_steps(&small_model(), &one_step, steps, 1, None).unwrap().describe();
    assert!(note.contains("negatives K = 4 independent, separate positives per direction"), "{note}");
    assert!(note.contains("gradient clip 0.5"), "{note}");
    let ours_note =
        train_learned_steps(&small_model(), &small_plan(LearnedClass::Standard), steps, 1, None).unwrap().describe();
    assert!(!ours_note.contains("gradient clip") && !ours_note.contains("separate positives"), "{ours_note}");
}
