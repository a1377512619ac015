//! Tests written for mutants that cargo-mutants found alive (TESTING.md): each test checks a
//! formula or a guard that no other test pinned down, and names the mutant(s) it kills.

use jghm::bp::{brute_force, Tokens};
use jghm::contrastive::{self, Batch, Direction, Exact};
use jghm::info::{self, Cut, Enumeration, Estimate, InfoError};
use jghm::model::Part;
use jghm::random_family::RandomSpec;
use jghm::score::{
    hash_unit, Bilinear, Encoder, Linear, LogWeighted, Perturbed, Pmi, PosteriorEncoder, Score, ShiftOf, Shifted, Table,
};
use jghm::sufficiency::{self, Statistic, SufficiencyError};

/// `brute_force::configurations` is the number of joint states the oracle visits: the product
/// of every node's alphabet, an observed leaf counting once; and `enumerate` refuses (None)
/// above `MAX_CONFIGURATIONS` instead of running for hours.
/// Kills `configurations -> 0.0` / `-> 1.0` and `> with ==` in `enumerate`.
#[test]
fn brute_force_counts_its_configurations_and_refuses_beyond_its_limit() {
    // Root (4 states) -> 2 internal nodes (4) -> 4 leaves (4 symbols), on both towers: 13 nodes.
    let model = RandomSpec::symmetric(4, 2, 2, 3).build().unwrap();
    assert_eq!(model.tree().nodes.len(), 13);
    let nothing = Tokens { image: None, text: None };
    assert_eq!(brute_force::configurations(&model, &nothing), 4f64.powi(13));
    assert!(4f64.powi(13) > brute_force::MAX_CONFIGURATIONS);
    assert!(brute_force::enumerate(&model, &nothing).is_none(), "6.7e7 configurations: refused");
    // The image observed: its 4 leaves count once each, 4^9 = 262144 configurations remain.
    let x = [0, 1, 2, 3];
    let image = Tokens { image: Some(&x), text: None };
    assert_eq!(brute_force::configurations(&model, &image), 4f64.powi(9));
    let e = brute_force::enumerate(&model, &image).expect("262144 configurations: enumerated");
    assert!((e.log_likelihood - jghm::bp::log_px(&model, &x).unwrap()).abs() < 1e-10);
}

/// The standard error every Monte Carlo answer carries: mean `m`, sample variance with `n - 1`,
/// `se = √(var / n)`, interval `m ± 1.96 se`. On 1, 2, 3, 4: `m = 2.5`, `var = 5/3`,
/// `se = √(5/12)`. Kills the arithmetic mutants of `Estimate::from_samples` (`n - 1 -> n + 1`,
/// `var / n -> var * n`, `1.96 * se -> 1.96 / se`, ...), which no estimate-level test pinned.
#[test]
fn monte_carlo_standard_error_is_the_sample_sd_over_root_n() {
    let e = Estimate::from_samples(&[1.0, 2.0, 3.0, 4.0]);
    let se = (5.0f64 / 12.0).sqrt();
    assert_eq!(e.value, 2.5);
    assert!((e.stderr - se).abs() < 1e-15, "stderr {} vs {se}", e.stderr);
    assert!((e.ci95[0] - (2.5 - 1.96 * se)).abs() < 1e-15 && (e.ci95[1] - (2.5 + 1.96 * se)).abs() < 1e-15, "{e:?}");
    // A constant sample: no spread, a point interval.
    let c = Estimate::from_samples(&[0.7; 5]);
    assert_eq!((c.value, c.stderr, c.ci95), (0.7, 0.0, [0.7, 0.7]));
}

/// The three Monte Carlo estimators need two samples for a standard error: one is refused
/// (`TooFewSamples`), two are enough. Kills `< with <=` (and `==`) in the guards of
/// `info::monte_carlo`, `contrastive::monte_carlo` and `sufficiency::monte_carlo`.
#[test]
fn monte_carlo_estimators_need_exactly_two_samples() {
    let model = RandomSpec::symmetric(2, 2, 1, 1).build().unwrap();
    for samples in [0, 1] {
        assert!(matches!(info::monte_carlo(&model, samples, 1), Err(InfoError::TooFewSamples(n)) if n == samples));
    }
    let two = info::monte_carlo(&model, 2, 1).expect("two samples give an estimate");
    assert!(two.mutual_information.value.is_finite() && two.mutual_information.stderr.is_finite());

    let pmi = Pmi { model: &model };
    for batch in [Batch::Finite(2), Batch::Infinite] {
        assert!(matches!(contrastive::monte_carlo(&model, &[&pmi], batch, 1, 1), Err(InfoError::TooFewSamples(1))));
        let mc = contrastive::monte_carlo(&model, &[&pmi], batch, 2, 1).expect("two samples give an estimate");
        assert!(mc.terms[0].iter().flatten().all(|t| t.is_finite()));
    }

    let too_few = sufficiency::monte_carlo(&model, Part::Image, Statistic::MapRoot, 1, 1);
    assert!(matches!(too_few, Err(SufficiencyError::Info(InfoError::TooFewSamples(1)))), "{too_few:?}");
    let s = sufficiency::monte_carlo(&model, Part::Image, Statistic::MapRoot, 2, 1).expect("two samples suffice");
    assert!(s.sufficiency.value.is_finite() && s.sufficiency.stderr.is_finite());
}

/// Every sequence of `len` tokens over `vocab` symbols, in odometer order.
fn all_sequences(len: usize, vocab: usize) -> Vec<Vec<usize>> {
    (0..vocab.pow(len as u32)).map(|mut k| (0..len).map(|_| (k % vocab, k /= vocab).0).collect()).collect()
}

/// The grid (`S(x_i, y_j)` row-major, what the exact losses read) and the pointwise score are
/// one function, for every kind of score: the T2 scores `S + a(x)`, `S + b(y)`, `S + c`, the
/// perturbed PMI, the T7 form, a bilinear score, and a table (which uses the trait's default
/// grid). Kills `Score::grid -> vec![]` (the default grid) and `+ with -` in
/// `Shifted::score` (the grids were tested, the pointwise shifted score was not).
#[test]
fn every_score_grid_equals_its_pointwise_score() {
    let model = RandomSpec::symmetric(3, 2, 1, 4).build().unwrap();
    let xs = all_sequences(model.image_len(), model.image_vocab());
    let ys = all_sequences(model.text_len(), model.text_vocab());
    let pmi = Pmi { model: &model };
    let t7 = LogWeighted::new(&model).unwrap();
    let table_values: Vec<f64> = (0..xs.len() * ys.len()).map(|k| hash_unit(5, &[k])).collect();
    let table = Table::new("table", &xs, &ys, table_values.clone());
    let cut = Cut::separator(&model).unwrap();
    let encoder = |part| PosteriorEncoder { model: &model, part, cut: cut.clone() };
    let bilinear = Bilinear { image: encoder(Part::Image), text: encoder(Part::Text), temperature: 0.5 };
    let mut scores: Vec<Box<dyn Score + Send + '_>> = vec![
        Box::new(&pmi),
        Box::new(&t7),
        Box::new(Perturbed { base: &pmi, amplitude: 0.3, seed: 2 }),
        Box::new(&table),
        Box::new(bilinear),
    ];
    for of in [ShiftOf::Image, ShiftOf::Text, ShiftOf::Constant] {
        scores.push(Box::new(Shifted { base: &pmi, of, amplitude: 1.5, seed: 9 }));
    }
    for s in &scores {
        let grid = s.grid(&xs, &ys);
        assert_eq!(grid.len(), xs.len() * ys.len(), "{}", s.name());
        for (i, x) in xs.iter().enumerate() {
            for (j, y) in ys.iter().enumerate() {
                let (g, p) = (grid[i * ys.len() + j], s.score(x, y));
                assert!((g - p).abs() <= 1e-12, "{}: grid {g} vs score {p} at ({x:?}, {y:?})", s.name());
            }
        }
    }
    // Each score is labelled by its name in every report (`info`, `reproduce`, zero-shot rows),
    // through `&S` and `Box<S>` too. Kills the `name -> ""` / `"xyzzy"` mutants.
    let names: Vec<String> = scores.iter().map(|s| s.name()).collect();
    let expected = ["pmi", "t7", "pmi+perturbed(0.3)", "table"];
    assert_eq!(names[..4], expected);
    // The T7 encoder's dimension is the separator's size (the root's 3 states here), the length
    // of every encoding. Kills `PosteriorEncoder::dim -> 0 / 1`.
    assert_eq!(model.root_states(), 3);
    assert_eq!(names[4], "bilinear(p=3, tau=0.5)");
    for part in [Part::Image, Part::Text] {
        let (f, seq) = (encoder(part), if part == Part::Image { &xs[1] } else { &ys[1] });
        assert_eq!((f.dim(), f.encode(seq).len()), (3, 3));
    }
    assert_eq!(names[5..], ["pmi+shift(Image,1.5)", "pmi+shift(Text,1.5)", "pmi+shift(Constant,1.5)"]);
    // The shift itself: S + a(x) adds a·u(x), S + b(y) adds a·u(y), S + c adds a.
    let (x, y) = (&xs[1], &ys[2]);
    for (of, expected) in
        [(ShiftOf::Image, 1.5 * hash_unit(9, x)), (ShiftOf::Text, 1.5 * hash_unit(9, y)), (ShiftOf::Constant, 1.5)]
    {
        let shifted = Shifted { base: &pmi, of, amplitude: 1.5, seed: 9 };
        assert!((shifted.score(x, y) - pmi.score(x, y) - expected).abs() <= 1e-12, "{of:?}");
    }
    assert_eq!(table.score(&xs[2], &ys[1]), table_values[2 * ys.len() + 1]);
}

