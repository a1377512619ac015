//! The theorems checked exactly on trained encoders (T2-T10 for learned scores).
//!
//! Every case trains a real pair inside the test: a class (BP class, MLP, transformer), an
//! enumerable model (the standard random family with and without a trunk, flips from
//! near-deterministic to near-uniform; or the shared generator's shapes with unequal alphabets
//! and non-uniform priors), a step budget from a few steps (badly trained) to a few hundred,
//! and a seed; proptest picks the cases. The pair is then measured exactly by
//! `jghm::eval::exact`, and each theorem is asserted on it, its two sides computed by separate
//! routes where the theorem is an identity.

mod common;
mod tiny;

use jghm::contrastive::{Batch, Direction, Exact};
use jghm::downstream::diffusion::{self, Condition, Schedule};
use jghm::downstream::generation::induced_from_scores;
use jghm::downstream::labels::Label;
use jghm::downstream::laws::SideLaw;
use jghm::downstream::noise::NoiseLevel;
use jghm::downstream::zero_shot::{classify_exact, TestImages};
use jghm::eval::exact::{evaluate_exact, generator_kl, ExactReport, ExactSpec};
use jghm::eval::{Learned, LearnedScore};
use jghm::info::{self, kl, side_size, Enumeration, Estimate};
use jghm::learn::data::Data;
use jghm::learn::score_head::{Head, HeadCache};
use jghm::learn::train::{train, Run};
use jghm::learn::{with_encoders, Class, ClipPair, Encoder, Real, TrainConfig, WithEncoders};
use jghm::model::{Jghm, Part};
use jghm::random_family::RandomSpec;
use jghm::rng;
use jghm::score::{hash_unit, Pmi, Score};
use jghm::sufficiency::{t5_bound, Classes, Gap};
use proptest::prelude::*;
use tiny::*;

/// One trained pair and the model it was trained on.
struct Case {
    model: Jghm,
    class: Class,
    steps: usize,
    seed: u64,
}

impl std::fmt::Debug for Case {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let shape = |p: Part| format!("{}^{}", self.model.vocab_of(p), self.model.len_of(p));
        write!(
            f,
            "{:?} after {} steps (seed {}) on a model with images {}, texts {}, trunk {}",
            self.class,
            self.steps,
            self.seed,
            shape(Part::Image),
            shape(Part::Text),
            self.model.has_trunk()
        )
    }
}

/// The largest side of a case (so the finite-`K` tuple sums stay cheap).
const MAX_SIDE: f64 = 27.0;

/// A model of the standard random family: 2-3 states, towers of 1-2 levels of 1-3 children,
/// an optional one-level trunk, flip from near-deterministic to near-uniform.
fn arb_family_model() -> impl Strategy<Value = Jghm> {
    (2usize..=3, 1usize..=3, 1usize..=2, 1usize..=3, 1usize..=2, 0usize..=1, 0.01f64..0.45, any::<u64>())
        .prop_map(|(states, children, depth, text_children, text_depth, shared_depth, flip, seed)| {
            let spec = RandomSpec {
                text_children,
                text_depth,
                shared_depth,
                shared_children: 1,
                flip,
                ..RandomSpec::symmetric(states, children, depth, seed)
            };
            spec.build().expect("a valid spec")
        })
        .prop_filter("sides small enough", |m| {
            side_size(m, Part::Image) <= MAX_SIDE && side_size(m, Part::Text) <= MAX_SIDE
        })
}

/// A case: either family of models, any class that fits it (the BP class is two-tower only),
/// a budget from badly trained to converged, a seed.
fn arb_case() -> impl Strategy<Value = Case> {
    let model = prop_oneof![arb_family_model(), arb_any_tiny_model(MAX_SIDE)];
    let class = prop_oneof![Just(Class::Bp), Just(Class::Mlp), Just(Class::Transformer)];
    let steps = prop_oneof![Just(3usize), Just(40), Just(300)];
    (model, class, steps, 0u64..1000).prop_map(|(model, class, steps, seed)| {
        let class = if class == Class::Bp && model.has_trunk() { Class::Mlp } else { class };
        Case { model, class, steps, seed }
    })
}

