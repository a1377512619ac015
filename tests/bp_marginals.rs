//! The batched marginals (`bp::marginals`, probability domain, rescaled) against the log-domain
//! oracle `bp::marginals` (T1's item 3), to 1e-12.

mod common;

use common::{arb_model, random_tokens};
use jghm::bp::marginals::{marginals_batch, MarginalWorkspace};
use jghm::bp::{self, Tokens};
use jghm::evidence::{Evidence, Leaf};
use jghm::model::{Jghm, Part};
use jghm::tolerance::FAST;
use proptest::prelude::*;

fn flat_reference(model: &Jghm, obs: &impl bp::Observation) -> Vec<f64> {
    bp::marginals(model, obs).expect("possible evidence").concat()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn batched_marginals_equal_the_log_domain_oracle(model in arb_model(), seed in any::<u64>(), text in any::<bool>()) {
        let part = if text { Part::Text } else { Part::Image };
        let obs: Vec<Vec<usize>> = (0..7).map(|i| random_tokens(&model, part, seed ^ i)).collect();
        let batch = marginals_batch(&model, part, &obs);
        let n = model.tree().total_states;
        for (i, x) in obs.iter().enumerate() {
            let tokens = if text { Tokens { image: None, text: Some(x) } } else { Tokens { image: Some(x), text: None } };
            for (a, b) in batch[i * n..(i + 1) * n].iter().zip(flat_reference(&model, &tokens)) {
                prop_assert!((a - b).abs() <= FAST, "{a} vs {b}");
            }
        }
    }

    /// Soft and missing evidence on both towers, through the workspace directly.
    #[test]
    fn workspace_marginals_with_soft_evidence(model in arb_model(), seed in any::<u64>()) {
        let mut ev = Evidence::none(&model);
        for (i, leaf) in ev.image.iter_mut().enumerate() {
            let v = model.image_vocab();
            *leaf = match (seed >> (i % 60)) % 3 {
                0 => Leaf::Observed((seed as usize + i) % v),
                1 => Leaf::Missing,
                _ => Leaf::Soft((0..v).map(|b| 0.1 + ((seed as usize + i * 7 + b) % 5) as f64).collect()),
            };
        }
        ev.text[0] = Leaf::Soft(vec![0.5; model.text_vocab()]);
        let mut out = vec![0.0; model.tree().total_states];
        let mut ws = MarginalWorkspace::new(&model);
        prop_assert!(ws.marginals_into(&ev, &mut out));
        for (a, b) in out.iter().zip(flat_reference(&model, &ev)) {
            prop_assert!((a - b).abs() <= FAST, "{a} vs {b}");
        }
    }
}

#[test]
fn impossible_observations_give_nan_rows_and_threads_do_not_matter() {
    let json = r#"{"prior":[0.5,0.5],
        "image":[{"transitions":[[[1.0,0.0],[1.0,0.0]]]}],
        "text":[{"transitions":[[[0.5,0.5],[0.5,0.5]]]}]}"#;
    let model = Jghm::from_json(json).unwrap();
    let out = marginals_batch(&model, Part::Image, &[vec![0], vec![1]]);
    let n = model.tree().total_states;
    assert!(out[..n].iter().all(|v| v.is_finite()));
    assert!(out[n..].iter().all(|v| v.is_nan()));

    let model = jghm::RandomSpec::symmetric(5, 3, 3, 2).build().unwrap();
    let xs: Vec<Vec<usize>> = jghm::sample::sample_pairs(&model, 700, 1, false).into_iter().map(|p| p.image).collect();
    let run = |t| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(t)
            .build()
            .unwrap()
            .install(|| marginals_batch(&model, Part::Image, &xs))
    };
    assert_eq!(run(1), run(2));
}
