//! Library entry points that take tokens check them: a wrong length, a token outside the
//! vocabulary or a part without leaves is an error naming the problem, never a panic and never
//! a silently truncated answer.

use jghm::bp::{self, BpError};
use jghm::evidence::EvidenceError;
use jghm::model::Part;
use jghm::RandomSpec;

fn model() -> jghm::Jghm {
    RandomSpec::symmetric(3, 2, 2, 1).build().unwrap()
}

#[test]
fn pmi_refuses_a_wrong_length_or_an_unknown_token() {
    let m = model();
    let (x, y) = (vec![0, 2, 1, 1], vec![2, 2, 0, 1]);
    assert!(bp::pmi(&m, &x, &y).is_ok());
    let long = vec![0, 2, 1, 1, 1];
    assert!(matches!(
        bp::pmi(&m, &long, &y),
        Err(BpError::Evidence(EvidenceError::Length { part: Part::Image, got: 5, expected: 4 }))
    ));
    assert!(matches!(
        bp::pmi(&m, &x, &[2, 2, 0]),
        Err(BpError::Evidence(EvidenceError::Length { part: Part::Text, got: 3, expected: 4 }))
    ));
    assert!(matches!(
        bp::pmi(&m, &[0, 2, 1, 7], &y),
        Err(BpError::Evidence(EvidenceError::OutOfVocabulary { position: 3, token: 7, .. }))
    ));
}

#[test]
fn root_posterior_of_checks_its_tokens_and_part() {
    let m = model();
    assert!(bp::root_posterior_of(&m, Part::Text, &[0, 1, 2, 0]).is_ok());
    assert!(matches!(bp::root_posterior_of(&m, Part::Image, &[0, 1]), Err(BpError::Evidence(_))));
    assert!(matches!(bp::root_posterior_of(&m, Part::Image, &[0, 1, 2, 3]), Err(BpError::Evidence(_))));
    assert!(matches!(
        bp::root_posterior_of(&m, Part::Shared, &[0]),
        Err(BpError::Evidence(EvidenceError::NoLeaves { .. }))
    ));
}

#[test]
fn next_token_conditional_needs_a_next_position_and_known_tokens() {
    let m = model();
    let p = bp::next_token_conditional(&m, None, &[0, 1, 2]).unwrap();
    assert!((p.iter().sum::<f64>() - 1.0).abs() < 1e-12);
    assert_eq!(
        bp::next_token_conditional(&m, None, &[0, 1, 2, 0]),
        Err(BpError::NoNextToken { prefix: 4, positions: 4 })
    );
    assert!(matches!(bp::next_token_conditional(&m, None, &[0, 5]), Err(BpError::Evidence(_))));
    assert!(matches!(bp::next_token_conditional(&m, Some(&[0, 1]), &[0]), Err(BpError::Evidence(_))));
}

#[test]
fn log_probabilities_check_their_tokens() {
    let m = model();
    let (x, y) = ([0, 2, 1, 1], [2, 2, 0, 1]);
    assert!(bp::log_px(&m, &x).unwrap() < 0.0);
    assert!(bp::log_py(&m, &y).unwrap() < 0.0);
    assert!(bp::log_pxy(&m, &x, &y).unwrap() < 0.0);
    assert!(matches!(bp::log_px(&m, &[0, 2, 1, 1, 1]), Err(BpError::Evidence(EvidenceError::Length { .. }))));
    assert!(matches!(bp::log_py(&m, &[2, 2, 0, 3]), Err(BpError::Evidence(EvidenceError::OutOfVocabulary { .. }))));
    assert!(matches!(bp::log_pxy(&m, &x, &[0]), Err(BpError::Evidence(EvidenceError::Length { .. }))));
    assert!(bp::log_p_y_given_x(&m, &[9, 9, 9, 9], &y).is_err());
}