/// A small configuration of `class`: tiny encoders, batch 16 of fresh pairs, `steps` steps.
fn train_config(class: Class, steps: usize) -> TrainConfig {
    let mut cfg = TrainConfig::for_class(class);
    cfg.width = if class == Class::Mlp { 16 } else { 8 };
    cfg.heads = 2;
    cfg.layers = 1;
    cfg.out = 4;
    cfg.batch = 16;
    cfg.n = None;
    cfg.schedule.steps = steps;
    cfg.schedule.warmup = cfg.schedule.warmup.min(steps / 10);
    cfg.checkpoint_every = steps;
    cfg
}

/// Trains the case's pair (seeded: the same parameters whatever the thread count).
fn train_case(case: &Case) -> Box<dyn Learned + Send> {
    train_pair(case)
}

/// The trained pair of a case with its head, so that the head can be applied to other image
/// embeddings ([`Coarsenable::quantised`]).
fn train_pair(case: &Case) -> Box<dyn Coarsenable> {
    struct Go<'a>(&'a Case, &'a jghm::learn::CheckedConfig);
    impl WithEncoders for Go<'_> {
        type Output = Box<dyn Coarsenable>;
        fn run<R: Real, E: Encoder<R> + 'static>(self, make: &dyn Fn(Part) -> E) -> Self::Output {
            let (case, cfg) = (self.0, self.1);
            let head = cfg.head(&case.model);
            let mut pair = ClipPair::new(make(Part::Image), make(Part::Text), head, cfg.scheme);
            let mut data = Data::Fresh { model: &case.model, seed: case.seed };
            let run =
                Run { config: cfg, seed: case.seed, model_sha256: "test".into(), steps: case.steps, max_seconds: None };
            let ck = train(&mut pair, &mut data, &run, None, &mut |_| {}, &mut |_| Ok(())).expect("training runs");
            let head_params = ck.params.head.clone();
            let score = LearnedScore::new(make(Part::Image), make(Part::Text), ck.params, head);
            Box::new(Trained { score, head, head_params })
        }
    }
    let cfg = train_config(case.class, case.steps).check(&case.model).expect("a valid configuration");
    with_encoders(&cfg, &case.model, Go(case, &cfg))
}

/// A trained pair: its learned score, and its head with the head's parameters.
struct Trained<R: Real, E: Encoder<R>> {
    score: LearnedScore<R, E>,
    head: Head,
    head_params: Vec<R>,
}

/// A learned pair whose image embedding can be coarsened.
trait Coarsenable: Learned + Send {
    /// `S_q(x, y) = head(q(f(x)), g(y))`, `q` rounding each coordinate to the grid `h ℤ`: a
    /// score that depends on the image only through `q∘f`; its image embedding is `q∘f`.
    fn quantised(&self, h: f64) -> Box<dyn Learned + '_>;
}

impl<R: Real, E: Encoder<R>> Score for Trained<R, E> {
    fn name(&self) -> String {
        self.score.name()
    }
    fn score(&self, x: &[usize], y: &[usize]) -> f64 {
        self.score.score(x, y)
    }
    fn grid(&self, xs: &[Vec<usize>], ys: &[Vec<usize>]) -> Vec<f64> {
        self.score.grid(xs, ys)
    }
}

impl<R: Real, E: Encoder<R>> Learned for Trained<R, E> {
    fn embeddings(&self, part: Part, seqs: &[Vec<usize>]) -> Vec<Vec<f64>> {
        self.score.embeddings(part, seqs)
    }
}

impl<R: Real, E: Encoder<R> + 'static> Coarsenable for Trained<R, E> {
    fn quantised(&self, h: f64) -> Box<dyn Learned + '_> {
        Box::new(Quantised { pair: self, h })
    }
}

