//! The batched marginals (`bp::marginals`, probability domain, rescaled, SIMD lanes) against
//! the log-domain oracle `bp::marginals` (T1's item 3): every node's marginal to 1e-12
//! (absolute: they are probabilities), `log p(evidence)` to 1e-12 relative.

mod common;

use common::{arb_model, random_tokens};
use jghm::bp::marginals::{marginals_batch, marginals_pairs, BatchMarginals, LANES};
use jghm::bp::{self, Observation, Tokens};
use jghm::evidence::{Evidence, Leaf};
use jghm::model::{Jghm, Part};
use jghm::sample::sample_pairs;
use jghm::tolerance::FAST;
use proptest::prelude::*;

fn flat_reference(model: &Jghm, obs: &impl Observation) -> Vec<f64> {
    bp::marginals(model, obs).expect("possible evidence").concat()
}

fn one_side(part: Part, x: &[usize]) -> Tokens<'_> {
    if part == Part::Image {
        Tokens { image: Some(x), text: None }
    } else {
        Tokens { image: None, text: Some(x) }
    }
}

/// Row `i` of the batch against the oracle, marginals absolutely and `log p` relatively.
fn check_row(model: &Jghm, obs: &impl Observation, row: &[f64], ll: f64) -> Result<(), TestCaseError> {
    for (u, (a, b)) in row.iter().zip(flat_reference(model, obs)).enumerate() {
        prop_assert!((a - b).abs() <= FAST, "entry {u}: {a} vs {b}");
    }
    let expected = bp::log_likelihood(model, obs).unwrap();
    prop_assert!((ll - expected).abs() <= FAST * expected.abs().max(1.0), "log p {ll} vs {expected}");
    Ok(())
}

/// Evidence of every kind, different in each observation: observed, missing and soft leaves.
fn mixed_evidence(model: &Jghm, seed: u64) -> Evidence {
    let mut ev = Evidence::none(model);
    for (part, leaves) in [(Part::Image, &mut ev.image), (Part::Text, &mut ev.text)] {
        let v = model.vocab_of(part);
        for (i, leaf) in leaves.iter_mut().enumerate() {
            let r = seed.rotate_left(7 * i as u32 + 3 * (part == Part::Text) as u32);
            *leaf = match r % 4 {
                0 | 1 => Leaf::Observed((r >> 8) as usize % v),
                2 => Leaf::Missing,
                _ => Leaf::Soft((0..v).map(|b| 0.1 + ((r >> 16) as usize + b * 7) as f64 % 5.0).collect()),
            };
        }
    }
    ev
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// One modality observed (random tokens: some impossible under near-deterministic models,
    /// which must come back as NaN rows), more than one block of lanes.
    #[test]
    fn batched_marginals_equal_the_log_domain_oracle(model in arb_model(), seed in any::<u64>(), text in any::<bool>()) {
        let part = if text { Part::Text } else { Part::Image };
        let obs: Vec<Vec<usize>> = (0..2 * LANES as u64 + 3).map(|i| random_tokens(&model, part, seed ^ i)).collect();
        let tokens: Vec<Tokens> = obs.iter().map(|x| one_side(part, x)).collect();
        let n = model.tree().total_states;
        let (mut out, mut ll) = (vec![0.0; obs.len() * n], vec![0.0; obs.len()]);
        BatchMarginals::new(&model).marginals_into(&tokens, &mut out, &mut ll);
        prop_assert_eq!(&out.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            &marginals_batch(&model, part, &obs).iter().map(|v| v.to_bits()).collect::<Vec<_>>());
        for (i, t) in tokens.iter().enumerate() {
            let row = &out[i * n..(i + 1) * n];
            if bp::log_likelihood(&model, t).unwrap() == f64::NEG_INFINITY {
                prop_assert!(row.iter().all(|v| v.is_nan()) && ll[i] == f64::NEG_INFINITY);
            } else {
                check_row(&model, t, row, ll[i])?;
            }
        }
    }

    /// Pairs `(x, y)` sampled from the model: every node given both sides, and `log p(x, y)`.
    #[test]
    fn batched_pair_marginals_equal_the_log_domain_oracle(model in arb_model(), seed in any::<u64>()) {
        let pairs = sample_pairs(&model, LANES + 5, seed, false);
        let (xs, ys): (Vec<_>, Vec<_>) = pairs.into_iter().map(|p| (p.image, p.text)).unzip();
        let (out, ll) = marginals_pairs(&model, &xs, &ys);
        let n = model.tree().total_states;
        for (i, (x, y)) in xs.iter().zip(&ys).enumerate() {
            check_row(&model, &Tokens { image: Some(x), text: Some(y) }, &out[i * n..(i + 1) * n], ll[i])?;
        }
    }

    /// Observed, missing and soft leaves on both towers, a different mix in every lane.
    #[test]
    fn batched_marginals_with_mixed_evidence(model in arb_model(), seed in any::<u64>()) {
        let evidence: Vec<Evidence> = (0..LANES as u64 + 1).map(|i| mixed_evidence(&model, seed.wrapping_mul(i + 1))).collect();
        let n = model.tree().total_states;
        let (mut out, mut ll) = (vec![0.0; evidence.len() * n], vec![0.0; evidence.len()]);
        BatchMarginals::new(&model).marginals_into(&evidence, &mut out, &mut ll);
        for (i, ev) in evidence.iter().enumerate() {
            if bp::log_likelihood(&model, ev).unwrap() == f64::NEG_INFINITY {
                prop_assert!(out[i * n..(i + 1) * n].iter().all(|v| v.is_nan()));
            } else {
                check_row(&model, ev, &out[i * n..(i + 1) * n], ll[i])?;
            }
        }
    }
}