/// The size of the exact batch-K loss: `C(K+|C|-2, |C|-1)` compositions of the `K - 1`
/// negatives into `|C|` kinds (it decides when the exact loss is refused as too large). With
/// `|C| = 4` texts: 1, 4, 10, 20 for `K = 1..4`, and `C(102, 3) = 171700` for `K = 100`.
/// Kills `- with +` in `View::compositions`.
#[test]
fn exact_batch_loss_counts_its_compositions() {
    let model = RandomSpec::symmetric(2, 2, 1, 1).build().unwrap();
    let en = Enumeration::new(&model).unwrap();
    let exact = Exact::new(&en);
    let view = exact.view(&exact.scores(&Pmi { model: &model }), Direction::ImageToText);
    assert_eq!(view.candidates(), 4);
    for (k, expected) in [(1, 1.0), (2, 4.0), (3, 10.0), (4, 20.0), (100, 171700.0)] {
        assert_eq!(view.compositions(k), expected, "K = {k}");
    }
}

/// The oracle's limit is inclusive: a model with exactly `MAX_CONFIGURATIONS` = 5·10⁶ free
/// configurations is enumerated. Root 5 states; the image 6 leaves of 2 symbols, the text 6
/// leaves of 5 symbols: 5 · 2⁶ · 5⁶ = 5⁷ · 2⁶ = 5,000,000. Kills `> → >=` in `enumerate`
/// (the one mutant of `bp/brute_force.rs` the whole-module run missed).
#[test]
fn brute_force_enumerates_a_model_exactly_at_its_limit() {
    use jghm::model::{Jghm, Level};
    use nalgebra::DMatrix;
    // Row i of an r × c matrix ∝ (1 + i + 2j)_j: positive, distinct rows.
    let stochastic = |r: usize, c: usize| {
        let m = DMatrix::from_fn(r, c, |i, j| (1 + i + 2 * j) as f64);
        DMatrix::from_fn(r, c, |i, j| m[(i, j)] / m.row(i).sum())
    };
    let image = vec![Level { transitions: (0..6).map(|_| stochastic(5, 2)).collect() }];
    let text = vec![Level { transitions: (0..6).map(|_| stochastic(5, 5)).collect() }];
    let model = Jghm::new(vec![0.2; 5], vec![], image, text).unwrap();
    let nothing = Tokens { image: None, text: None };
    assert_eq!(brute_force::configurations(&model, &nothing), brute_force::MAX_CONFIGURATIONS);
    let e = brute_force::enumerate(&model, &nothing).expect("exactly at the limit: enumerated");
    // Nothing observed: the evidence has probability 1.
    assert!(e.log_likelihood.abs() < 1e-10, "log p = {}", e.log_likelihood);
}

/// Evidence of probability zero: the oracle says so with `log p = −∞` and leaves the
/// marginals at zero instead of dividing by the zero total (0/0 = NaN). Kills `> → >=` in
/// `if total > 0.0` of `enumerate`, missed by the whole-module run.
#[test]
fn brute_force_impossible_evidence_has_log_p_minus_infinity_and_no_nan() {
    use jghm::model::{Jghm, Level};
    use nalgebra::DMatrix;
    // The image leaf is always 0: observing x = [1] is impossible.
    let image = vec![Level { transitions: vec![DMatrix::from_row_slice(2, 2, &[1.0, 0.0, 1.0, 0.0])] }];
    let text = vec![Level { transitions: vec![DMatrix::from_row_slice(2, 2, &[0.5, 0.5, 0.5, 0.5])] }];
    let model = Jghm::new(vec![0.5; 2], vec![], image, text).unwrap();
    let x = [1];
    let e = brute_force::enumerate(&model, &Tokens { image: Some(&x), text: None }).unwrap();
    assert_eq!(e.log_likelihood, f64::NEG_INFINITY);
    assert!(e.marginals.iter().flatten().all(|&m| m == 0.0), "{:?}", e.marginals);
}

/// A next-token request needs room for the next token: a prefix as long as the text is refused
/// with its length and the text's positions, not a panic or a wrong count. (Written against
/// `+ -> -` and `+ -> *` in an earlier form of the length error, `prefix.len() + 1`.)
#[test]
fn next_token_conditional_refuses_a_full_prefix_with_the_implied_length() {
    let model = RandomSpec::symmetric(3, 2, 2, 5).build().unwrap();
    let n = model.text_len();
    assert_eq!(n, 4);
    let full = vec![0; n];
    let err = jghm::bp::next_token_conditional(&model, None, &full).unwrap_err();
    assert_eq!(err, jghm::bp::BpError::NoNextToken { prefix: n, positions: n });
    // One token shorter is the last position: a distribution over the text vocabulary.
    let last = jghm::bp::next_token_conditional(&model, None, &full[..n - 1]).unwrap();
    assert_eq!(last.len(), model.vocab_of(Part::Text));
    assert!((last.iter().sum::<f64>() - 1.0).abs() < 1e-12);
}

/// The PMI grid when the separator is too large for the T7 form (`2^17` joint trunk-leaf
/// states > `CUT_LIMIT`): computed pair by pair, still `S(x_i, y_j) = PMI(x_i, y_j)`. Kills
/// `PairwisePmi::score -> 0.0 / 1.0` (every other grid test used a small separator).
#[test]
fn pmi_grid_beyond_the_separator_limit_is_the_pairwise_pmi() {
    let spec = RandomSpec {
        shared_depth: 1,
        shared_children: 17,
        children: 1,
        depth: 1,
        text_children: 1,
        text_depth: 1,
        ..RandomSpec::symmetric(2, 1, 1, 6)
    };
    let model = spec.build().unwrap();
    assert!(LogWeighted::new(&model).is_err(), "the separator has 2^17 joint states");
    let pairs = jghm::sample::sample_pairs(&model, 3, 11, false);
    let xs: Vec<Vec<usize>> = pairs.iter().map(|p| p.image.clone()).collect();
    let ys: Vec<Vec<usize>> = pairs.iter().map(|p| p.text.clone()).collect();
    let grid = Pmi { model: &model }.grid(&xs, &ys);
    assert_eq!(grid.len(), 9);
    for (i, x) in xs.iter().enumerate() {
        for (j, y) in ys.iter().enumerate() {
            let exact = jghm::bp::pmi(&model, x, y).unwrap().pmi;
            assert!((grid[i * 3 + j] - exact).abs() <= 1e-12, "({i}, {j}): grid {} vs PMI {exact}", grid[i * 3 + j]);
        }
    }
    // The PMIs differ, so no constant grid can pass.
    assert!(grid.iter().any(|&g| (g - grid[0]).abs() > 1e-3), "{grid:?}");
}

/// CLIP's score `S(x, y) = ⟨f(x), g(y)⟩ / τ` with linear encoders `x ↦ M f(x)`, computed by hand
/// from the posterior encodings: `Linear` has `out` outputs, row `r` is `Σ_w M[r, w] f(x)_w`,
/// and the bilinear score and its grid are the inner product over `τ`. Kills the `dot`,
/// `Linear::dim` and `Linear::encode` mutants (the grid-equals-score test cannot see a wrong
/// `dot`: both sides use it).
#[test]
fn bilinear_score_is_the_inner_product_of_linear_encodings_over_tau() {
    let model = RandomSpec::symmetric(3, 2, 1, 4).build().unwrap();
    let cut = Cut::separator(&model).unwrap();
    let posterior = |part| PosteriorEncoder { model: &model, part, cut: cut.clone() };
    let (ma, mb) = (vec![0.5, -1.0, 2.0, 1.5, 0.25, -0.75], vec![-0.5, 1.25, 0.5, 2.0, -1.5, 1.0]);
    let linear = |part, m: &Vec<f64>| Linear { inner: posterior(part), matrix: m.clone(), out: 2 };
    let score = Bilinear { image: linear(Part::Image, &ma), text: linear(Part::Text, &mb), temperature: 0.4 };
    assert_eq!((score.image.dim(), score.text.dim()), (2, 2));
    let xs = all_sequences(model.image_len(), model.image_vocab());
    let ys = all_sequences(model.text_len(), model.text_vocab());
    let by_hand =
        |m: &[f64], f: Vec<f64>| -> Vec<f64> { (0..2).map(|r| (0..3).map(|w| m[3 * r + w] * f[w]).sum()).collect() };
    let vs: Vec<Vec<f64>> = ys.iter().map(|y| by_hand(&mb, posterior(Part::Text).encode(y))).collect();
    let grid = score.grid(&xs, &ys);
    for (i, x) in xs.iter().enumerate() {
        let u = by_hand(&ma, posterior(Part::Image).encode(x));
        let encoded = score.image.encode(x);
        assert_eq!(encoded.len(), 2);
        for (a, b) in encoded.iter().zip(&u) {
            assert!((a - b).abs() <= 1e-14, "M f(x): {a} vs {b}");
        }
        for (j, (y, v)) in ys.iter().zip(&vs).enumerate() {
            let expected = (u[0] * v[0] + u[1] * v[1]) / 0.4;
            assert!((score.score(x, y) - expected).abs() <= 1e-12, "S = {} vs {expected}", score.score(x, y));
            assert!((grid[i * ys.len() + j] - expected).abs() <= 1e-12);
        }
    }
}

/// `hash_unit`, the "arbitrary function" of the T2 shifts and perturbed scores, lies in
/// `[-1, 1)` and fills it: over 10,000 keys every value is in range, both ends are approached
/// and the mean is near 0 (uniform: standard error `1/√(3·10⁴) ≈ 0.006`). Kills `- 1.0 -> + 1.0`
/// and `- 1.0 -> / 1.0` (values in `[1, 3)` or `[0, 2)`).
#[test]
fn hash_unit_is_spread_over_minus_one_to_one() {
    let values: Vec<f64> = (0..10_000).map(|k| hash_unit(3, &[k, k % 7])).collect();
    assert!(values.iter().all(|v| (-1.0..1.0).contains(v)));
    let (min, max) = values.iter().fold((1.0f64, -1.0f64), |(lo, hi), &v| (lo.min(v), hi.max(v)));
    assert!(min < -0.99 && max > 0.99, "range [{min}, {max}]");
    let mean = values.iter().sum::<f64>() / values.len() as f64;
    assert!(mean.abs() < 0.03, "mean {mean}");
}