/// `q(v) = h · round(v / h)`.
fn quantise(v: f64, h: f64) -> f64 {
    (v / h).round() * h
}

/// The coarsened score of [`Coarsenable::quantised`].
struct Quantised<'a, R: Real, E: Encoder<R>> {
    pair: &'a Trained<R, E>,
    h: f64,
}

impl<R: Real, E: Encoder<R>> Score for Quantised<'_, R, E> {
    fn name(&self) -> String {
        format!("learned, image embedding on the grid {}", self.h)
    }
    fn score(&self, x: &[usize], y: &[usize]) -> f64 {
        self.grid(&[x.to_vec()], &[y.to_vec()])[0]
    }
    fn grid(&self, xs: &[Vec<usize>], ys: &[Vec<usize>]) -> Vec<f64> {
        let u: Vec<R> =
            self.pair.score.encode(true, xs).into_iter().map(|v| R::of(quantise(v.f64(), self.h))).collect();
        let v = self.pair.score.encode(false, ys);
        let p = u.len() / xs.len().max(1);
        let pairs: Vec<(u32, u32)> =
            (0..xs.len() as u32).flat_map(|i| (0..ys.len() as u32).map(move |j| (i, j))).collect();
        let mut scores = vec![];
        self.pair.head.forward(&self.pair.head_params, &u, &v, p, &pairs, &mut scores, &mut HeadCache::default());
        scores.into_iter().map(|s| s.f64()).collect()
    }
}

impl<R: Real, E: Encoder<R>> Learned for Quantised<'_, R, E> {
    fn embeddings(&self, part: Part, seqs: &[Vec<usize>]) -> Vec<Vec<f64>> {
        let e = self.pair.score.embeddings(part, seqs);
        if part == Part::Text {
            return e;
        }
        e.into_iter().map(|row| row.into_iter().map(|v| quantise(v, self.h)).collect()).collect()
    }
}

/// T5 for the coarsened score `S_q` of grid step `h = factor ×` the spread of `f` over the
/// images (the largest range of a coordinate): the images partitioned into the cells of
/// `q∘f` (the integer vectors `round(f(x) / h)`), `Suff_Y(q∘f)` over that partition and the
/// excess `ℓ_∞^{X→Y}(S_q) − ℓ_∞^{X→Y}(PMI)`, by the library's T5 code (which also checks that
/// `S_q` depends on the image only through the cells). Returns `(Suff, excess, cells, images)`.
fn coarsened_t5(model: &Jghm, pair: &dyn Coarsenable, factor: f64) -> (f64, f64, usize, usize) {
    let en = Enumeration::new(model).unwrap();
    let ex = Exact::new(&en);
    let f = pair.embeddings(Part::Image, &en.image.tokens);
    let dim = f.first().map_or(0, Vec::len);
    let spread = (0..dim)
        .map(|k| {
            let (lo, hi) =
                f.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| (lo.min(v[k]), hi.max(v[k])));
            hi - lo
        })
        .fold(0.0, f64::max);
    let h = if spread > 0.0 { factor * spread } else { 1.0 };
    let q = pair.quantised(h);
    let s = ex.scores(&*q);
    let cells: Vec<Vec<i64>> = f.iter().map(|v| v.iter().map(|x| (x / h).round() as i64).collect()).collect();
    let gap = Gap::new(&en, Part::Image, Classes::from_keys(&cells));
    let (suff, excess) = t5_bound(&ex, &gap, &s).expect("S_q depends on the image only through q∘f");
    (suff, excess, gap.classes.count, en.image.len())
}