/// The generic entry points read any [`jghm::bp::Observation`]: raw token slices are checked too.
#[test]
fn observations_are_checked_before_any_pass() {
    let m = model();
    let short = bp::Tokens { image: Some(&[0, 1]), text: None };
    let unknown = bp::Tokens { image: None, text: Some(&[0, 1, 2, 3]) };
    assert!(bp::log_likelihood(&m, &short).is_err());
    assert!(bp::root_posterior(&m, &unknown).is_err());
    assert!(bp::marginals(&m, &short).is_err());
    let mut rng = jghm::rng::stream(1, 0);
    assert!(bp::sample_conditional(&m, &unknown, &mut rng).is_err());
    let lambda = vec![1.0; 3 * 3]; // three leaves' weights where the image has four
    let soft = jghm::evidence::SoftImage { lambda: &lambda, vocab: 3, text: &[0, 1, 2, 0] };
    assert!(bp::marginals(&m, &soft).is_err());
    let negative = [vec![1.0; 11], vec![-1.0]].concat();
    let soft = jghm::evidence::SoftImage { lambda: &negative, vocab: 3, text: &[0, 1, 2, 0] };
    assert!(matches!(bp::marginals(&m, &soft), Err(BpError::Evidence(EvidenceError::SoftEntry { position: 3, .. }))));
}

// The public token-taking functions outside `bp`: each is fed a wrong length, an
// out-of-vocabulary token and an empty slice, and must return an error (never panic).

use jghm::downstream::{self, bayes, generation, labels, laws::SideLaw, noise::NoiseLevel};
use jghm::score::{Encoder, LogWeighted, Pmi, Score};
use jghm::sufficiency::{Evaluator, Statistic};

/// Wrong length, out of vocabulary, empty, for a 4-leaf side of vocabulary 3.
fn bad() -> [Vec<usize>; 3] {
    [vec![0, 1, 2, 1, 0], vec![0, 1, 7, 1], vec![]]
}

#[test]
fn evidence_constructors_refuse_bad_tokens() {
    let m = model();
    for b in bad() {
        assert!(jghm::evidence::Evidence::image(&m, &b).is_err(), "{b:?}");
        assert!(jghm::evidence::Evidence::text(&m, &b).is_err(), "{b:?}");
        assert!(jghm::evidence::Evidence::pair(&m, &[0, 1, 2, 1], &b).is_err(), "{b:?}");
    }
}

#[test]
fn sampling_from_q_s_refuses_a_bad_image() {
    let m = model();
    let pmi = Pmi { model: &m };
    let mut rng = jghm::rng::stream(1, 0);
    assert!(jghm::contrastive::sample_induced(&m, &pmi, &[0, 1, 2, 1], 8, &mut rng).is_ok());
    for b in bad() {
        assert!(jghm::contrastive::sample_induced(&m, &pmi, &b, 8, &mut rng).is_err(), "{b:?}");
    }
}

#[test]
fn sufficiency_statistics_refuse_bad_tokens() {
    let m = model();
    for st in [Statistic::RootPosterior, Statistic::MapRoot, Statistic::MaskedPosterior(2), Statistic::FirstTokens(2)] {
        let eval = Evaluator::new(&m, Part::Image, st).unwrap();
        let mut ws = bp::Workspace::new(&m);
        assert!(eval.value(&mut ws, &[0, 1, 2, 1]).is_ok());
        for b in bad() {
            assert!(eval.value(&mut ws, &b).is_err(), "{st} {b:?}");
        }
    }
}

#[test]
fn scores_and_encoders_do_not_panic_on_bad_tokens() {
    let m = model();
    let t7 = LogWeighted::new(&m).unwrap();
    let (x, y) = ([0, 1, 2, 1], [2, 2, 0, 1]);
    assert!(t7.score(&x, &y).is_finite() && Pmi { model: &m }.score(&x, &y).is_finite());
    for b in bad() {
        // A score is a number: a bad pair scores -inf (no pair of tokens outside the model has
        // positive weight), for the exact PMI and for the T7 form alike.
        assert_eq!(Pmi { model: &m }.score(&b, &y), f64::NEG_INFINITY, "{b:?}");
        assert_eq!(t7.score(&b, &y), f64::NEG_INFINITY, "{b:?}");
        assert_eq!(t7.score(&x, &b), f64::NEG_INFINITY, "{b:?}");
        assert!(t7.image.try_encode(&b).is_err(), "{b:?}");
        assert!(t7.image.encode(&b).iter().all(|v| v.is_nan()), "{b:?}");
    }
}