/// `hash_unit` is built on SplitMix64 (Steele, Lea and Flood 2014; Vigna's reference `splitmix64.c`),
/// whose first two outputs from state 0 are published: `0xE220A8397B1DCDAF`, `0x6E789E6AA1B965F4`.
/// With no key, `hash_unit(seed, [])` is the top 53 bits of `splitmix(seed ^ γ)` mapped to
/// `[-1, 1)`, so the seeds `γ` and `0` give those two outputs. Kills the bit-operation mutants
/// of `splitmix` (`^ -> |`, `>> -> <<`, ...), which leave some function into `[-1, 1)`.
#[test]
fn hash_unit_follows_the_splitmix64_reference_outputs() {
    let unit = |z: u64| (z >> 11) as f64 / (1u64 << 52) as f64 - 1.0;
    assert_eq!(hash_unit(0x9E37_79B9_7F4A_7C15, &[]), unit(0xE220_A839_7B1D_CDAF));
    assert_eq!(hash_unit(0, &[]), unit(0x6E78_9E6A_A1B9_65F4));
}

/// The perturbed score `S + a·u(x, y)`, `u ∈ [-1, 1)`: the perturbation is at most `a` in size
/// and scales linearly with `a` (doubling `a` doubles it, the same `u` for the same seed). Kills
/// `* -> +` and `* -> /` in `Perturbed::noise`.
#[test]
fn perturbation_is_bounded_by_and_linear_in_its_amplitude() {
    let model = RandomSpec::symmetric(3, 2, 1, 4).build().unwrap();
    let pmi = Pmi { model: &model };
    let (small, large) =
        (Perturbed { base: &pmi, amplitude: 0.3, seed: 2 }, Perturbed { base: &pmi, amplitude: 0.6, seed: 2 });
    let xs = all_sequences(model.image_len(), model.image_vocab());
    let ys = all_sequences(model.text_len(), model.text_vocab());
    let mut largest: f64 = 0.0;
    for x in &xs {
        for y in &ys {
            let (base, d_small, d_large) = (pmi.score(x, y), small.score(x, y), large.score(x, y));
            let (d_small, d_large) = (d_small - base, d_large - base);
            assert!(d_small.abs() <= 0.3 + 1e-12, "|a·u| = {d_small} > a = 0.3");
            assert!((d_large - 2.0 * d_small).abs() <= 1e-12, "{d_large} is not 2 × {d_small}");
            largest = largest.max(d_small.abs());
        }
    }
    assert!(largest > 0.2, "the perturbation is not negligible: {largest}");
}

/// Without a trunk, `SideTable::new` takes the batched path (`by_fast_bp`), which walks the
/// `V^N` sequences in blocks of `ENUMERATION_BLOCK` and keeps those of positive probability.
/// Here `3^11 = 177,147` image sequences (two full blocks and a partial one), and the first
/// leaf never emits symbol 2, so a third of them are impossible. The table must list exactly
/// the possible sequences, in order, each with BP's `log p(x)` and `p(z | x)` (to 1e-12).
/// Kills `n - first -> n + first` (the last, partial block read past the end) and
/// `ll > -∞ -> ll >= -∞` (impossible sequences kept) in `SideTable::by_fast_bp`, and both
/// constant `SideTable::is_empty` mutants (a table built with no rows is empty, this one not).
#[test]
fn side_table_without_a_trunk_lists_every_possible_sequence_once() {
    use jghm::bp;
    use jghm::info::{decode_sequence, SideTable, ENUMERATION_BLOCK};
    use jghm::model::{Jghm, Level};
    use nalgebra::DMatrix;
    let (len, vocab) = (11, 3);
    let n = 3usize.pow(len as u32);
    assert!(n > 2 * ENUMERATION_BLOCK && !n.is_multiple_of(ENUMERATION_BLOCK), "a partial last block");
    // Leaf 0 never emits 2; the other leaves have positive, distinct rows.
    let leaf = |i: usize| {
        if i == 0 {
            DMatrix::from_row_slice(2, 3, &[0.6, 0.4, 0.0, 0.2, 0.8, 0.0])
        } else {
            let m = DMatrix::from_fn(2, 3, |r, c| (1 + r + (i + 2) * c) as f64);
            DMatrix::from_fn(2, 3, |r, c| m[(r, c)] / m.row(r).sum())
        }
    };
    let image = vec![Level { transitions: (0..len).map(leaf).collect() }];
    let text = vec![Level { transitions: vec![DMatrix::from_row_slice(2, 2, &[0.9, 0.1, 0.3, 0.7])] }];
    let model = Jghm::new(vec![0.35, 0.65], vec![], image, text).unwrap();
    let cut = Cut::separator(&model).unwrap();
    assert_eq!(cut.nodes, [0], "without a trunk the separator is the root");
    let table = SideTable::new(&model, Part::Image, &cut).unwrap();

    let possible: Vec<Vec<usize>> = (0..n).map(|i| decode_sequence(i, len, vocab)).filter(|x| x[0] != 2).collect();
    assert_eq!((table.len(), table.is_empty()), (2 * n / 3, false));
    let no_rows = SideTable { tokens: vec![], log_p: vec![], latent: vec![], root: vec![], ..table.clone() };
    assert!(no_rows.is_empty());
    assert_eq!(table.tokens, possible);
    assert_eq!((table.log_p.len(), table.root.len()), (possible.len(), 2 * possible.len()));
    for (i, x) in possible.iter().enumerate().step_by(97) {
        let exact = bp::root_posterior(&model, &Tokens { image: Some(x), text: None }).unwrap();
        assert!((table.log_p[i] - exact.log_likelihood).abs() < 1e-12, "row {i}");
        for a in 0..2 {
            assert!((table.root[2 * i + a] - exact.root[a]).abs() < 1e-12, "row {i}, state {a}");
            assert_eq!(table.latent[2 * i + a], table.root[2 * i + a], "p(w | x) = p(z | x)");
        }
    }
}

/// `I(Z; X) = Σ_x p(x) KL(p(z | x) ‖ π)` and `I(Z; Y)` of `info::exact`, against the
/// brute-force oracle: every sequence of a side observed in turn, `p(x)` and `p(z | x)` by
/// summing the joint, the KL written out here. On a model without a trunk (the batched side
/// table) and with one (the cut path), within 1e-10. And `I(Z; X) ≤ H(Z)`; without a trunk
/// `X - Z - Y` is a Markov chain, so also `I(X; Y) ≤ I(Z; X)` (data processing). With a trunk
/// the chain runs through the separator `W` instead, and `I(X; Y)` can exceed `I(Z; X)`: the
/// model here has 0.95 nats against 0.56 on the image side (checked, so the caveat stays true). Kills the constant and `* -> +`, `* -> /`
/// mutants of `SideTable::root_information` and of `SideTable::root_row`'s row offset (no test
/// compared `I(Z; X)` with anything but "finite").
#[test]
fn root_information_equals_brute_force_and_obeys_data_processing() {
    use jghm::info::decode_sequence;
    let mut with_trunk = RandomSpec::symmetric(3, 2, 1, 11);
    with_trunk.shared_depth = 1;
    for (spec, trunk) in [(RandomSpec::symmetric(3, 2, 1, 7), false), (with_trunk, true)] {
        let model = spec.build().unwrap();
        assert_eq!(model.has_trunk(), trunk);
        let en = Enumeration::new(&model).unwrap();
        let got = info::exact(&en);
        let prior = model.prior();
        for (part, value) in
            [(Part::Image, got.information_root_image.value), (Part::Text, got.information_root_text.value)]
        {
            let (len, vocab) = (model.len_of(part), model.vocab_of(part));
            let mut brute = 0.0;
            for i in 0..vocab.pow(len as u32) {
                let x = decode_sequence(i, len, vocab);
                let obs = if part == Part::Image {
                    Tokens { image: Some(&x), text: None }
                } else {
                    Tokens { image: None, text: Some(&x) }
                };
                let e = brute_force::enumerate(&model, &obs).unwrap();
                let px = e.log_likelihood.exp();
                let kl: f64 =
                    e.marginals[0].iter().zip(prior).filter(|(q, _)| **q > 0.0).map(|(q, p)| q * (q / p).ln()).sum();
                brute += px * kl;
            }
            assert!((value - brute).abs() < 1e-10, "{part}: I(Z; X) = {value}, brute force {brute}");
            let (mi, hz) = (got.mutual_information.value, got.entropy_root.value);
            assert!(value <= hz + 1e-12, "{part}: I(Z; X) = {value} > H(Z) = {hz}");
            if !model.has_trunk() {
                assert!(mi <= value + 1e-12, "{part}: I(X; Y) = {mi} > I(Z; X) = {value} without a trunk");
            } else if part == Part::Image {
                assert!(mi > value + 0.1, "with a trunk: I(X; Y) = {mi}, I(Z; X) = {value}");
            }
        }
    }
}

/// `KL(p ‖ q) = Σ_i p_i log(p_i / q_i)` with the terms `p_i = 0` dropped (`0 log 0 = 0`; kept,
/// they would be `0 · (-∞) = NaN`); likewise `Σ_w a_w b_w / p(w)` drops `p(w) = 0` (there
/// `a_w = b_w = 0`, and `0 · 0 / 0 = NaN`). Kills `> -> >=` in the filters of `info::kl` and
/// `info::weighted_inner`; and in `H(π) = -Σ π log π` of `info::entropy` (`0 log 0 = 0`).
#[test]
fn kl_and_the_weighted_inner_product_drop_zero_probability_terms() {
    let ln2 = std::f64::consts::LN_2;
    assert!((info::kl(&[1.0, 0.0], &[0.5, 0.5]) - ln2).abs() < 1e-15);
    assert!((info::entropy(&[0.5, 0.0, 0.5]) - ln2).abs() < 1e-15);
    assert!((info::kl(&[0.5, 0.5, 0.0], &[0.25, 0.25, 0.5]) - ln2).abs() < 1e-15);
    assert_eq!(info::kl(&[0.3, 0.7], &[0.3, 0.7]), 0.0);
    // 0.5 · 0.2 / 0.5 + 0.5 · 0.8 / 0.5 = 1 (up to one rounding of each term).
    assert!((info::weighted_inner(&[0.5, 0.5, 0.0], &[0.2, 0.8, 0.0], &[0.5, 0.5, 0.0]) - 1.0).abs() < 1e-15);
}