/// `E_X KL(P^PMI_{C|X} ‖ P^S_{C|X})` for the root label: the zero-shot posteriors of the
/// oracle (the PMI) and of the learned score, both with exact prompts, every image weighted by
/// `p(x)`.
fn root_kl_to_oracle(model: &Jghm, learned: &dyn Learned) -> f64 {
    let texts = SideLaw::new(model, Part::Text).unwrap();
    let label = Label::Root;
    let law = label.law(model, Some(&texts)).unwrap();
    let images = TestImages::enumerated(model).unwrap();
    let learned = classify_exact(learned, &law, &images.tokens).unwrap();
    let oracle = classify_exact(&Pmi { model }, &law, &images.tokens).unwrap();
    images.weights.iter().zip(oracle.iter().zip(&learned)).map(|(w, (p, q))| w * kl(p, q)).sum()
}

/// The exact report of a trained case, with finite `K = 2..4` and the label channels of T8.
fn report(case: &Case, learned: &dyn Learned) -> ExactReport {
    let spec = ExactSpec { ks: vec![2, 3, 4], labels: labels(&case.model, case.seed) };
    evaluate_exact(&case.model, learned, &spec).expect("tiny models are enumerable")
}

/// T8's labels: the first and last text tokens, the root, and two random channels of the text.
fn labels(model: &Jghm, seed: u64) -> Vec<Label> {
    let n = side_size(model, Part::Text) as usize;
    let channel = |k: usize, s: u64| {
        Label::Channel(
            (0..n)
                .map(|i| {
                    let w: Vec<f64> = (0..k).map(|c| (3.0 * hash_unit(s, &[i, c])).exp()).collect();
                    let z: f64 = w.iter().sum();
                    w.iter().map(|v| v / z).collect()
                })
                .collect(),
        )
    };
    vec![
        Label::TextToken(0),
        Label::TextToken(model.text_len() - 1),
        Label::Root,
        channel(2, seed),
        channel(3, seed ^ 0x5eed),
    ]
}

fn both(r: &ExactReport) -> [&jghm::eval::exact::DirectionReport; 2] {
    [&r.image_to_text, &r.text_to_image]
}