#[test]
fn downstream_laws_refuse_bad_tokens() {
    let m = model();
    let texts = SideLaw::new(&m, Part::Text).unwrap();
    let pmi = Pmi { model: &m };
    let through = generation::ThroughStatistic::new(&m, Statistic::MapRoot).unwrap();
    let classes = downstream::diffusion::TextClasses::new(&m, Statistic::MapRoot).unwrap();
    let label = labels::Label::TextToken(0);
    let label = label.law(&m, None).unwrap();
    let mut ws = bp::marginals::MarginalWorkspace::new(&m);
    let next = bayes::BayesNextToken::new(&m);
    for b in bad() {
        assert!(texts.latent_of(&m, &b).is_err(), "{b:?}");
        assert!(texts.conditional(&m, &b).is_err(), "{b:?}");
        assert!(texts.index_of(&b).is_none(), "{b:?}");
        for g in [
            generation::Generator::Exact,
            generation::Generator::Induced { score: &pmi, pool: 4 },
            generation::Generator::Statistic(&through),
        ] {
            assert!(generation::law(&m, &g, &texts, &b).is_err(), "{b:?}");
        }
        assert!(through.class_of(&b).is_err(), "{b:?}");
        assert!(classes.condition_of(&b).is_err(), "{b:?}");
        assert!(downstream::diffusion::Condition::through(&m, Statistic::MapRoot, &b).is_err(), "{b:?}");
        assert!(label.bayes(&m, &b).is_err(), "{b:?}");
        assert!(bayes::first_token_law(&mut ws, &m, &b).is_err(), "{b:?}");
        assert!(next.conditionals(&[0, 1, 2, 1], &b).is_err(), "{b:?}");
        assert!(next.conditionals(&b, &[0, 1]).is_err(), "{b:?}");
        // A pure index (no model): only a token outside the vocabulary is refused.
        assert_eq!(downstream::sequence_index(&b, 3).is_none(), b.contains(&7), "{b:?}");
        let level = NoiseLevel { alpha: 0.5, sigma: 0.5 };
        let x_t = vec![0.0; m.image_len() * m.image_vocab()];
        assert!(level.evidence(&m, &x_t, Some(&b)).is_err(), "{b:?}");
        assert!(level.evidence(&m, &x_t[1..], None).is_err());
    }
    assert_eq!(downstream::sequence_index(&[2, 1], 3), Some(7));
    assert_eq!(downstream::sequence_index(&[2; 100], 3), None, "an index beyond usize");
}

#[test]
fn the_bp_transformer_refuses_bad_tokens() {
    let m = model();
    let net = jghm::emulate::BpTransformer::new(&m, Part::Image, jghm::emulate::Nonlinearity::Exact).unwrap();
    assert!(net.log_root_posterior(&[0, 1, 2, 1]).is_ok());
    for b in bad() {
        assert!(net.log_root_posterior(&b).is_err(), "{b:?}");
    }
}

/// The batched marginal workspace checks its evidence before its fast pass (a fifth image token
/// was silently ignored there).
#[test]
fn the_marginal_workspace_checks_its_evidence() {
    let m = model();
    let mut ws = bp::marginals::MarginalWorkspace::new(&m);
    assert!(ws.marginals(&bp::Tokens { image: Some(&[0, 1, 2, 1]), text: None }).is_ok());
    for b in bad() {
        assert!(ws.marginals(&bp::Tokens { image: Some(&b), text: None }).is_err(), "{b:?}");
    }
}