/// `exact_work` is the work of exact enumeration, `|X| · |Y| · |W|`: with 2 leaves of 3 symbols a
/// side and no trunk (`W` = the root, 3 states) it is `9 · 9 · 3`; with a trunk, `81 · 81 · 9`.
/// Kills `exact_work -> Ok(0.0)`, `Ok(1.0)`, `Ok(-1.0)` (every caller but the CLI's `--exact`
/// check only asked "is it Ok").
#[test]
fn exact_work_is_the_product_of_the_side_sizes_and_the_separator() {
    let model = RandomSpec::symmetric(3, 2, 1, 7).build().unwrap();
    assert_eq!(info::exact_work(&model).unwrap(), 243.0);
    // A trunk of depth 1 (2 trunk leaves of 3 states, each with a 2-leaf tower per side):
    // 4 leaves a side, |X| = |Y| = 3^4 = 81, |W| = 3^2 = 9.
    let mut spec = RandomSpec::symmetric(3, 2, 1, 11);
    spec.shared_depth = 1;
    let model = spec.build().unwrap();
    assert_eq!((model.tree().trunk_leaves.len(), model.len_of(Part::Image), model.len_of(Part::Text)), (2, 4, 4));
    assert_eq!(info::exact_work(&model).unwrap(), 81.0 * 81.0 * 9.0);
}

/// A model without a trunk: root of `states` states, `image` leaves of `vx` symbols and `text`
/// leaves of `vy` symbols, every row uniform (only the sizes matter to `exact_work`).
fn flat_model(states: usize, image: usize, vx: usize, text: usize, vy: usize) -> jghm::model::Jghm {
    use jghm::model::{Jghm, Level};
    use nalgebra::DMatrix;
    let level = |n: usize, v: usize| Level {
        transitions: (0..n).map(|_| DMatrix::from_element(states, v, 1.0 / v as f64)).collect(),
    };
    Jghm::new(vec![1.0 / states as f64; states], vec![], vec![level(image, vx)], vec![level(text, vy)]).unwrap()
}

/// Each limit of exact enumeration accepts a model exactly at it and refuses one just above,
/// naming that limit: `|W| ≤ CUT_LIMIT = 2^16` (a root of 2^16 states), `|X| ≤ SIDE_LIMIT =
/// 2^22` (22 binary image leaves), `|X|·|Y|·|W| ≤ WORK_LIMIT = 4·10^8` (`5^4 · 5^4 · 1024`).
/// Kills `> -> ==` and `> -> >=` in the three guards of `info::exact_work`.
#[test]
fn exact_work_accepts_each_limit_and_refuses_just_above_it() {
    use info::{CUT_LIMIT, SIDE_LIMIT, WORK_LIMIT};
    let refused_by = |model: &jghm::model::Jghm| match info::exact_work(model) {
        Err(InfoError::TooLarge { limit, .. }) => limit,
        other => panic!("expected a refusal, got {other:?}"),
    };
    assert_eq!(info::exact_work(&flat_model(1 << 16, 1, 2, 1, 2)).unwrap(), CUT_LIMIT * 4.0);
    assert_eq!(refused_by(&flat_model((1 << 16) + 1, 1, 2, 1, 2)), CUT_LIMIT);
    assert_eq!(info::exact_work(&flat_model(2, 22, 2, 1, 2)).unwrap(), SIDE_LIMIT * 4.0);
    assert_eq!(refused_by(&flat_model(2, 23, 2, 1, 2)), SIDE_LIMIT);
    assert_eq!(refused_by(&flat_model(2, 1, 2, 23, 2)), SIDE_LIMIT);
    assert_eq!(info::exact_work(&flat_model(1024, 4, 5, 4, 5)).unwrap(), WORK_LIMIT);
    assert_eq!(refused_by(&flat_model(1025, 4, 5, 4, 5)), WORK_LIMIT);
}

/// The Monte Carlo estimates of `info::monte_carlo` (20,000 pairs, seed 5) agree with the exact
/// values of `info::exact` within 5 standard errors, for every quantity: `I(X; Y)` (the per-pair
/// PMI `log p(x, y) - log p(x) - log p(y)`), `H(X)`, `H(Y)` (`-log p`), `I(Z; X)`, `I(Z; Y)`
/// (`KL(p(z | x) ‖ π)`). No test compared the estimator with the exact answer; this kills the
/// sign mutants of the PMI and entropy terms (`- -> +`, `- -> /`, `delete -`).
#[test]
fn monte_carlo_information_agrees_with_exact_within_five_standard_errors() {
    let mut spec = RandomSpec::symmetric(3, 2, 1, 13);
    spec.shared_depth = 1;
    let model = spec.build().unwrap();
    let exact = info::exact(&Enumeration::new(&model).unwrap());
    let mc = info::monte_carlo(&model, 20_000, 5).unwrap();
    for (name, e, m) in [
        ("I(X; Y)", exact.mutual_information, mc.mutual_information),
        ("H(X)", exact.entropy_image, mc.entropy_image),
        ("H(Y)", exact.entropy_text, mc.entropy_text),
        ("I(Z; X)", exact.information_root_image, mc.information_root_image),
        ("I(Z; Y)", exact.information_root_text, mc.information_root_text),
    ] {
        assert!(m.stderr > 0.0 && m.stderr < 0.05 * e.value, "{name}: se {} for a value {}", m.stderr, e.value);
        assert!((m.value - e.value).abs() < 5.0 * m.stderr, "{name}: {} ± {} vs exact {}", m.value, m.stderr, e.value);
    }
    assert_eq!(mc.entropy_root.value, exact.entropy_root.value, "H(Z) is exact in both");
}

/// `info::layer(model, part, d)` is the set of nodes at depth `d` on the paths from the root to
/// that side's leaves, in node order: checked against the ancestors of each leaf, on a model
/// with a trunk (depths 0 to 3: root, trunk leaves, tower nodes, leaves). Kills
/// `layer -> vec![0]` and `-> vec![1]` (the tests only asked for layers the constants match).
#[test]
fn layer_is_the_set_of_ancestors_at_that_depth() {
    let mut spec = RandomSpec::symmetric(2, 2, 2, 3);
    spec.shared_depth = 1;
    let model = spec.build().unwrap();
    let tree = model.tree();
    for part in [Part::Image, Part::Text] {
        let depth = info::side_depth(&model, part);
        assert_eq!(depth, 3);
        for d in 0..=depth {
            let mut expected: Vec<usize> = model
                .leaves_of(part)
                .iter()
                .map(|&leaf| {
                    let mut path = vec![leaf];
                    while let Some(p) = tree.nodes[*path.last().unwrap()].parent {
                        path.push(p);
                    }
                    path[path.len() - 1 - d]
                })
                .collect();
            expected.sort();
            expected.dedup();
            assert_eq!(info::layer(&model, part, d), expected, "{part}, depth {d}");
        }
        assert_eq!(info::layer(&model, part, depth), model.leaves_of(part));
    }
}

/// Every statistic's name parses back to it (`Display` and `FromStr` are inverse), and the
/// three ways a name can be wrong are told apart: an unknown head, an argument where none is
/// taken, a missing or negative argument. Kills the deleted match arms of `Statistic::from_str`
/// (a deleted arm falls through to "unknown").
#[test]
fn statistic_names_parse_back_to_themselves() {
    let all = [
        Statistic::RootPosterior,
        Statistic::SeparatorPosterior,
        Statistic::MapRoot,
        Statistic::MaskedPosterior(3),
        Statistic::FirstTokens(2),
        Statistic::LayerPosterior(1),
    ];
    for st in all {
        assert_eq!(st.to_string().parse::<Statistic>(), Ok(st), "{st}");
    }
    assert_eq!("masked-posterior: 0".parse::<Statistic>(), Ok(Statistic::MaskedPosterior(0)));
    let unknown = |s: &str| matches!(s.parse::<Statistic>(), Err(SufficiencyError::Unknown(n)) if n == s);
    let out_of_range =
        |s: &str| matches!(s.parse::<Statistic>(), Err(SufficiencyError::OutOfRange { name, .. }) if name == s);
    assert!(unknown("root-posterior:1") && unknown("map-root:0") && unknown("posterior"));
    assert!(out_of_range("first-tokens") && out_of_range("masked-posterior:-1") && out_of_range("layer-posterior:x"));
}

/// `masked-posterior:k` is `p(z | a_1..a_k)`, the root posterior with only the first `k` tokens
/// observed: checked against the brute-force oracle for every sequence of both sides and every
/// `k` from 0 (the prior) to the full length (`root-posterior`). Kills `position < k` ->
/// `==`, `>`, `<=` in `Masked::leaf`.
#[test]
fn masked_posterior_is_the_root_posterior_given_the_first_k_tokens() {
    use jghm::bp::Workspace;
    use jghm::evidence::{Evidence, Leaf};
    let model = RandomSpec::symmetric(2, 2, 2, 21).build().unwrap();
    let mut ws = Workspace::new(&model);
    for part in [Part::Image, Part::Text] {
        let (len, vocab) = (model.len_of(part), model.vocab_of(part));
        assert_eq!(len, 4);
        for i in 0..vocab.pow(len as u32) {
            let a = info::decode_sequence(i, len, vocab);
            for k in 0..=len {
                let eval = sufficiency::Evaluator::new(&model, part, Statistic::MaskedPosterior(k)).unwrap();
                let got = eval.value(&mut ws, &a).unwrap();
                let mut ev = Evidence::none(&model);
                for (p, &t) in ev.of_mut(part).iter_mut().zip(&a[..k]) {
                    *p = Leaf::Observed(t);
                }
                let want = &brute_force::enumerate(&model, &ev).unwrap().marginals[0];
                let err = got.iter().zip(want).map(|(g, w)| (g - w).abs()).fold(0.0, f64::max);
                assert!(err < 1e-10, "{part} {a:?}, k = {k}: {got:?} against {want:?}");
            }
        }
    }
}