proptest! {
    #![proptest_config(config(10))]

    /// T2: `ℓ_K(S) ≥ ℓ_K(PMI)` for `K = 2..4` and `K = ∞`, both directions.
    #[test]
    fn t2_learned_losses_at_least_the_pmi_s(case in arb_case()) {
        let learned = train_case(&case);
        let r = report(&case, &*learned);
        for d in both(&r) {
            prop_assert!(d.excess >= -1e-12, "{case:?} {:?}: ℓ_∞ excess {}", d.direction, d.excess);
            for f in &d.finite {
                prop_assert!(f.excess >= -1e-12, "{case:?} {:?}: ℓ_{} excess {}", d.direction, f.k, f.excess);
            }
        }
    }

    /// T3: `log K − ℓ_K(S) ≤ I(X;Y)` for `K = 2..4`, both directions.
    #[test]
    fn t3_learned_infonce_at_most_the_information(case in arb_case()) {
        let learned = train_case(&case);
        let r = report(&case, &*learned);
        for d in both(&r) {
            for f in &d.finite {
                prop_assert!(f.infonce_bound <= r.mutual_information + 1e-12,
                    "{case:?} {:?}: log {} − ℓ_K = {} > I = {}", d.direction, f.k, f.infonce_bound, r.mutual_information);
            }
        }
    }

    /// T4: `ℓ_∞(S) − ℓ_∞(PMI) = E_A KL(P_{C|A} ‖ Q^S_{C|A})` to 1e-9, both directions, the loss
    /// from the contrastive module and the KL from BP's conditionals (`bp::pmi` per pair and the
    /// induced law of the score); and the finite-`K` form: `ℓ_K(S) − ℓ_K(PMI)` (compositions of
    /// the negatives) equals `E KL(Π ‖ softmax S)` over the ordered candidate tuples.
    #[test]
    fn t4_learned_excess_is_the_generator_kl(case in arb_case()) {
        let learned = train_case(&case);
        let model = &case.model;
        let en = Enumeration::new(model).unwrap();
        let ex = Exact::new(&en);
        let s = ex.scores(&*learned);
        for dir in [Direction::ImageToText, Direction::TextToImage] {
            let excess = ex.loss(&s, dir, Batch::Infinite).unwrap() - ex.loss(&ex.pmi, dir, Batch::Infinite).unwrap();
            let kl_bp = kl_by_pairwise_bp(model, &*learned, dir);
            prop_assert!((excess - kl_bp).abs() < 1e-9, "{case:?} {dir:?}: excess {excess} vs E KL {kl_bp}");
            let sides = [SideLaw::new(model, Part::Image).unwrap(), SideLaw::new(model, Part::Text).unwrap()];
            let kl_sep = generator_kl(model, &*learned, &sides, dir).unwrap();
            prop_assert!((excess - kl_sep).abs() < 1e-9, "{case:?} {dir:?}: excess {excess} vs generator KL {kl_sep}");
            let (view, best) = (ex.view(&s, dir), ex.view(&ex.pmi, dir));
            for k in 2..=4 {
                if view.positive_posterior_kl(k).is_err() {
                    continue;
                }
                let finite = view.loss_finite(k).unwrap() - best.loss_finite(k).unwrap();
                let posterior = view.positive_posterior_kl(k).unwrap();
                prop_assert!((finite - posterior).abs() < 1e-9, "{case:?} {dir:?} K={k}: excess {finite} vs E KL(Π ‖ softmax S) {posterior}");
            }
        }
    }

    /// T5 and T9: the sufficiency gap of the learned embedding's level sets is at most the
    /// excess risk in its direction (the score depends on that side only through them); the
    /// KL of `Q^S` is that excess; no generator through the embedding beats `Suff` (the best one,
    /// the fibre average, attains it: variational form = KL form), and `Q^S` is one of them.
    #[test]
    fn t5_t9_learned_statistic_gap_at_most_the_excess(case in arb_case()) {
        let learned = train_case(&case);
        let r = report(&case, &*learned);
        for d in both(&r) {
            let st = &d.statistic;
            let suff = st.sufficiency.kl_form;
            prop_assert!(st.score_through_embedding, "{case:?} {:?}: the score is not a function of the embedding", d.direction);
            prop_assert!(suff <= d.excess + 1e-10, "{case:?} {:?}: T5 Suff {suff} > excess {}", d.direction, d.excess);
            prop_assert!((d.generator_kl - d.excess).abs() < 1e-9, "{case:?} {:?}: T9 KL(Q^S) {} vs excess {}", d.direction, d.generator_kl, d.excess);
            prop_assert!((st.sufficiency.variational_form - suff).abs() < 1e-9, "{case:?}: best generator {} vs Suff {suff}", st.sufficiency.variational_form);
            prop_assert!((st.sufficiency.information_form - suff).abs() < 1e-9, "{case:?}: I − I_T {} vs Suff {suff}", st.sufficiency.information_form);
        }
        // The same gap by brute force: the joint law p(x, y) by enumeration of the hidden states,
        // the fibres of the embedding merged by hand, Suff = I(X;Y) − I(f(X);Y).
        let brute = brute_suff(&case.model, &*learned);
        prop_assert!((brute - r.image_to_text.statistic.sufficiency.kl_form).abs() < 1e-9,
            "{case:?}: brute-force Suff_Y(f) {brute} vs {}", r.image_to_text.statistic.sufficiency.kl_form);
    }

    /// T5 on a coarsened learned statistic: the image embedding rounded to a grid of step
    /// `h ∈ {0.5, 1, 2} ×` its spread (so that images share cells), the score
    /// `S_q(x, y) = head(q(f(x)), g(y))`; `Suff_Y(q∘f)` over the cells is at most
    /// `ℓ_∞^{X→Y}(S_q) − ℓ_∞^{X→Y}(PMI)`.
    #[test]
    fn t5_coarsened_learned_statistic_gap_at_most_its_excess(
        case in arb_case(),
        factor in prop_oneof![Just(0.5), Just(1.0), Just(2.0)],
    ) {
        let pair = train_pair(&case);
        let (suff, excess, cells, images) = coarsened_t5(&case.model, &*pair, factor);
        prop_assert!(suff >= -1e-12, "{case:?} h = {factor} × spread: Suff {suff} < 0");
        prop_assert!(suff <= excess + 1e-10,
            "{case:?} h = {factor} × spread ({cells} cells of {images} images): T5 Suff {suff} > excess {excess}");
    }

    /// T8: for the text tokens and random channels, the zero-shot excess log-loss of the
    /// learned score (exact prompts) is at most its `X→Y` excess risk `ε`, and its 0-1 excess
    /// at most `√(2 ε)`. The root is not a function of the text, so the PMI is not Bayes for
    /// it; the bound is against the oracle protocol: `E_X KL(P^PMI_{C|X} ‖ P^S_{C|X}) ≤ ε`
    /// (both posteriors mix the same `p(c | y)`, over `P_{Y|X}` and `Q^S_{Y|X}`).
    #[test]
    fn t8_learned_zero_shot_excess_at_most_the_contrastive_excess(case in arb_case()) {
        let learned = train_case(&case);
        let r = report(&case, &*learned);
        let eps = r.image_to_text.excess;
        for (z, oracle) in r.zero_shot.iter().zip(&r.oracle_zero_shot) {
            if z.label == "root" {
                let to_oracle = root_kl_to_oracle(&case.model, &*learned);
                prop_assert!(to_oracle <= eps + 1e-10, "{case:?} root: E KL(P^PMI ‖ P^S) {to_oracle} > ε {eps}");
                continue;
            }
            prop_assert!(z.excess_log_loss.value <= eps + 1e-10, "{case:?} {}: excess log-loss {} > ε {eps}", z.label, z.excess_log_loss.value);
            prop_assert!(z.zero_one_excess.value <= (2.0 * eps.max(0.0)).sqrt() + 1e-10, "{case:?} {}: 0-1 excess {} > √(2ε)", z.label, z.zero_one_excess.value);
            prop_assert!(oracle.excess_log_loss.value.abs() < 1e-9, "{case:?} {}: the PMI is not Bayes", z.label);
        }
    }

    /// T10 for learned scores: with `D^S` the denoiser under `P^S(x | y) ∝ p(x) exp S(x, y)`,
    /// pointwise `‖D − D^S‖² ≤ N_X KL(p(x | x_t, y) ‖ P^S(x | x_t, y))`, and
    /// `E‖D − D^S‖² ≤ N_X (ℓ_∞^{Y→X}(S) − ℓ_∞^{Y→X}(PMI))`: exactly at pure noise, and within
    /// 4 standard errors by Monte Carlo over `X_t` (the images and texts summed exactly).
    #[test]
    fn t10_learned_guided_denoiser_within_the_excess(case in arb_case()) {
        let learned = train_case(&case);
        let r = report(&case, &*learned);
        let bound = r.denoising.bound;
        prop_assert!(r.denoising.pure_noise_gap <= bound + 1e-10, "{case:?}: pure noise {} > {bound}", r.denoising.pure_noise_gap);
        let checks = t10_by_levels(&case, &*learned);
        for (level, gap, pure) in checks {
            prop_assert!(gap.value <= bound + 4.0 * gap.stderr + 1e-10, "{case:?} α={}: E‖D − D^S‖² {gap:?} > {bound}", level.alpha);
            if let Some(exact) = pure {
                prop_assert!((exact - r.denoising.pure_noise_gap).abs() < 1e-9, "{case:?}: pure noise by BP {exact} vs {}", r.denoising.pure_noise_gap);
            }
        }
    }
}