/// Pairs with the `part` tower the same in every lane (observed everywhere, or missing
/// everywhere: read in bulk) and the other observed in every other lane (read leaf by leaf).
fn one_side_whole(pairs: &[jghm::sample::Pair], part: Part, observed: bool) -> Vec<Tokens<'_>> {
    pairs
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let (whole, other) = match part {
                Part::Image => (&p.image, &p.text),
                _ => (&p.text, &p.image),
            };
            let (whole, other) = (observed.then_some(&whole[..]), (i % 2 == 0).then_some(&other[..]));
            match part {
                Part::Image => Tokens { image: whole, text: other },
                _ => Tokens { image: other, text: whole },
            }
        })
        .collect()
}

/// The marginals of `obs` for `batch`, and how many observations the oracle recomputed.
fn run(batch: &BatchMarginals, obs: &[impl Observation + Sync]) -> (Vec<f64>, Vec<f64>, usize) {
    let (mut out, mut ll) = (vec![0.0; obs.len() * batch.row_len()], vec![0.0; obs.len()]);
    let recomputed = batch.marginals_into(obs, &mut out, &mut ll);
    (out, ll, recomputed)
}

/// The probability-domain passes answer by themselves inside their safe range, and the oracle
/// recomputes exactly the observations outside it (T1's item 3, module doc of
/// `bp::marginals`). Without this, an arithmetic error that drove the fast numbers to zero
/// would be answered by the oracle and every accuracy test above would pass.
///
/// Inside: sampled observations of generic models, given one side (the other tower empty in
/// every lane), both sides, or mixed evidence (missing and soft leaves), for every node or a
/// selection, and through the one-observation workspace. Outside: impossible images, and
/// possible images whose leaf message is `10^-300 < 2^-960` from every state.
#[test]
fn t1_batched_marginals_fall_back_to_the_oracle_only_outside_the_safe_range() {
    // (4, 3, 7): 2187 leaves a side, `p(x)` near `4^-2187`, far below the smallest double.
    for (states, children, depth) in [(10, 3, 4), (4, 2, 6), (64, 2, 2), (4, 3, 7)] {
        let model = jghm::RandomSpec::symmetric(states, children, depth, 3).build().unwrap();
        let pairs = sample_pairs(&model, 300, 4, false);
        let images: Vec<Tokens> = pairs.iter().map(|p| one_side(Part::Image, &p.image)).collect();
        let texts: Vec<Tokens> = pairs.iter().map(|p| one_side(Part::Text, &p.text)).collect();
        let both: Vec<Tokens> = pairs.iter().map(|p| Tokens { image: Some(&p.image), text: Some(&p.text) }).collect();
        let mixed: Vec<Evidence> = (0..50).map(|i| mixed_evidence(&model, 0x5EED ^ i)).collect();
        let (all, some) = (BatchMarginals::new(&model), BatchMarginals::selected(&model, &some_nodes(&model, 7)));
        let n = model.tree().total_states;
        for batch in [&all, &some] {
            let what = format!("S={states} m={children} depth={depth}, {} numbers a row", batch.row_len());
            assert_eq!(run(batch, &images).2, 0, "images, {what}");
            assert_eq!(run(batch, &texts).2, 0, "texts, {what}");
            assert_eq!(run(batch, &mixed).2, 0, "mixed evidence, {what}");
            for (part, observed) in [(Part::Image, true), (Part::Image, false), (Part::Text, true), (Part::Text, false)]
            {
                let tokens = one_side_whole(&pairs[..50], part, observed);
                assert_eq!(run(batch, &tokens).2, 0, "{part:?} whole (observed: {observed}), {what}");
            }
            let (out, _, recomputed) = run(batch, &both);
            assert_eq!(recomputed, 0, "pairs, {what}");
            if batch.row_len() == n {
                for (i, t) in both.iter().enumerate().step_by(37) {
                    for (a, b) in out[i * n..(i + 1) * n].iter().zip(flat_reference(&model, t)) {
                        assert!((a - b).abs() <= FAST, "{what}: {a} vs {b}");
                    }
                }
            }
        }
        let mut workspace = jghm::bp::marginals::MarginalWorkspace::new(&model);
        let mut row = vec![0.0; n];
        assert!(mixed.iter().all(|ev| workspace.marginals_into(ev, &mut row)), "workspace, S={states}");
    }
    // Two image leaves; token 1 is emitted with probability `token_one` from both root states.
    let two_leaves = |token_one: f64| {
        let json = format!(
            r#"{{"prior":[0.4,0.6],
            "image":[{{"transitions":[[[{a},{token_one}],[{a},{token_one}]],[[{a},{token_one}],[{a},{token_one}]]]}}],
            "text":[{{"transitions":[[[0.6,0.4],[0.3,0.7]]]}}]}}"#,
            a = 1.0 - token_one
        );
        Jghm::from_json(&json).unwrap()
    };
    let xs: Vec<Vec<usize>> = (0..2 * LANES + 3).map(|i| vec![0, usize::from(i % 3 == 0)]).collect();
    let with_a_one = xs.iter().filter(|x| x[1] == 1).count();
    assert_eq!(with_a_one, 7);
    let model = two_leaves(0.0);
    let images: Vec<Tokens> = xs.iter().map(|x| one_side(Part::Image, x)).collect();
    let n = model.tree().total_states;
    let (out, ll, recomputed) = run(&BatchMarginals::new(&model), &images);
    assert_eq!(recomputed, with_a_one, "the impossible images, and only they");
    for (i, x) in xs.iter().enumerate() {
        let row = &out[i * n..(i + 1) * n];
        assert_eq!(row.iter().all(|v| v.is_nan()), x[1] == 1, "image {i}: {row:?}");
        assert_eq!(ll[i] == f64::NEG_INFINITY, x[1] == 1, "image {i}: {}", ll[i]);
    }
    // Possible, but below the floor: the images with a 1, whose answers are the oracle's.
    let model = two_leaves(1e-300);
    let (out, ll, recomputed) = run(&BatchMarginals::new(&model), &images);
    assert_eq!(recomputed, with_a_one, "the images with a 1, and only they");
    for (i, t) in images.iter().enumerate() {
        let row = &out[i * n..(i + 1) * n];
        // Both states emit a 1 alike: the root's marginal is the prior.
        assert!((row[0] - 0.4).abs() < 1e-12 && (row[1] - 0.6).abs() < 1e-12, "image {i}: {row:?}");
        for (a, b) in row.iter().zip(flat_reference(&model, t)) {
            assert!((a - b).abs() <= FAST, "image {i}: {a} vs {b}");
        }
        let expected = if xs[i][1] == 1 { 1e-300f64.ln() } else { 0.0 };
        assert!((ll[i] - expected).abs() < 1e-9, "image {i}: log p {} vs {expected}", ll[i]);
    }
    // The root alone: no outside vector below it is formed (whose normaliser would fall below
    // the floor too), so the root's scaled maximum is what sends these lanes to the oracle.
    let (root, _, recomputed) = run(&BatchMarginals::selected(&model, &[0]), &images);
    assert_eq!(recomputed, with_a_one, "the images with a 1, root only");
    assert!(root.chunks(2).all(|r| (r[0] - 0.4).abs() < 1e-12 && (r[1] - 0.6).abs() < 1e-12), "{root:?}");
    let mut workspace = jghm::bp::marginals::MarginalWorkspace::new(&model);
    let mut row = vec![0.0; n];
    assert!(workspace.marginals_into(&images[1], &mut row), "an image without a 1 is in range");
    assert!(!workspace.marginals_into(&images[0], &mut row), "an image with a 1 is not");
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
    let xs: Vec<Vec<usize>> = sample_pairs(&model, 700, 1, false).into_iter().map(|p| p.image).collect();
    let run = |t| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(t)
            .build()
            .unwrap()
            .install(|| marginals_batch(&model, Part::Image, &xs))
    };
    assert_eq!(run(1), run(2));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    /// The one-observation workspace (used by `reproduce`) gives the oracle's marginals too.
    #[test]
    fn workspace_marginals_with_soft_evidence(model in arb_model(), seed in any::<u64>()) {
        let ev = mixed_evidence(&model, seed);
        prop_assume!(bp::log_likelihood(&model, &ev).unwrap() > -600.0);
        let mut out = vec![0.0; model.tree().total_states];
        let mut ws = jghm::bp::marginals::MarginalWorkspace::new(&model);
        prop_assert!(ws.marginals_into(&ev, &mut out));
        for (a, b) in out.iter().zip(flat_reference(&model, &ev)) {
            prop_assert!((a - b).abs() <= FAST, "{a} vs {b}");
        }
    }
}