/// A model with impossible pairs: root of 2 states, 2 image leaves of 3 symbols (symbol 0 only
/// from state 0, symbol 2 only from state 1), one text leaf that copies the root. So
/// `p(y | x) = 0` whenever `x` reveals the root and `y` disagrees, and `PMI(x, y) = -∞`.
fn impossible_pairs_model() -> jghm::model::Jghm {
    use jghm::model::{Jghm, Level};
    use nalgebra::{dmatrix, DMatrix};
    let image = Level { transitions: vec![dmatrix![0.9, 0.1, 0.0; 0.0, 0.2, 0.8]; 2] };
    let text = Level { transitions: vec![DMatrix::identity(2, 2)] };
    Jghm::new(vec![0.3, 0.7], vec![], vec![image], vec![text]).unwrap()
}

/// On a model with impossible pairs (`p(c | a) = 0`, `PMI = -∞`), the three forms of the gap
/// are finite and agree (T6), and a constant statistic (`first-tokens:0`) has gap `I(A; C)`:
/// the `0 · log 0 = 0` convention of the KL form. The random models of the T6 proptests have
/// no zero entries. Kills `p(c|a) > 0 -> >=` in `Gap::kl_form` (a NaN).
#[test]
fn sufficiency_forms_agree_on_a_model_with_impossible_pairs() {
    let model = impossible_pairs_model();
    let en = Enumeration::new(&model).unwrap();
    let mi = en.mutual_information();
    for side in [Part::Image, Part::Text] {
        for st in [Statistic::FirstTokens(0), Statistic::FirstTokens(1), Statistic::MapRoot, Statistic::RootPosterior] {
            let classes = sufficiency::Evaluator::new(&model, side, st).unwrap().classes(en.side(side));
            let s = sufficiency::Gap::new(&en, side, classes).all();
            for form in [s.kl_form, s.information_form, s.variational_form] {
                assert!(form.is_finite() && (form - s.information_form).abs() < 1e-12, "{side} {st}: {s:?}");
            }
            if st == Statistic::FirstTokens(0) {
                assert!((s.kl_form - mi).abs() < 1e-12, "{side}: a constant statistic loses I = {mi}: {s:?}");
            }
            if st == Statistic::RootPosterior {
                assert!(s.kl_form.abs() < 1e-12, "{side}: the root posterior is sufficient: {s:?}");
            }
        }
    }
    assert!(mi > 0.1, "the pairs carry information: {mi}");
}

/// `depends_only_through` accepts a grid whose values within a class differ by up to
/// `1e-9 · (1 + |s|)` and rejects more: at `|s| = 6` a change of `3·10^-9` is accepted and one
/// of `10^-8` is not; at `|s| = 1/4`, `10^-9` is accepted and `2·10^-9` is not. Kills `* -> /`,
/// `+ -> -` (both shrink the tolerance at `|s| = 6`) and `+ -> *` (at `|s| = 1/4`) in it.
#[test]
fn depends_only_through_has_a_relative_tolerance_of_1e_9() {
    let model = RandomSpec::symmetric(2, 2, 1, 4).build().unwrap();
    let en = Enumeration::new(&model).unwrap();
    for side in [Part::Image, Part::Text] {
        let classes =
            sufficiency::Evaluator::new(&model, side, Statistic::FirstTokens(0)).unwrap().classes(en.side(side));
        let gap = sufficiency::Gap::new(&en, side, classes);
        // One class: the grid must not depend on side A at all. Entry `at` is that of the last
        // anchor and the first candidate.
        let grid = gap.statistic_pmi_grid();
        let ny = en.text.len();
        let at = if side == Part::Image { (en.image.len() - 1) * ny } else { ny - 1 };
        for (value, inside, outside) in [(6.0, 3e-9, 1e-8), (0.25, 1e-9, 2e-9)] {
            let shifted: Vec<f64> = grid.iter().map(|v| v + value - grid[at]).collect();
            assert!(gap.depends_only_through(&shifted));
            for (delta, accepted) in [(inside, true), (outside, false)] {
                let mut s = shifted.clone();
                s[at] += delta;
                assert_eq!(gap.depends_only_through(&s), accepted, "{side}: a change of {delta} at {value}");
            }
        }
    }
}

/// `t5_bound` measures the excess in the direction anchored at the statistic's side
/// (`X→Y` for an image statistic, `Y→X` for a text one). For `S = PMI_T` both directions give
/// `Suff` (the partition terms vanish in both), so the T5 tests could not tell them apart; a
/// perturbed score through `T` separates them. Kills `side == Image -> !=` in `t5_bound`.
#[test]
fn t5_bound_uses_the_direction_anchored_at_the_statistic() {
    let model = RandomSpec::symmetric(2, 2, 1, 8).build().unwrap();
    let en = Enumeration::new(&model).unwrap();
    let exact = Exact::new(&en);
    let ny = en.text.len();
    for (side, own, other) in [
        (Part::Image, Direction::ImageToText, Direction::TextToImage),
        (Part::Text, Direction::TextToImage, Direction::ImageToText),
    ] {
        let classes = sufficiency::Evaluator::new(&model, side, Statistic::MapRoot).unwrap().classes(en.side(side));
        let gap = sufficiency::Gap::new(&en, side, classes);
        let mut s = gap.statistic_pmi_grid();
        for (k, v) in s.iter_mut().enumerate() {
            let (a, c) = if side == Part::Image { (k / ny, k % ny) } else { (k % ny, k / ny) };
            *v += 0.5 * hash_unit(3, &[gap.classes.of[a], c]);
        }
        let excess =
            |dir| exact.loss(&s, dir, Batch::Infinite).unwrap() - exact.loss(&exact.pmi, dir, Batch::Infinite).unwrap();
        let (suff, got) = sufficiency::t5_bound(&exact, &gap, &s).unwrap();
        assert_eq!(suff, gap.kl_form());
        assert!((got - excess(own)).abs() < 1e-12, "{side}: {got} against {}", excess(own));
        assert!((excess(own) - excess(other)).abs() > 1e-3, "{side}: the directions differ");
    }
}

/// `sufficiency::monte_carlo` (20,000 pairs, seed 9) agrees with the exact gap within 5
/// standard errors, with `I(A; C)` and `I(T; C)`, for both sides and two statistics, on a model
/// whose towers differ (3 image leaves, 2 text leaves). No test compared the estimator with the
/// exact answer. Kills `side == Image -> !=` (the other side, and which of the pair is the
/// anchor) and `t * nw -> t / nw` (the class's row of `p(w | t)`) in `monte_carlo`.
#[test]
fn monte_carlo_sufficiency_agrees_with_exact_within_five_standard_errors() {
    let spec = RandomSpec { text_children: 2, ..RandomSpec::symmetric(3, 3, 1, 6) };
    let model = spec.build().unwrap();
    assert_eq!((model.len_of(Part::Image), model.len_of(Part::Text)), (3, 2));
    let en = Enumeration::new(&model).unwrap();
    for side in [Part::Image, Part::Text] {
        for st in [Statistic::FirstTokens(1), Statistic::MapRoot] {
            let classes = sufficiency::Evaluator::new(&model, side, st).unwrap().classes(en.side(side));
            let exact = sufficiency::Gap::new(&en, side, classes).all();
            let mc = sufficiency::monte_carlo(&model, side, st, 20_000, 9).unwrap();
            for (name, e, m) in [
                ("Suff", exact.kl_form, &mc.sufficiency),
                ("I(A; C)", exact.mutual_information, &mc.mutual_information),
                ("I(T; C)", exact.statistic_information, &mc.statistic_information),
            ] {
                assert!(m.stderr > 0.0 && m.stderr < 0.1 * e, "{side} {st} {name}: se {} for {e}", m.stderr);
                assert!(
                    (m.value - e).abs() < 5.0 * m.stderr,
                    "{side} {st} {name}: {} ± {} vs exact {e}",
                    m.value,
                    m.stderr
                );
            }
        }
    }
}

/// The CLIP loss is the mean of the two directions, `L = (ℓ^{X→Y} + ℓ^{Y→X}) / 2`, for an
/// infinite and a finite batch, on a score whose two directions differ. Kills `+ -> *`,
/// `/ -> *`, `/ -> %` in `Exact::clip_loss` (no test compared it with its two halves).
#[test]
fn clip_loss_is_the_mean_of_the_two_directions() {
    let model = RandomSpec::symmetric(2, 2, 1, 5).build().unwrap();
    let en = Enumeration::new(&model).unwrap();
    let exact = Exact::new(&en);
    let s = exact.scores(&Perturbed { base: Pmi { model: &model }, amplitude: 1.5, seed: 2 });
    for batch in [Batch::Infinite, Batch::Finite(2), Batch::Finite(3)] {
        let xy = exact.loss(&s, Direction::ImageToText, batch).unwrap();
        let yx = exact.loss(&s, Direction::TextToImage, batch).unwrap();
        assert!((xy - yx).abs() > 1e-3, "{batch:?}: the directions differ ({xy}, {yx})");
        let clip = exact.clip_loss(&s, batch).unwrap();
        assert!((clip - (xy + yx) / 2.0).abs() < 1e-14, "{batch:?}: {clip} against ({xy} + {yx}) / 2");
    }
}