/// `E_A KL(P_{C|A} ‖ Q^S_{C|A})` with `p(c | a) = p(c) exp PMI(a, c)` from one joint BP pass per
/// pair (`bp::pmi`) and `p(c)` from BP, over every sequence of both sides.
fn kl_by_pairwise_bp(model: &Jghm, score: &dyn Learned, dir: Direction) -> f64 {
    let seqs = |p: Part| -> Vec<Vec<usize>> {
        (0..side_size(model, p) as usize)
            .map(|i| info::decode_sequence(i, model.len_of(p), model.vocab_of(p)))
            .collect()
    };
    let (xs, ys) = (seqs(Part::Image), seqs(Part::Text));
    let grid = score.grid(&xs, &ys);
    let (lpx, lpy): (Vec<f64>, Vec<f64>) = (
        xs.iter().map(|x| jghm::bp::log_px(model, x).unwrap()).collect(),
        ys.iter().map(|y| jghm::bp::log_py(model, y).unwrap()).collect(),
    );
    let pmi = |i: usize, j: usize| jghm::bp::pmi(model, &xs[i], &ys[j]).map_or(f64::NEG_INFINITY, |p| p.pmi);
    let (na, nc, lpa, lpc) = match dir {
        Direction::ImageToText => (xs.len(), ys.len(), &lpx, &lpy),
        Direction::TextToImage => (ys.len(), xs.len(), &lpy, &lpx),
    };
    let at = |a: usize, c: usize| if dir == Direction::ImageToText { (a, c) } else { (c, a) };
    (0..na)
        .filter(|&a| lpa[a] > f64::NEG_INFINITY)
        .map(|a| {
            let truth: Vec<f64> = (0..nc).map(|c| (lpc[c] + pmi(at(a, c).0, at(a, c).1)).exp()).collect();
            let row: Vec<f64> = (0..nc).map(|c| grid[at(a, c).0 * ys.len() + at(a, c).1]).collect();
            // Texts (images) of probability zero get no weight in Q^S either.
            lpa[a].exp() * kl(&truth, &induced_from_scores(lpc, &row))
        })
        .sum()
}

