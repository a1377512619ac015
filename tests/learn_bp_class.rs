//! The BP class is well-specified (T7): at the true transitions and prior, its encoder outputs
//! the exact root log-likelihoods `log p(x | z)` and its score is the exact PMI.

mod common;

use jghm::learn::score_head::HeadCache;
use jghm::learn::{BpEncoder, Encoder, Head};
use jghm::model::Part;
use proptest::prelude::*;

/// The embeddings `(u, v)` of one pair: the image tower's encoder on `x`, the text tower's on `y`,
/// each at its parameters, with `dim` outputs.
fn encode_pair(
    image: (&BpEncoder, &[f64]),
    text: (&BpEncoder, &[f64]),
    pair: &jghm::sample::Pair,
    dim: usize,
) -> (Vec<f64>, Vec<f64>) {
    let embed = |(enc, params): (&BpEncoder, &[f64]), tokens: &[usize]| {
        let tokens: Vec<u32> = tokens.iter().map(|&t| t as u32).collect();
        let mut out = vec![0.0; dim];
        let mut cache = Encoder::<f64>::new_cache(enc, 1);
        enc.forward(params, &tokens, 1, &mut cache, &mut out);
        out
    };
    (embed(image, &pair.image), embed(text, &pair.text))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 16, ..ProptestConfig::default() })]

    #[test]
    fn t7_bp_class_at_truth_scores_the_exact_pmi(shape in common::arb_shape(), regime in common::arb_regime(), seed in any::<u64>()) {
        let model = common::build(&shape, regime, seed);
        prop_assume!(!model.has_trunk());
        let (fi, gi) = (BpEncoder::for_tower(&model, Part::Image).unwrap(), BpEncoder::for_tower(&model, Part::Text).unwrap());
        let (ti, tt) = (BpEncoder::truth(&model, Part::Image), BpEncoder::truth(&model, Part::Text));
        let rho: Vec<f64> = model.prior().iter().map(|p| p.ln().max(-700.0)).collect();
        let s0 = model.root_states();
        let pairs = jghm::sample::sample_pairs(&model, 4, seed, false);
        for pr in &pairs {
            let (u, v) = encode_pair((&fi, &ti), (&gi, &tt), pr, s0);
            // u(z) = log p(x | z) = h_root of BP on the image alone
            let mut ws = jghm::Workspace::new(&model);
            ws.upward(&model, &jghm::Tokens { image: Some(&pr.image), text: None });
            for (z, (uz, hz)) in u.iter().zip(ws.h(&model, 0)).enumerate() {
                prop_assert!((uz - hz).abs() < jghm::tolerance::EXACT, "u({z}) = {uz} vs BP {hz}");
            }
            let mut scores = vec![];
            Head::T7 { states: s0 }.forward(&rho, &u, &v, s0, &[(0, 0)], &mut scores, &mut HeadCache::default());
            let exact = jghm::pmi(&model, &pr.image, &pr.text).unwrap().pmi;
            prop_assert!((scores[0] - exact).abs() < jghm::tolerance::EXACT, "S = {} vs PMI {exact}", scores[0]);
        }
    }

    /// `BpEncoder::with_state_factor` still contains the truth: with every true state copied
    /// `k` times (`BpEncoder::truth_with_state_factor`) and the prior split evenly, the encoder
    /// outputs `log p(x | z)` for every copy of `z` and the score is the exact PMI.
    #[test]
    fn t7_bp_class_with_extra_states_contains_the_truth(shape in common::arb_shape(), regime in common::arb_regime(), seed in any::<u64>(), k in 2usize..4) {
        let model = common::build(&shape, regime, seed);
        prop_assume!(!model.has_trunk());
        let enc = |p| BpEncoder::with_state_factor(&model, p, k).unwrap();
        let (fi, gi) = (enc(Part::Image), enc(Part::Text));
        let (ti, tt) = (BpEncoder::truth_with_state_factor(&model, Part::Image, k), BpEncoder::truth_with_state_factor(&model, Part::Text, k));
        prop_assert_eq!(ti.len(), Encoder::<f64>::num_params(&fi));
        prop_assert_eq!(tt.len(), Encoder::<f64>::num_params(&gi));
        let s0 = model.root_states();
        let rho: Vec<f64> = (0..k * s0).map(|c| model.prior()[c / k].ln().max(-700.0)).collect();
        for pr in &jghm::sample::sample_pairs(&model, 4, seed, false) {
            let (u, v) = encode_pair((&fi, &ti), (&gi, &tt), pr, k * s0);
            let mut ws = jghm::Workspace::new(&model);
            ws.upward(&model, &jghm::Tokens { image: Some(&pr.image), text: None });
            for (c, uc) in u.iter().enumerate() {
                let hz = ws.h(&model, 0)[c / k];
                prop_assert!((uc - hz).abs() < jghm::tolerance::EXACT, "u({c}) = {uc} vs BP {hz}");
            }
            let mut scores = vec![];
            Head::T7 { states: k * s0 }.forward(&rho, &u, &v, k * s0, &[(0, 0)], &mut scores, &mut HeadCache::default());
            let exact = jghm::pmi(&model, &pr.image, &pr.text).unwrap().pmi;
            prop_assert!((scores[0] - exact).abs() < jghm::tolerance::EXACT, "S = {} vs PMI {exact}", scores[0]);
        }
    }
}