/// On a model with impossible pairs (`PMI = -∞` there), the losses of the PMI are those of
/// their definitions with `0 · (-∞) = 0`: `ℓ_∞(PMI) = -I(X; Y)` in both directions (T2's
/// minimum), `E_A KL(P ‖ Q^PMI) = 0` (T4), and `ℓ_2(PMI)` equals the batch expectation written
/// out, `Σ_a p(a) Σ_{c_1} p(c_1 | a) Σ_{c_2} p(c_2) [-S(a, c_1) + log(e^{S(a, c_1)} + e^{S(a, c_2)})]`.
/// Kills `p > 0 -> >=` in `View::loss_infinite` and in `View::excess_kl` (a NaN).
#[test]
fn pmi_losses_on_a_model_with_impossible_pairs() {
    let model = impossible_pairs_model();
    let en = Enumeration::new(&model).unwrap();
    let exact = Exact::new(&en);
    let mi = en.mutual_information();
    assert!(exact.pmi.contains(&f64::NEG_INFINITY));
    for dir in [Direction::ImageToText, Direction::TextToImage] {
        let limit = exact.loss(&exact.pmi, dir, Batch::Infinite).unwrap();
        assert!((limit + mi).abs() < 1e-12, "{dir:?}: ℓ_∞(PMI) = {limit}, -I = {}", -mi);
        let view = exact.view(&exact.pmi, dir);
        assert!(view.excess_kl().abs() < 1e-12, "{dir:?}: KL {}", view.excess_kl());
        let (na, nc) = (view.anchors(), view.candidates());
        let mut by_hand = 0.0;
        for a in 0..na {
            for c1 in (0..nc).filter(|&c| view.cond[a * nc + c] > 0.0) {
                let s1 = view.s[a * nc + c1];
                for c2 in 0..nc {
                    let pair = (s1.exp() + view.s[a * nc + c2].exp()).ln() - s1;
                    by_hand += view.pa[a] * view.cond[a * nc + c1] * view.pc[c2] * pair;
                }
            }
        }
        let two = exact.loss(&exact.pmi, dir, Batch::Finite(2)).unwrap();
        assert!((two - by_hand).abs() < 1e-12, "{dir:?}: ℓ_2(PMI) = {two}, by hand {by_hand}");
    }
}

/// Adding a constant to a score changes no loss (the softmax over candidates ignores it), nor
/// T3's rate constant `c_1` or T4's KL; at `S ± 500`, where `e^S` overflows or underflows, the
/// exact computations must still give the unshifted values, which is what their max-shifts are
/// for. Kills `v - top -> v + top` in `View::rate_constant` (`e^{S + max S}` overflows).
#[test]
fn losses_and_rate_constant_ignore_a_large_constant_shift() {
    let model = RandomSpec::symmetric(2, 2, 1, 11).build().unwrap();
    let en = Enumeration::new(&model).unwrap();
    let exact = Exact::new(&en);
    let s = exact.scores(&Perturbed { base: Pmi { model: &model }, amplitude: 0.5, seed: 4 });
    for dir in [Direction::ImageToText, Direction::TextToImage] {
        let base = exact.view(&s, dir);
        let quantities = |v: &contrastive::View| {
            [v.loss_infinite(), v.loss_finite(2).unwrap(), v.loss_finite(5).unwrap(), v.rate_constant(), v.excess_kl()]
        };
        let want = quantities(&base);
        assert!(want[3].abs() > 1e-3, "{dir:?}: c_1 = {} is not trivially zero", want[3]);
        for shift in [500.0, -500.0] {
            let shifted: Vec<f64> = s.iter().map(|v| v + shift).collect();
            let got = quantities(&exact.view(&shifted, dir));
            for (name, g, w) in
                ["ℓ_∞", "ℓ_2", "ℓ_5", "c_1", "KL"].iter().zip(got).zip(want).map(|((n, g), w)| (n, g, w))
            {
                assert!((g - w).abs() < 1e-9, "{dir:?}, S {shift:+}: {name} = {g} against {w}");
            }
        }
    }
}

/// The exact batch-`K` loss is refused exactly when its work `|A|·|C|·C(K+|C|-2, |C|-1)` exceeds
/// `WORK_LIMIT = 4·10^8`: with 1,000 anchors and 2 candidates the work is `2000·K`, so
/// `K = 2·10^5` is accepted and `K = 2·10^5 + 1` refused, by `View::finite_work` and by
/// `View::loss_finite` (which is only called where it refuses: computing the loss at the limit
/// takes 15 s). A constant score's loss is `log K` at every `K`, checked at `K = 100`. Kills
/// `* -> +`, `* -> /` in the work and `> -> ==`, `> -> >=` in its guard (the mutation run of 2026-11-28 found them
/// in `loss_finite`, before the guard was moved into `finite_work`).
#[test]
fn exact_batch_loss_accepts_the_work_limit_and_refuses_just_above_it() {
    let (na, nc) = (1000, 2);
    let pa = vec![1.0 / na as f64; na];
    let cond: Vec<f64> = (0..na).flat_map(|a| if a % 2 == 0 { [0.75, 0.25] } else { [0.25, 0.75] }).collect();
    let view = contrastive::View { pa, pc: vec![0.5; nc], cond, s: vec![0.3; na * nc] };
    let k = 200_000;
    assert_eq!(view.finite_work(k).unwrap(), info::WORK_LIMIT);
    for refused in [view.finite_work(k + 1), view.loss_finite(k + 1)] {
        match refused {
            Err(InfoError::TooLarge { size, limit, .. }) => {
                assert_eq!((size, limit), (2000.0 * (k + 1) as f64, info::WORK_LIMIT))
            }
            other => panic!("just above the limit: expected a refusal, got {other:?}"),
        }
    }
    let loss = view.loss_finite(100).unwrap();
    assert!((loss - 100f64.ln()).abs() < 1e-12, "ℓ_K of a constant score is log K: {loss}");
}

/// A candidate of probability zero is never drawn, as the positive or as a negative, so it
/// changes no exact quantity of a view: `ℓ_∞`, `ℓ_K`, `c_1` and the KL of a view with a
/// zero-probability candidate (in the middle, with an arbitrary score) equal those of the view
/// without it (`p(c) = Σ_a p(a) p(c | a)`, as in every view built from a model).
/// In the batch-`K` walk its count is always 0 and its weight `p(c)^0 = 1`, not `0 · (-∞)`.
/// Kills `m > 0 -> m >= 0` in `Compositions::expect` (a NaN).
#[test]
fn a_candidate_of_probability_zero_changes_no_exact_loss() {
    let cond = [0.5, 0.2, 0.3, 0.1, 0.6, 0.3];
    let s = [0.4, -1.0, 0.9, 1.3, 0.2, -0.5];
    let without =
        contrastive::View { pa: vec![0.45, 0.55], pc: vec![0.28, 0.42, 0.30], cond: cond.to_vec(), s: s.to_vec() };
    let insert =
        |row: &[f64], value: f64| -> Vec<f64> { row.chunks(3).flat_map(|r| [r[0], value, r[1], r[2]]).collect() };
    let with = contrastive::View {
        pa: without.pa.clone(),
        pc: insert(&without.pc, 0.0),
        cond: insert(&cond, 0.0),
        s: insert(&s, 2.5),
    };
    let quantities = |v: &contrastive::View| {
        let mut q = vec![v.loss_infinite(), v.rate_constant(), v.excess_kl()];
        q.extend((1..=5).map(|k| v.loss_finite(k).unwrap()));
        q
    };
    let (got, want) = (quantities(&with), quantities(&without));
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        assert!(g.is_finite() && (g - w).abs() < 1e-12, "quantity {i}: {g} with the candidate, {w} without");
    }
}

/// `contrastive::monte_carlo` returns one term per sample for every score, also when `samples`
/// is not a multiple of `MC_CHUNK`, and the chunk `c` always draws from stream `c` of the seed:
/// asking for more samples appends terms and leaves the first ones as they were. Kills
/// `samples - c·MC_CHUNK -> samples + c·MC_CHUNK`, `c·MC_CHUNK -> c + MC_CHUNK` and
/// `-> c / MC_CHUNK` in the length of the last chunk.
#[test]
fn monte_carlo_losses_have_one_term_per_sample_and_extend_reproducibly() {
    let model = RandomSpec::symmetric(2, 2, 1, 3).build().unwrap();
    let pmi = Pmi { model: &model };
    let perturbed = Perturbed { base: Pmi { model: &model }, amplitude: 0.5, seed: 1 };
    let scores: [&dyn Score; 2] = [&pmi, &perturbed];
    assert_eq!(contrastive::MC_CHUNK, 64);
    for batch in [Batch::Finite(3), Batch::Infinite] {
        let longest = contrastive::monte_carlo(&model, &scores, batch, 130, 7).unwrap();
        for samples in [2, 63, 64, 65, 129, 130] {
            let mc = contrastive::monte_carlo(&model, &scores, batch, samples, 7).unwrap();
            for (terms, all) in mc.terms.iter().zip(&longest.terms) {
                assert_eq!(terms.len(), samples, "{batch:?}: {samples} samples asked for");
                assert_eq!(terms[..], all[..samples], "{batch:?}: the first {samples} of 130 samples");
            }
        }
    }
}

/// A score that records every grid it is asked for, so a test can recompute from the very
/// batches a Monte Carlo estimator drew what its terms must be.
struct Recording<'m> {
    inner: Perturbed<Pmi<'m>>,
    grids: std::sync::Mutex<Vec<RecordedGrid>>,
}

/// The anchors, the candidates and the grid of scores returned for them.
type RecordedGrid = (Vec<Vec<usize>>, Vec<Vec<usize>>, Vec<f64>);

impl Score for Recording<'_> {
    fn name(&self) -> String {
        "recording".into()
    }
    fn score(&self, x: &[usize], y: &[usize]) -> f64 {
        self.inner.score(x, y)
    }
    fn grid(&self, xs: &[Vec<usize>], ys: &[Vec<usize>]) -> Vec<f64> {
        let g = self.inner.grid(xs, ys);
        self.grids.lock().unwrap().push((xs.to_vec(), ys.to_vec(), g.clone()));
        g
    }
}

fn log_mean_exp(v: &[f64]) -> f64 {
    let top = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    top + (v.iter().map(|x| (x - top).exp()).sum::<f64>() / v.len() as f64).ln()
}