/// `Suff_Y(f) = I(X;Y) − I(f(X);Y)` from the brute-force joint, the images grouped by their
/// embedding (bit-equal `f64` vectors).
fn brute_suff(model: &Jghm, learned: &dyn Learned) -> f64 {
    let (xs, ys, p) = brute_joint(model);
    let f = learned.embeddings(Part::Image, &xs);
    let mut groups: Vec<(Vec<u64>, Vec<usize>)> = vec![];
    for (i, v) in f.iter().enumerate() {
        let key: Vec<u64> = v.iter().map(|x| x.to_bits()).collect();
        match groups.iter_mut().find(|g| g.0 == key) {
            Some(g) => g.1.push(i),
            None => groups.push((key, vec![i])),
        }
    }
    let ny = ys.len();
    let mut pt = vec![0.0; groups.len() * ny];
    for (t, (_, members)) in groups.iter().enumerate() {
        for &i in members {
            for j in 0..ny {
                pt[t * ny + j] += p[i * ny + j];
            }
        }
    }
    brute_mutual_information(xs.len(), ny, &p) - brute_mutual_information(groups.len(), ny, &pt)
}

/// Per noise level (4 levels of a cosine schedule and pure noise): the Monte Carlo
/// `E‖D − D^S‖²` over `X_t` (every text and image summed with its exact weight, 8 noise draws
/// each), asserting the pointwise Pinsker step on every draw; at pure noise also the exact value
/// with `D` by BP.
fn t10_by_levels(case: &Case, learned: &dyn Learned) -> Vec<(NoiseLevel, Estimate, Option<f64>)> {
    let model = &case.model;
    let images = SideLaw::new(model, Part::Image).unwrap();
    let texts = SideLaw::new(model, Part::Text).unwrap();
    let grid = learned.grid(&images.table.tokens, &texts.table.tokens);
    let ny = texts.table.len();
    let leaves = model.image_len() as f64;
    let schedule = Schedule::cosine(4);
    let mut levels: Vec<NoiseLevel> = (1..=4).map(|t| schedule.level(t)).collect();
    levels.push(NoiseLevel { alpha: 0.0, sigma: 1.0 });
    let mut r = rng::stream(case.seed, 10);
    levels
        .into_iter()
        .map(|level| {
            // Strata (y, x) with weight p(y) p(x|y), 8 noise draws each: the mean is exact in
            // (y, x), and its variance is Σ w² s²/8 with s² the within-stratum sample variance.
            let (mut mean, mut var, mut pure) = (0.0, 0.0, 0.0);
            for (j, y) in texts.table.tokens.iter().enumerate() {
                let column: Vec<f64> = (0..images.table.len()).map(|i| grid[i * ny + j]).collect();
                let guided = induced_from_scores(&images.table.log_p, &column);
                let truth = images.conditional(model, y).unwrap();
                let cond = Condition::Text(y.clone());
                for (i, x) in images.table.tokens.iter().enumerate() {
                    let draws: Vec<f64> = (0..DRAWS)
                        .map(|_| {
                            let x_t = level.forward(x, model.image_vocab(), &mut r);
                            let d = diffusion::denoise(model, &cond, &x_t, level).unwrap();
                            let ds = diffusion::guided_denoise(model, &images, &guided, &x_t, level);
                            let sq: f64 = d.iter().zip(&ds).map(|(a, b)| (a - b).powi(2)).sum();
                            let post = diffusion::posterior_under_prior(model, &images, &truth, &x_t, level);
                            let post_s = diffusion::posterior_under_prior(model, &images, &guided, &x_t, level);
                            let pointwise = leaves * kl(&post, &post_s);
                            assert!(sq <= pointwise + 1e-10, "{case:?}: ‖D − D^S‖² {sq} > N_X KL {pointwise}");
                            sq
                        })
                        .collect();
                    let w = texts.table.p(j) * truth[i];
                    let m = draws.iter().sum::<f64>() / DRAWS as f64;
                    let s2 = draws.iter().map(|v| (v - m).powi(2)).sum::<f64>() / (DRAWS as f64 - 1.0);
                    mean += w * m;
                    var += w * w * s2 / DRAWS as f64;
                    pure += w * draws[0];
                }
            }
            let se = var.sqrt();
            let estimate = Estimate { value: mean, stderr: se, ci95: [mean - 1.96 * se, mean + 1.96 * se] };
            (level, estimate, (level.alpha == 0.0).then_some(pure))
        })
        .collect()
}

/// Noise draws per `(y, x)` stratum.
const DRAWS: usize = 8;

/// T5's coarsened check is not vacuous: on a fixed case (a trained MLP pair on a model of the
/// random family, the grid step the embedding's spread) the cells merge images, the gap
/// `Suff_Y(q∘f)` is positive, and it is still at most the excess of `S_q`.
#[test]
fn t5_coarsened_gap_positive_on_a_fixed_case() {
    let model = RandomSpec { flip: 0.1, ..RandomSpec::symmetric(2, 2, 2, 7) }.build().expect("a valid spec");
    let case = Case { model, class: Class::Mlp, steps: 300, seed: 7 };
    let pair = train_pair(&case);
    let (suff, excess, cells, images) = coarsened_t5(&case.model, &*pair, 1.0);
    eprintln!("{case:?}: {cells} cells of {images} images, Suff {suff}, excess {excess}");
    assert!(cells < images, "{case:?}: {cells} cells for {images} images, nothing merged");
    assert!(suff > 1e-3, "{case:?}: Suff_Y(q∘f) = {suff}, the check would be vacuous");
    assert!(suff <= excess + 1e-10, "{case:?}: T5 Suff {suff} > excess {excess}");
}