/// The learned side: for every class, the towers, the CLIP pair and the learned score refuse
/// a wrong length or an unknown token with an error naming it (the kernels are never run on
/// them), and the unchecked forms answer NaN or `-inf` instead of panicking.
#[test]
fn learned_towers_pairs_and_scores_refuse_bad_tokens() {
    use jghm::eval::{Learned, LearnedScore};
    use jghm::learn::WithEncoders;
    use jghm::learn::{with_encoders, CheckedConfig, Class, ClipPair, Encoder, Real, TokenError, TrainConfig};

    struct Go<'a>(&'a jghm::Jghm, &'a CheckedConfig, Class);
    impl WithEncoders for Go<'_> {
        type Output = ();
        fn run<R: Real, E: Encoder<R> + 'static>(self, make: &dyn Fn(Part) -> E) {
            let (m, cfg, class) = (self.0, self.1, self.2);
            let mut pair = ClipPair::new(make(Part::Image), make(Part::Text), cfg.head(m), cfg.scheme);
            let params = pair.init(&mut jghm::rng::stream(1, 0));
            let p = pair.dim();
            let k = cfg.scheme.encoded(2);
            // `k` samples of four tokens each, all in the vocabulary 0..3.
            let good: Vec<u32> = (0..4 * k as u32).map(|i| i % 3).collect();
            let short: Vec<u32> = good[1..].to_vec();
            let mut unknown = good.clone();
            unknown[4 + 2] = 7;
            assert_eq!(pair.embed_images(&params, &good).unwrap().len(), k * p, "{class:?}");
            let length = TokenError::Length { got: 4 * k - 1, seq_len: 4 };
            let vocab = TokenError::OutOfVocabulary { sample: 1, position: 2, token: 7, vocab: 3 };
            assert_eq!(pair.embed_images(&params, &short), Err(length.clone()), "{class:?}");
            assert_eq!(pair.embed_texts(&params, &unknown), Err(vocab.clone()), "{class:?}");
            assert_eq!(vocab.to_string(), "token 7 at position 2 of sample 1 is out of the vocabulary 0..3");
            let mut grads = params.zeros_like();
            assert!(pair.loss_and_grad(&params, &good, &good, &mut grads).unwrap().loss.is_finite());
            assert_eq!(pair.loss_and_grad(&params, &unknown, &good, &mut grads), Err(vocab.clone()));
            assert_eq!(pair.loss(&params, &good, &short), Err(length));
            let unpaired = pair.loss(&params, &good, &good[..4 * (k - 1)]);
            assert_eq!(unpaired, Err(TokenError::Unpaired { images: k, texts: k - 1 }), "{class:?}");
            // The tower itself: an output buffer too short, and a backward pass on other tokens.
            let mut out = vec![R::zero(); k * p - 1];
            assert!(matches!(pair.image.forward(&params.image, &good, &mut out), Err(TokenError::Buffer { .. })));
            let mut out = vec![R::zero(); k * p];
            pair.image.forward(&params.image, &good, &mut out).unwrap();
            let mut d = vec![R::zero(); params.image.len()];
            let other = pair.image.backward(&params.image, &good[4..], &out[p..], &mut d);
            assert_eq!(other, Err(TokenError::NotLastForward { got: 4 * k - 4, expected: 4 * k }));
            pair.image.backward(&params.image, &good, &out, &mut d).unwrap();

            // The learned score: checked forms are errors, unchecked ones -inf and NaN.
            let score = LearnedScore::new(make(Part::Image), make(Part::Text), params, cfg.head(m));
            let x = vec![0, 1, 2, 1];
            assert!(score.try_score(&x, &x).unwrap().is_finite(), "{class:?}");
            for b in bad() {
                if b.is_empty() {
                    continue;
                }
                assert!(score.try_score(&b, &x).is_err() && score.try_score(&x, &b).is_err(), "{class:?} {b:?}");
                assert!(score.try_encode(true, &[x.clone(), b.clone()]).is_err());
                assert_eq!(score.score(&b, &x), f64::NEG_INFINITY, "{class:?} {b:?}");
                let grid = score.grid(&[x.clone(), b.clone()], &[x.clone(), b.clone()]);
                assert!(grid[0].is_finite() && grid[1..].iter().all(|&s| s == f64::NEG_INFINITY), "{grid:?}");
                let rows = score.embeddings(Part::Text, &[b.clone(), x.clone()]);
                assert!(rows[0].iter().all(|v| v.is_nan()) && rows[1].iter().all(|v| v.is_finite()));
            }
            let err = score.try_score(&x, &[0, 1, 7, 1]).unwrap_err().to_string();
            assert!(err.contains("text token at position 2 is 7"), "{err}");
        }
    }
    let m = model();
    for class in [Class::Bp, Class::Mlp, Class::Transformer] {
        let mut cfg = TrainConfig::for_class(class);
        (cfg.width, cfg.heads, cfg.layers, cfg.out) = (8, 2, 1, 4);
        let cfg = cfg.check(&m).expect("a valid configuration");
        with_encoders(&cfg, &m, Go(&m, &cfg, class));
    }
}