/// Each Monte Carlo term is the loss of the batch it was computed on, recomputed here from the
/// grid the score returned: for a batch of `K` pairs, `[(1/K) Σ_i (log Σ_j e^{S(x_i, y_j)} -
/// S(x_i, y_i)), (1/K) Σ_i (log Σ_j e^{S(x_j, y_i)} - S(x_i, y_i))]`; for `K = ∞`, with inner
/// draws `v_j = S(x_0, y_j)` (or `S(x_j, y_0)`), `J(v) - S(x_0, y_0)` with the half-sample
/// jackknife `J(v) = 2 lme(v) - (lme(v[..M/2]) + lme(v[M/2..])) / 2`, `lme(v) = log mean e^v`.
/// The estimators' means cannot tell a row from another row of the same batch (the pairs are
/// exchangeable), so the comparisons with the exact losses missed `i * k -> i / k` in
/// `batch_terms` (every anchor scored against the first anchor's row); this test does not.
#[test]
fn monte_carlo_terms_are_the_losses_of_the_drawn_batches() {
    let model = RandomSpec::symmetric(2, 3, 1, 6).build().unwrap();
    let score = Recording {
        inner: Perturbed { base: Pmi { model: &model }, amplitude: 0.8, seed: 3 },
        grids: Default::default(),
    };
    let k = 5;
    let mc = contrastive::monte_carlo(&model, &[&score], Batch::Finite(k), 3, 11).unwrap();
    let grids = score.grids.lock().unwrap().clone();
    assert_eq!(grids.len(), 3);
    for ((xs, ys, g), term) in grids.iter().zip(&mc.terms[0]) {
        assert_eq!((xs.len(), ys.len()), (k, k));
        let (mut xy, mut yx) = (0.0, 0.0);
        for i in 0..k {
            let row: Vec<f64> = (0..k).map(|j| g[i * k + j]).collect();
            let col: Vec<f64> = (0..k).map(|j| g[j * k + i]).collect();
            let ln_k = (k as f64).ln();
            xy += log_mean_exp(&row) + ln_k - g[i * k + i];
            yx += log_mean_exp(&col) + ln_k - g[i * k + i];
        }
        let want = [xy / k as f64, yx / k as f64];
        assert!((term[0] - want[0]).abs() < 1e-12 && (term[1] - want[1]).abs() < 1e-12, "{term:?} against {want:?}");
    }
    // The rows differ, so a term computed from the first row only would differ.
    let (_, _, g) = &grids[0];
    assert!((g[0] - g[k]).abs() > 1e-3 || (g[1] - g[k + 1]).abs() > 1e-3);

    score.grids.lock().unwrap().clear();
    let mc = contrastive::monte_carlo(&model, &[&score], Batch::Infinite, 2, 12).unwrap();
    let grids = score.grids.lock().unwrap().clone();
    assert_eq!(grids.len(), 4, "two grids per outer pair");
    let jackknife = |v: &[f64]| {
        let h = v.len() / 2;
        2.0 * log_mean_exp(v) - (log_mean_exp(&v[..h]) + log_mean_exp(&v[h..])) / 2.0
    };
    for (pair, term) in grids.chunks(2).zip(&mc.terms[0]) {
        let ((x0, ys, to_text), (xs, y0, to_image)) =
            ((&pair[0].0, &pair[0].1, &pair[0].2), (&pair[1].0, &pair[1].1, &pair[1].2));
        assert_eq!(
            (x0.len(), ys.len(), xs.len(), y0.len()),
            (1, contrastive::INNER_SAMPLES, contrastive::INNER_SAMPLES, 1)
        );
        let s = score.score(&x0[0], &y0[0]);
        let want = [jackknife(to_text) - s, jackknife(to_image) - s];
        assert!((term[0] - want[0]).abs() < 1e-12 && (term[1] - want[1]).abs() < 1e-12, "{term:?} against {want:?}");
    }
}

/// `sample_induced` draws `y ∝ p(y) e^{S(x, y)}` by resampling a pool, with the weights shifted
/// by the pool's largest score; a constant added to `S` changes neither `Q^S` nor (with the same
/// random stream) a single draw, even at `S ± 500` where `e^S` overflows or underflows. Kills
/// `v - top -> v + top` in `sample_induced` (its weights overflow to `∞` or underflow to 0).
#[test]
fn sample_induced_ignores_a_large_constant_shift() {
    use jghm::score::ShiftOf;
    let model = RandomSpec::symmetric(2, 3, 1, 8).build().unwrap();
    let base = Perturbed { base: Pmi { model: &model }, amplitude: 0.8, seed: 3 };
    let x = vec![1, 0, 1];
    let draws = |score: &dyn Score| -> Vec<Vec<usize>> {
        let mut rng = jghm::rng::stream(21, 0);
        (0..40).map(|_| contrastive::sample_induced(&model, score, &x, 30, &mut rng).unwrap()).collect()
    };
    let want = draws(&base);
    let distinct: std::collections::BTreeSet<_> = want.iter().collect();
    assert!(distinct.len() > 2, "the draws vary: {distinct:?}");
    for amplitude in [500.0, -500.0] {
        let shifted = Shifted { base: &base, of: ShiftOf::Constant, amplitude, seed: 0 };
        assert!((shifted.score(&x, &want[0]) - base.score(&x, &want[0]) - amplitude).abs() < 1e-9);
        assert_eq!(draws(&shifted), want, "S {amplitude:+}");
    }
}

/// `bp::fast::FLOOR`, built from its bit pattern (biased exponent `1023 - 960`, zero mantissa),
/// is exactly the documented `2^-960`: a normal number, far above the subnormal range and far
/// below any scaled maximum of a well-conditioned pass. Too high a floor would send every
/// observation to the slow reference (the answers unchanged, so no accuracy test sees it); too
/// low, none. Kills `1023 - 960 -> 1023 + 960` and `-> 1023 / 960` in `FLOOR`.
#[test]
fn fast_bp_floor_is_two_to_the_minus_960() {
    use jghm::bp::fast::FLOOR;
    assert_eq!(FLOOR, 0.5f64.powi(960));
    assert_eq!(FLOOR.log2(), -960.0);
    assert!(FLOOR.is_normal());
}

/// A tower of depth 2 for the leaf-table tests: a root of `root` states, `mid` nodes of 2
/// states, `leaves` binary leaves under each; the text tower has depth 1 (never a table).
fn leaf_table_model(root: usize, mid: usize, leaves: usize) -> jghm::model::Jghm {
    use jghm::model::{Jghm, Level};
    use nalgebra::DMatrix;
    let rows = |n: usize| DMatrix::from_fn(n, 2, |a, b| if (a + b) % 2 == 0 { 0.7 } else { 0.3 });
    let image = vec![Level { transitions: vec![rows(root); mid] }, Level { transitions: vec![rows(2); leaves] }];
    let text = vec![Level { transitions: vec![rows(root); 2] }];
    Jghm::new(vec![1.0 / root as f64; root], vec![], image, text).unwrap()
}

/// `FastBp` tabulates the parents-of-leaves messages exactly when the table fits its limits
/// (`FastBp::has_leaf_table`, module doc of `bp::fast`): `V^m · parents · S ≤ 2^19` numbers
/// (`2^16 · 4 · 2` fits, `2^16 · 5 · 2` does not), at most 64 states above the table (64 fits,
/// 65 does not), a tower of depth at least 2, and for `for_batch(n)` at least one use per row on
/// average (`2^16 · 4` rows, 4 parents of leaves: `n = 2^16` builds it, `2^16 - 1` does not).
/// Kills `1 << 19 -> 1 >> 19` in `TABLE_BUDGET` (no table ever: same answers, slower).
#[test]
fn fast_bp_builds_its_leaf_table_exactly_within_its_limits() {
    use jghm::bp::fast::FastBp;
    let at_budget = leaf_table_model(2, 4, 16);
    assert!(FastBp::new(&at_budget).has_leaf_table(Part::Image));
    assert!(!FastBp::new(&at_budget).has_leaf_table(Part::Text), "a tower of depth 1 has no table");
    assert!(FastBp::for_batch(&at_budget, 1 << 16).has_leaf_table(Part::Image));
    assert!(!FastBp::for_batch(&at_budget, (1 << 16) - 1).has_leaf_table(Part::Image));
    assert!(!FastBp::new(&leaf_table_model(2, 5, 16)).has_leaf_table(Part::Image), "above the budget");
    assert!(FastBp::new(&leaf_table_model(64, 1, 1)).has_leaf_table(Part::Image));
    assert!(!FastBp::new(&leaf_table_model(65, 1, 1)).has_leaf_table(Part::Image), "65 states above the table");
}

/// `PosteriorEncoder` gives NaN for an impossible sequence, in every entry: also at a separator
/// state of prior 0, where `exp(ln 0 + h - log p)` would be a plausible-looking 0. The model's
/// third root state has prior 0 and is the only one that emits image token 2. Kills `> → >=`
/// in `encode` and `encode_all` (`log p > -∞` before the posterior is computed).
#[test]
fn posterior_encoder_rows_of_impossible_sequences_are_all_nan() {
    let json = r#"{"prior":[0.5,0.5,0.0],
        "image":[{"transitions":[[[0.5,0.5,0.0],[0.25,0.75,0.0],[0.0,0.0,1.0]]]}],
        "text":[{"transitions":[[[0.6,0.4],[0.3,0.7],[0.5,0.5]]]}]}"#;
    let model = jghm::model::Jghm::from_json(json).unwrap();
    let encoder = PosteriorEncoder { model: &model, part: Part::Image, cut: Cut::separator(&model).unwrap() };
    let bits =
        |rows: &[Vec<f64>]| -> Vec<Vec<u64>> { rows.iter().map(|r| r.iter().map(|v| v.to_bits()).collect()).collect() };
    let one_by_one = [encoder.encode(&[2]), encoder.encode(&[0])];
    assert!(one_by_one[0].iter().all(|v| v.is_nan()), "impossible: {:?}", one_by_one[0]);
    // The possible image: p(z | x = 0) ∝ (0.5 · 0.5, 0.5 · 0.25, 0) = (2/3, 1/3, 0).
    let want = [2.0 / 3.0, 1.0 / 3.0, 0.0];
    assert!(one_by_one[1].iter().zip(want).all(|(a, b)| (a - b).abs() < 1e-15), "{:?}", one_by_one[1]);
    assert_eq!(bits(&encoder.encode_all(&[vec![2], vec![0]])), bits(&one_by_one), "encode_all");
}