/// A selection of nodes drawn from `seed`: each node kept with probability about 1/3, in a
/// shuffled order (the row follows the order asked for).
fn some_nodes(model: &Jghm, seed: u64) -> Vec<usize> {
    let n = model.tree().nodes.len();
    let mut nodes: Vec<usize> = (0..n)
        .filter(|&u| (seed.rotate_left(u as u32 % 64) ^ u as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15).is_multiple_of(3))
        .collect();
    let k = nodes.len();
    for i in 0..k {
        nodes.swap(i, (seed as usize).wrapping_add(i * 7) % k);
    }
    nodes
}

/// The selected node marginals (row: the asked-for nodes in the order asked) against the oracle.
fn check_selected(
    model: &Jghm,
    nodes: &[usize],
    obs: &impl Observation,
    row: &[f64],
    ll: f64,
) -> Result<(), TestCaseError> {
    let reference = bp::marginals(model, obs).expect("possible evidence");
    let mut at = 0;
    for &u in nodes {
        for (b, expected) in reference[u].iter().enumerate() {
            let got = row[at + b];
            prop_assert!((got - expected).abs() <= FAST, "node {u} state {b}: {got} vs {expected}");
        }
        at += reference[u].len();
    }
    prop_assert_eq!(at, row.len());
    let expected = bp::log_likelihood(model, obs).unwrap();
    prop_assert!((ll - expected).abs() <= FAST * expected.abs().max(1.0), "log p {ll} vs {expected}");
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// `BatchMarginals::selected`: any subset of nodes in any order, for mixed evidence (observed,
    /// missing and soft leaves on both towers, a different mix in every lane), equals the oracle;
    /// streaming gives the same rows bit for bit.
    #[test]
    fn selected_marginals_equal_the_log_domain_oracle(model in arb_model(), seed in any::<u64>()) {
        let nodes = some_nodes(&model, seed);
        let batch = BatchMarginals::selected(&model, &nodes);
        let evidence: Vec<Evidence> =
            (0..2 * LANES as u64 + 1).map(|i| mixed_evidence(&model, seed.wrapping_mul(i + 3))).collect();
        let n = batch.row_len();
        let (mut out, mut ll) = (vec![0.0; evidence.len() * n], vec![0.0; evidence.len()]);
        batch.marginals_into(&evidence, &mut out, &mut ll);
        for (i, ev) in evidence.iter().enumerate() {
            if bp::log_likelihood(&model, ev).unwrap() == f64::NEG_INFINITY {
                prop_assert!(out[i * n..(i + 1) * n].iter().all(|v| v.is_nan()));
            } else {
                check_selected(&model, &nodes, ev, &out[i * n..(i + 1) * n], ll[i])?;
            }
        }
        let streamed: Vec<f64> = batch
            .fold_chunks(&evidence, Vec::new, |mut acc, _, rows, _| { acc.extend_from_slice(rows); acc })
            .concat();
        prop_assert_eq!(streamed.iter().map(|v| v.to_bits()).collect::<Vec<_>>(), out.iter().map(|v| v.to_bits()).collect::<Vec<_>>());
    }

    /// The selections callers ask for: the text leaves given the image (`p(y_j | x)`), the root
    /// and every leaf given a pair, and nothing at all (then only `log p`).
    #[test]
    fn leaf_and_root_selections_equal_the_log_domain_oracle(model in arb_model(), seed in any::<u64>()) {
        let tree = model.tree();
        let pairs = sample_pairs(&model, LANES + 3, seed, false);
        let root_and_leaves: Vec<usize> =
            std::iter::once(0).chain(tree.image_leaves.iter().copied()).chain(tree.text_leaves.iter().copied()).collect();
        let images: Vec<Tokens> = pairs.iter().map(|p| Tokens { image: Some(&p.image), text: None }).collect();
        let both: Vec<Tokens> = pairs.iter().map(|p| Tokens { image: Some(&p.image), text: Some(&p.text) }).collect();
        for (nodes, obs) in [(&tree.text_leaves, &images), (&root_and_leaves, &both), (&vec![], &both)] {
            let batch = BatchMarginals::selected(&model, nodes);
            let n = batch.row_len();
            let (mut out, mut ll) = (vec![0.0; obs.len() * n], vec![0.0; obs.len()]);
            batch.marginals_into(obs, &mut out, &mut ll);
            for (i, t) in obs.iter().enumerate() {
                check_selected(&model, nodes, t, &out[i * n..(i + 1) * n], ll[i])?;
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    /// One tower the same in every lane (every leaf observed, or every leaf missing: read in
    /// bulk) and the other observed in every other lane (read leaf by leaf), both ways round:
    /// the bulk reading of one side must not stand in for the other's.
    #[test]
    fn batched_marginals_with_one_side_whole_and_the_other_mixed(model in arb_model(), seed in any::<u64>()) {
        let pairs = sample_pairs(&model, LANES + 3, seed, false);
        let n = model.tree().total_states;
        for (part, observed) in [(Part::Image, true), (Part::Image, false), (Part::Text, true), (Part::Text, false)] {
            let tokens = one_side_whole(&pairs, part, observed);
            let (out, ll, _) = run(&BatchMarginals::new(&model), &tokens);
            for (i, t) in tokens.iter().enumerate() {
                check_row(&model, t, &out[i * n..(i + 1) * n], ll[i])?;
            }
        }
    }
}

/// `fold_chunks` hands over every block once, in order within its chunk, with the index of its
/// first observation, and the same rows and `log p` as `marginals_into`, over several chunks.
#[test]
fn fold_chunks_streams_each_block_with_its_first_index() {
    let model = jghm::RandomSpec::symmetric(4, 2, 3, 6).build().unwrap();
    let pairs = sample_pairs(&model, 2 * jghm::bp::CHUNK + 13, 8, false);
    let images: Vec<Tokens> = pairs.iter().map(|p| one_side(Part::Image, &p.image)).collect();
    let batch = BatchMarginals::selected(&model, &model.tree().text_leaves);
    let n = batch.row_len();
    let (out, ll, _) = run(&batch, &images);
    let chunks = batch.fold_chunks(&images, Vec::new, |mut acc, first, rows, lls| {
        acc.push((first, rows.to_vec(), lls.to_vec()));
        acc
    });
    assert_eq!(chunks.len(), 3, "three chunks");
    let mut next = 0;
    for (first, rows, lls) in chunks.into_iter().flatten() {
        assert_eq!(first, next, "blocks in order, none skipped");
        assert_eq!(rows.len(), lls.len() * n);
        assert_eq!(rows, out[first * n..first * n + rows.len()], "rows of the block at {first}");
        assert_eq!(lls, ll[first..first + lls.len()], "log p of the block at {first}");
        next += lls.len();
    }
    assert_eq!(next, images.len());
}

#[test]
#[should_panic(expected = "asked for twice")]
fn a_node_asked_for_twice_is_refused() {
    let model = jghm::RandomSpec::symmetric(3, 2, 2, 1).build().unwrap();
    BatchMarginals::selected(&model, &[0, 2, 0]);
}

/// The incremental next-token engine (`bp::Incremental`, probability domain, one walk down and
/// up a leaf's path per position) against the log-domain conditionals, position by position,
/// on random models of every shape. Where it reports `None` (a vector beyond its range) the
/// callers use the reference; it must do so on only a few draws, or it would be useless.
#[test]
fn incremental_next_token_equals_log_domain_bp() {
    let (answered, asked) = (std::cell::Cell::new(0), std::cell::Cell::new(0));
    proptest!(ProptestConfig::with_cases(48), |(model in arb_model(), seed in 0u64..1000)| {
        let v = model.text_vocab();
        let mut engine = bp::Incremental::new(&model);
        for pair in &sample_pairs(&model, 2, seed, false) {
            asked.set(asked.get() + 1);
            let Some(fast) = engine.conditionals(&pair.image, &pair.text) else { continue };
            answered.set(answered.get() + 1);
            for t in 0..model.text_len() {
                let slow = bp::next_token_conditional(&model, Some(&pair.image), &pair.text[..t]).unwrap();
                for (a, b) in fast[t * v..(t + 1) * v].iter().zip(&slow) {
                    prop_assert!((a - b).abs() <= 1e-10, "position {t}: {a} vs {b}");
                }
            }
        }
    });
    let (answered, asked) = (answered.get(), asked.get());
    assert!(answered * 10 >= asked * 9, "the engine answered {answered} of {asked} pairs");
}

/// `MarginalWorkspace::marginals` (fast pass, log-domain fallback) equals the oracle's rows laid
/// end to end, on evidence of every kind; impossible evidence (which the fast pass cannot
/// answer, so it reaches the fallback) is an error.
#[test]
fn one_at_a_time_marginals_equal_the_oracle() {
    proptest!(ProptestConfig::with_cases(48), |(model in arb_model(), seed in 0u64..1000)| {
        let mut ws = bp::MarginalWorkspace::new(&model);
        let ev = mixed_evidence(&model, seed);
        match (ws.marginals(&ev), bp::marginals(&model, &ev)) {
            (Ok(fast), Ok(oracle)) => {
                let oracle = oracle.concat();
                prop_assert_eq!(fast.len(), oracle.len());
                for (u, (a, b)) in fast.iter().zip(&oracle).enumerate() {
                    prop_assert!((a - b).abs() <= FAST, "entry {u}: {a} vs {b}");
                }
            }
            (Err(_), Err(_)) => {}
            (fast, oracle) => prop_assert!(false, "fast {:?} vs oracle {:?}", fast.is_ok(), oracle.is_ok()),
        }
        // An image leaf whose soft evidence is all zeros: p(evidence) = 0.
        let mut impossible = ev;
        impossible.image[0] = Leaf::Soft(vec![0.0; model.image_vocab()]);
        prop_assert!(ws.marginals(&impossible).is_err(), "impossible evidence gave marginals");
    });
}