/// The PMI through an affine map, `a · PMI + b`, undefined (NaN) on the pairs whose image starts
/// with token 0 when `holes` is set: a score whose correlation with the PMI is exactly `sign a`
/// on the pairs where both are finite.
struct AffinePmi<'m> {
    pmi: Pmi<'m>,
    a: f64,
    b: f64,
    holes: bool,
}

impl Score for AffinePmi<'_> {
    fn name(&self) -> String {
        "affine PMI".into()
    }
    fn score(&self, x: &[usize], y: &[usize]) -> f64 {
        if self.holes && x[0] == 0 {
            f64::NAN
        } else {
            self.a * self.pmi.score(x, y) + self.b
        }
    }
}

fn eval_spec() -> jghm::eval::EvalSpec {
    jghm::eval::EvalSpec { samples: 60, zero_shot_images: 200, prompts: 8, grid: 12, seed: 4 }
}

/// `eval::evaluate`'s derived figures: the excess risk is the mean of the two directions'
/// (per outer pair, so exactly the mean of the two estimates), the accuracy's standard error is
/// `√(b (1 − b) / n)` at the Bayes accuracy `b`, and the Bayes accuracy is the fraction of the
/// zero-shot images (drawn with `rng::Purpose::EvalZeroShotImages`) whose root-posterior argmax
/// is their root, recomputed here. Kills `+ → *` in the mean of the directions, the mutants of
/// the standard error's formula, and `/ → *`, `/ → %`, `== → !=` in `zero_shot`'s fraction.
#[test]
fn eval_excess_risk_accuracy_and_its_standard_error_are_their_formulas() {
    let model = RandomSpec::symmetric(3, 2, 2, 8).build().unwrap();
    let score = Perturbed { base: Pmi { model: &model }, amplitude: 0.5, seed: 3 };
    let spec = eval_spec();
    let r = jghm::eval::evaluate(&model, &score, &spec).unwrap();
    let mean = 0.5 * (r.excess_risk_image_to_text.value + r.excess_risk_text_to_image.value);
    assert!((r.excess_risk - mean).abs() < 1e-12, "{} vs the mean of the directions {mean}", r.excess_risk);
    assert!(r.excess_risk > 0.0);
    let test = jghm::sample::sample_pairs(&model, 200, jghm::rng::Purpose::EvalZeroShotImages.seed(spec.seed), true);
    let xs: Vec<Vec<usize>> = test.iter().map(|p| p.image.clone()).collect();
    let right = jghm::bp::root_posteriors(&model, Part::Image, &xs)
        .iter()
        .zip(&test)
        .filter(|(post, p)| {
            let best = (0..post.len()).max_by(|&a, &b| post[a].total_cmp(&post[b])).unwrap();
            best == p.hidden.as_ref().unwrap()[0]
        })
        .count();
    let bayes = right as f64 / 200.0;
    assert_eq!(r.bayes_accuracy, bayes);
    assert!(bayes > 0.4 && bayes < 1.0, "{bayes}");
    assert!((r.accuracy_stderr - (bayes * (1.0 - bayes) / 200.0).sqrt()).abs() < 1e-15);
    for acc in [r.zero_shot_accuracy, r.oracle_zero_shot_accuracy] {
        assert!((0.0..=1.0).contains(&acc) && (acc * 200.0).fract() == 0.0, "{acc}: a fraction of 200 images");
    }
}

/// `eval`'s correlation with the PMI is Pearson's on the pairs where both are finite: `+1` for
/// `2 · PMI + 3`, `−1` for `−PMI`, still `+1` with NaN on a third of the images. Kills the sign
/// mutants of the centring in `pearson` and `&& → ||` in its finiteness filter.
#[test]
fn eval_correlation_is_pearson_on_the_finite_pairs() {
    let model = RandomSpec::symmetric(3, 2, 2, 8).build().unwrap();
    let spec = eval_spec();
    for (a, b, holes, want) in [(2.0, 3.0, false, 1.0), (-1.0, 0.0, false, -1.0), (2.0, 3.0, true, 1.0)] {
        let score = AffinePmi { pmi: Pmi { model: &model }, a, b, holes };
        let r = jghm::eval::evaluate(&model, &score, &jghm::eval::EvalSpec { samples: 2, zero_shot_images: 3, ..spec })
            .unwrap();
        assert!((r.pmi_correlation - want).abs() < 1e-9, "{a}·PMI + {b} (holes {holes}): {}", r.pmi_correlation);
    }
}

/// `LearnedScore` keeps a pool of encoder caches per side; a cache is reused only by its own
/// side. With towers of different lengths (8 image leaves, 4 text leaves) and the texts encoded
/// first (so that a text cache is pooled before any image is encoded), repeated grids equal the
/// PMI pair by pair, and the score is named `learned`. Kills `== → !=` in the
/// pool's side test of `LearnedScore::encode` and the `name` mutants.
#[test]
fn learned_score_reuses_only_its_own_sides_caches() {
    use jghm::learn::{BpEncoder, Head, Params};
    let mut spec = RandomSpec::symmetric(3, 2, 3, 6);
    spec.text_depth = 2;
    let model = spec.build().unwrap();
    let make = || {
        let head: Vec<f64> = model.prior().iter().map(|p| p.ln()).collect();
        let params =
            Params { image: BpEncoder::truth(&model, Part::Image), text: BpEncoder::truth(&model, Part::Text), head };
        jghm::eval::LearnedScore::new(
            BpEncoder::for_tower(&model, Part::Image).unwrap(),
            BpEncoder::for_tower(&model, Part::Text).unwrap(),
            params,
            Head::T7 { states: model.root_states() },
        )
    };
    let pairs = jghm::sample::sample_pairs(&model, 40, 2, false);
    let xs: Vec<Vec<usize>> = pairs.iter().map(|p| p.image.clone()).collect();
    let ys: Vec<Vec<usize>> = pairs.iter().map(|p| p.text.clone()).collect();
    let pooled = make();
    assert_eq!(pooled.name(), "learned");
    let pmi = Pmi { model: &model };
    // A text tower's cache (4 leaves) in the pool before the first image (8 leaves) is encoded:
    // an image chunk that took it would not fit in it.
    let texts_first = pooled.encode(false, &ys);
    assert_eq!(texts_first.len(), ys.len() * model.root_states());
    for _ in 0..3 {
        let grid = pooled.grid(&xs, &ys);
        for (i, x) in xs.iter().enumerate() {
            for (j, y) in ys.iter().enumerate() {
                let want = pmi.score(x, y);
                assert!(
                    (grid[i * ys.len() + j] - want).abs() < 1e-9,
                    "pair ({i}, {j}): {} vs PMI {want}",
                    grid[i * ys.len() + j]
                );
            }
        }
    }
}

/// Every form of a score named on the command line parses to its own variant, and a bad
/// argument or name is refused. Kills the deleted match arms of `ScoreSpec::from_str` (the
/// command-line tests that parse them are not among the eval mutation runs' test files).
#[test]
fn score_spec_parses_every_form_it_names() {
    use jghm::eval::{ScoreSpec, ScoreSpecError};
    assert_eq!("pmi".parse::<ScoreSpec>().unwrap(), ScoreSpec::Pmi);
    assert_eq!("t7".parse::<ScoreSpec>().unwrap(), ScoreSpec::T7);
    assert_eq!("perturbed:0.5".parse::<ScoreSpec>().unwrap(), ScoreSpec::Perturbed { amplitude: 0.5, seed: 0 });
    assert_eq!("perturbed:2:7".parse::<ScoreSpec>().unwrap(), ScoreSpec::Perturbed { amplitude: 2.0, seed: 7 });
    assert_eq!("through:map-root".parse::<ScoreSpec>().unwrap(), ScoreSpec::Through(Statistic::MapRoot));
    assert_eq!("ckpt:a/b.json".parse::<ScoreSpec>().unwrap(), ScoreSpec::Checkpoint("a/b.json".into()));
    assert!(matches!("perturbed:inf".parse::<ScoreSpec>(), Err(ScoreSpecError::Amplitude(_))));
    assert!(matches!("perturbed:1:x".parse::<ScoreSpec>(), Err(ScoreSpecError::Seed(_))));
    for bad in ["pmi:1", "t7:2", "perturbed", "through", "bayes"] {
        assert!(matches!(bad.parse::<ScoreSpec>(), Err(ScoreSpecError::Unknown(_))), "{bad}");
    }
}

/// `zero_shot::evaluate` says how its `ε` was obtained: by exact enumeration on an enumerable
/// model, by Monte Carlo with the number of outer pairs otherwise (a mutant returned any string).
#[test]
fn zero_shot_names_the_method_of_its_epsilon() {
    use jghm::downstream::labels::Label;
    use jghm::downstream::zero_shot::{evaluate, Prompts, Spec};
    use jghm::score::Pmi;
    let small = RandomSpec::symmetric(3, 2, 2, 1).build().unwrap();
    let spec = Spec { prompts: Prompts::Exact, images: None, bound_samples: 7 };
    let r = evaluate(&small, &Pmi { model: &small }, &Label::TextToken(0), &spec).unwrap();
    assert!(r.method.ends_with("epsilon: exact enumeration"), "{}", r.method);
    // Too many texts to enumerate (3^16 on each side): sampled images and prompts.
    let large = RandomSpec::symmetric(3, 2, 4, 1).build().unwrap();
    assert!(info::exact_work(&large).is_err(), "the large model is not enumerable");
    let spec = Spec { prompts: Prompts::Ensemble { size: 2, seed: 1 }, images: Some((8, 1)), bound_samples: 7 };
    let r = evaluate(&large, &Pmi { model: &large }, &Label::Root, &spec).unwrap();
    assert!(r.method.contains("epsilon: Monte Carlo, 7 outer pairs x "), "{}", r.method);
}

/// Every class is found by its own name, and only by it (a mutant of the comparison found
/// the first class of another name).
#[test]
fn classes_are_found_by_their_names() {
    use jghm::learn::Class;
    for c in Class::ALL {
        assert_eq!(Class::from_name(c.name()), Some(c));
    }
    assert_eq!(Class::from_name("cnn"), None);
}
