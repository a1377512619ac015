//! T11's transformer as reported: its size (stream width, blocks, parameters) against a count
//! from the model's shape, its error summary against BP recomputed here, the emulated pair as a
//! contrastive score (T7's form on the towers' outputs: the PMI with exact nonlinearities), the
//! refusals, and the width sweep: its rows, files, table and the merge of its shards.
//! See proofs/T11-transformer-bp.md.

mod common;

use std::path::{Path, PathBuf};

use common::{Regime, Shape};
use jghm::bp::{Tokens, Workspace};
use jghm::emulate::sweep::{self, SweepRow};
use jghm::emulate::{BpTransformer, BuildError, EmulatedScore, Nonlinearity};
use jghm::eval::{evaluate, EvalSpec};
use jghm::info::{decode_sequence, side_size};
use jghm::model::{Jghm, Level, Part};
use jghm::rng::Purpose;
use jghm::runs::{MergeError, Shard};
use jghm::sample::sample_pairs;
use jghm::score::{Pmi, Score};
use nalgebra::DMatrix;

/// Every sequence of one tower.
fn all_inputs(model: &Jghm, part: Part) -> Vec<Vec<usize>> {
    let n = side_size(model, part) as usize;
    (0..n).map(|i| decode_sequence(i, model.len_of(part), model.vocab_of(part))).collect()
}

/// Root of 3 states with prior (0.6, 0.3, 0.1); image levels `(children, states)` = (2, 4),
/// (1, 2), (3, 3) (6 leaves, 729 images); text levels (3, 2), (2, 3) (6 leaves).
fn varied_model() -> Jghm {
    let shape =
        Shape { root_states: 3, shared: vec![], image: vec![(2, 4), (1, 2), (3, 3)], text: vec![(3, 2), (2, 3)] };
    let drawn = common::build(&shape, Regime::Generic, 21);
    let (image, text) = (drawn.levels(Part::Image).to_vec(), drawn.levels(Part::Text).to_vec());
    Jghm::new(vec![0.6, 0.3, 0.1], vec![], image, text).unwrap()
}

/// A smaller pair for the sweep: root 2 states, image (2, 3), (2, 2) (4 leaves), text (3, 2).
fn small_model() -> Jghm {
    let shape = Shape { root_states: 2, shared: vec![], image: vec![(2, 3), (2, 2)], text: vec![(3, 2)] };
    common::build(&shape, Regime::Generic, 5)
}

/// The sizes of the construction (the module doc of `emulate`), counted from the tower's shape:
/// `(stream width d, MLP channels per block)`. With `L` levels, `m_k` children and `S_k` states
/// (`S_0` the root's), `N_k = Π_{j≤k} m_j`: the stream holds the token (`S_L`), the child
/// positions (`Σ m_k`), the ancestors (`Σ_{k<L} N_k`), `ν` (`Σ_{k≥1} S_{k−1}`), `h` and `e`
/// (`Σ_{k<L} S_k` each), `L` normalisers and the normalised `p` (`Σ_{1≤k<L} S_k`). Blocks: the
/// leaf messages (`m_L S_{L−1}` channels); then per level `k = L..1` the exponentials (`S_{k−1}`),
/// the normaliser (1), and below the root the normalised messages (`S_{k−1}`) and the next
/// messages (`m_{k−1} S_{k−2}`).
fn counted_sizes(model: &Jghm, part: Part) -> (usize, Vec<usize>) {
    let levels = model.levels(part);
    let l = levels.len();
    let s = |k: usize| if k == 0 { model.root_states() } else { levels[k - 1].states() };
    let m = |k: usize| levels[k - 1].children();
    let nodes = |k: usize| (1..=k).map(m).product::<usize>();
    let d = s(l)
        + (1..=l).map(m).sum::<usize>()
        + (0..l).map(nodes).sum::<usize>()
        + (1..=l).map(|k| s(k - 1)).sum::<usize>()
        + 2 * (0..l).map(s).sum::<usize>()
        + l
        + (1..l).map(s).sum::<usize>();
    let mut channels = vec![m(l) * s(l - 1)];
    for k in (1..=l).rev() {
        channels.extend([s(k - 1), 1]);
        if k > 1 {
            channels.extend([s(k - 1), m(k - 1) * s(k - 2)]);
        }
    }
    (d, channels)
}

/// Stream width, blocks (`4L − 1`) and parameters against the count from the shape: embeddings
/// `S_L d + N_L d`, per block `4d² + 2dH + H + d` with `H` = channels × (width + 1) hidden units
/// (channels alone for exact nonlinearities, width 0), and the projection `d S_0 + S_0`.
#[test]
fn sizes_are_counted_from_the_shape() {
    let varied = varied_model();
    let symmetric = jghm::RandomSpec::symmetric(3, 2, 3, 4).build().unwrap();
    for (model, part) in [(&varied, Part::Image), (&varied, Part::Text), (&symmetric, Part::Text)] {
        let (d, channels) = counted_sizes(model, part);
        let levels = model.levels(part);
        let (leaves, vocab) = (levels.iter().map(|l| l.children()).product::<usize>(), levels.last().unwrap().states());
        for (nonlinearity, units) in [(Nonlinearity::Exact, 0), (Nonlinearity::Relu { width: 8 }, 9)] {
            let net = BpTransformer::new(model, part, nonlinearity).unwrap();
            assert_eq!(net.nonlinearity(), nonlinearity);
            assert_eq!(net.stream_width(), d, "{part}");
            assert_eq!(net.layers(), 4 * levels.len() - 1, "{part}");
            assert_eq!(net.layers(), channels.len());
            let unit = units.max(1);
            let blocks: usize = channels.iter().map(|c| 4 * d * d + 2 * d * c * unit + c * unit + d).sum();
            let s0 = model.root_states();
            assert_eq!(net.parameters(), vocab * d + leaves * d + blocks + d * s0 + s0, "{part} {nonlinearity:?}");
        }
    }
}

/// The error summary: the maximum and the mean of `|ô(x)_a − log p(z = a | x)|` over the inputs
/// and root states, against BP recomputed here, over 729 images (several chunks of the parallel
/// loop) and the 64 texts; with the number of inputs, blocks, width and parameters.
#[test]
fn error_summary_is_the_max_and_mean_over_inputs_and_states() {
    let model = varied_model();
    for part in [Part::Image, Part::Text] {
        let xs = all_inputs(&model, part);
        let net = BpTransformer::new(&model, part, Nonlinearity::Relu { width: 6 }).unwrap();
        let mut ws = Workspace::new(&model);
        let mut exact = vec![0.0; model.root_states()];
        let (mut max, mut sum) = (0.0f64, 0.0);
        for x in &xs {
            let obs = match part {
                Part::Image => Tokens { image: Some(x), text: None },
                _ => Tokens { image: None, text: Some(x) },
            };
            ws.upward(&model, &obs);
            ws.log_root_posterior_into(&model, &mut exact);
            let got = net.log_root_posterior(x).unwrap();
            assert_eq!(got.len(), exact.len());
            for (a, b) in got.iter().zip(&exact) {
                max = max.max((a - b).abs());
                sum += (a - b).abs();
            }
        }
        let mean = sum / (xs.len() * model.root_states()) as f64;
        let err = net.error_against_bp(&model, &xs);
        assert!(max > 1e-4 && mean < max, "{part}: a width of 6 is coarse ({max}, {mean})");
        assert!((err.max_abs_error - max).abs() <= 1e-12 * max, "{part}: {} vs {max}", err.max_abs_error);
        assert!((err.mean_abs_error - mean).abs() <= 1e-12 * mean, "{part}: {} vs {mean}", err.mean_abs_error);
        assert_eq!((err.samples, err.width, err.layers), (xs.len(), 6, net.layers()));
        assert_eq!(err.parameters, net.parameters());
    }
}

/// With exact nonlinearities the emulated pair, `log Σ_z f̂(x)_z ĝ(y)_z / π(z)`, is the PMI on
/// every pair (T7), by `score` and by `grid`; with ReLU MLPs its grid is its pointwise score,
/// and differs from the PMI. The names say which.
#[test]
fn emulated_pair_is_the_pmi_with_exact_nonlinearities() {
    let model = small_model();
    let (xs, ys) = (all_inputs(&model, Part::Image), all_inputs(&model, Part::Text));
    let pmi = Pmi { model: &model };
    let truth = pmi.grid(&xs, &ys);
    assert_eq!(truth.len(), xs.len() * ys.len());
    let exact = EmulatedScore::new(&model, Nonlinearity::Exact).unwrap();
    assert_eq!(exact.name(), "emulated BP (exact nonlinearities)");
    let grid = exact.grid(&xs, &ys);
    assert_eq!(grid.len(), truth.len());
    for (i, x) in xs.iter().enumerate() {
        for (j, y) in ys.iter().enumerate() {
            let k = i * ys.len() + j;
            assert!((grid[k] - truth[k]).abs() < 1e-10, "({i}, {j}): {} vs PMI {}", grid[k], truth[k]);
            assert!((exact.score(x, y) - truth[k]).abs() < 1e-10, "({i}, {j})");
        }
    }
    let relu = EmulatedScore::new(&model, Nonlinearity::Relu { width: 4 }).unwrap();
    assert_eq!(relu.name(), "emulated BP (width 4)");
    let grid = relu.grid(&xs, &ys);
    assert_eq!(grid.len(), truth.len());
    let mut worst = 0.0f64;
    for (i, x) in xs.iter().enumerate() {
        for (j, y) in ys.iter().enumerate() {
            let k = i * ys.len() + j;
            assert!((grid[k] - relu.score(x, y)).abs() < 1e-12, "({i}, {j})");
            worst = worst.max((grid[k] - truth[k]).abs());
        }
    }
    assert!(worst > 1e-6, "width 4 is not exact: {worst}");
}

/// Each refusal names its cause: a trunk, the shared part, a zero transition (its tower and
/// level), a width below 2; width 2 is built.
#[test]
fn refusals_name_their_cause() {
    let trunk = jghm::RandomSpec { shared_depth: 1, ..jghm::RandomSpec::symmetric(3, 2, 2, 1) }.build().unwrap();
    assert_eq!(BpTransformer::new(&trunk, Part::Image, Nonlinearity::Exact).unwrap_err(), BuildError::Trunk);
    let model = small_model();
    assert_eq!(BpTransformer::new(&model, Part::Shared, Nonlinearity::Exact).unwrap_err(), BuildError::SharedPart);
    for width in [0, 1] {
        let got = BpTransformer::new(&model, Part::Image, Nonlinearity::Relu { width });
        assert_eq!(got.unwrap_err(), BuildError::Width, "width {width}");
        assert!(EmulatedScore::new(&model, Nonlinearity::Relu { width }).is_err());
    }
    assert!(BpTransformer::new(&model, Part::Image, Nonlinearity::Relu { width: 2 }).is_ok());
    // A zero entry in the image tower's second level only.
    let mut image = model.levels(Part::Image).to_vec();
    image[1].transitions[0] = DMatrix::from_row_slice(3, 2, &[1.0, 0.0, 0.5, 0.5, 0.2, 0.8]);
    let zero = Jghm::new(model.prior().to_vec(), vec![], image, model.levels(Part::Text).to_vec()).unwrap();
    let err = BpTransformer::new(&zero, Part::Image, Nonlinearity::Exact).unwrap_err();
    assert_eq!(err, BuildError::ZeroTransition { part: Part::Image, level: 1 });
    assert!(BpTransformer::new(&zero, Part::Text, Nonlinearity::Exact).is_ok());
}

/// A transition row that is constant (every child state equally likely) gives a message channel
/// whose read-out is one number: its interpolant still has two distinct knots, and the network
/// stays finite and close to BP.
#[test]
fn a_constant_transition_row_is_interpolated() {
    let level = |rows: &[f64], r: usize, c: usize| Level { transitions: vec![DMatrix::from_row_slice(r, c, rows)] };
    let image = vec![
        Level { transitions: vec![DMatrix::from_row_slice(2, 2, &[0.5, 0.5, 0.2, 0.8]); 2] },
        level(&[0.3, 0.3, 0.4, 0.1, 0.6, 0.3], 2, 3),
    ];
    let text = vec![level(&[0.7, 0.3, 0.25, 0.75], 2, 2)];
    let model = Jghm::new(vec![0.4, 0.6], vec![], image, text).unwrap();
    let xs = all_inputs(&model, Part::Image);
    let errors: Vec<f64> = [4, 16, 64]
        .iter()
        .map(|&width| {
            let net = BpTransformer::new(&model, Part::Image, Nonlinearity::Relu { width }).unwrap();
            net.error_against_bp(&model, &xs).max_abs_error
        })
        .collect();
    println!("{errors:?}");
    assert!(errors.iter().all(|e| e.is_finite()) && errors[1] < errors[0] && errors[2] < errors[1], "{errors:?}");
    assert!(errors[2] < 1e-2, "{errors:?}");
}

fn spec(seed: u64) -> EvalSpec {
    EvalSpec { samples: 40, zero_shot_images: 24, prompts: 2, grid: 6, seed }
}

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("jghm-emulate-reports-{}", std::process::id())).join(name);
    let _ = std::fs::remove_dir_all(&d);
    d
}

/// The printable form of a row, to compare rows (every field, `{:?}` of `f64` round-trips).
fn fields(r: &SweepRow) -> String {
    format!("{r:?}")
}

/// `measure` builds the tower's network and measures it on that tower's sampled inputs;
/// `measure_width` is the emulated pair at that width: the image network's error on the given
/// images, both towers' parameters, and `evaluate`'s figures for the pair.
#[test]
fn measurements_are_the_networks_and_evaluate_on_the_given_inputs() {
    let model = small_model();
    for part in [Part::Image, Part::Text] {
        let (net, err) = sweep::measure(&model, part, Nonlinearity::Relu { width: 5 }, 30, 7).unwrap();
        let inputs: Vec<Vec<usize>> = sample_pairs(&model, 30, 7, false)
            .into_iter()
            .map(|p| if part == Part::Image { p.image } else { p.text })
            .collect();
        assert_eq!(inputs[0].len(), model.len_of(part));
        let direct = BpTransformer::new(&model, part, Nonlinearity::Relu { width: 5 }).unwrap();
        let want = direct.error_against_bp(&model, &inputs);
        assert_eq!(format!("{err:?}"), format!("{want:?}"), "{part}");
        assert_eq!(net.parameters(), direct.parameters());
    }
    let xs: Vec<Vec<usize>> = sample_pairs(&model, 20, 3, false).into_iter().map(|p| p.image).collect();
    let row = sweep::measure_width(&model, 6, &xs, &spec(2)).unwrap();
    let score = EmulatedScore::new(&model, Nonlinearity::Relu { width: 6 }).unwrap();
    let err = score.image.error_against_bp(&model, &xs);
    let report = evaluate(&model, &score, &spec(2)).unwrap();
    assert_eq!(row.width, 6);
    assert_eq!(row.parameters, score.image.parameters() + score.text.parameters());
    assert_ne!(score.image.parameters(), score.text.parameters());
    assert_eq!(row.layers, score.image.layers());
    assert_eq!((row.max_abs_error, row.mean_abs_error), (err.max_abs_error, err.mean_abs_error));
    assert_eq!((row.excess_risk, row.excess_risk_stderr), (report.excess_risk, report.excess_risk_stderr));
    assert_eq!(
        (row.zero_shot_accuracy, row.oracle_zero_shot_accuracy, row.bayes_accuracy),
        (report.zero_shot_accuracy, report.oracle_zero_shot_accuracy, report.bayes_accuracy)
    );
    assert!(row.excess_risk_stderr > 0.0 && row.bayes_accuracy > 0.0);
    // The accuracy's binomial standard error over the test images.
    let (a, n) = (row.zero_shot_accuracy, spec(2).zero_shot_images as f64);
    assert!(a > 0.0 && a < 1.0, "an accuracy strictly between 0 and 1 ({a})");
    assert_eq!(row.zero_shot_accuracy_stderr, (a * (1.0 - a) / n).sqrt());
}

/// `run_sweep` writes its settings first (`settings` as pretty JSON), then one row per width in
/// order, each the `measure_width` of the sampled images (`Purpose::EmulationInputs`), reported
/// to `progress` as it is written; the CSV reads back as the rows. Its table has a header and one
/// line per row, whose numbers are the row's. Its shards, merged, are the unsharded sweep byte
/// for byte; an unfinished shard is refused.
#[test]
fn sweep_rows_files_table_and_merge() {
    let model = small_model();
    let (widths, inputs, spec) = ([4usize, 6, 10], 25, spec(4));
    let dir = scratch("whole");
    let mut seen = vec![];
    let rows = sweep::run_sweep(&model, &widths, inputs, &spec, &dir, None, &mut |r| seen.push(fields(r))).unwrap();
    let xs: Vec<Vec<usize>> = sample_pairs(&model, inputs, Purpose::EmulationInputs.seed(spec.seed), false)
        .into_iter()
        .map(|p| p.image)
        .collect();
    let want: Vec<String> =
        widths.iter().map(|&w| fields(&sweep::measure_width(&model, w, &xs, &spec).unwrap())).collect();
    assert_eq!(rows.iter().map(fields).collect::<Vec<_>>(), want);
    assert_eq!(seen, want);
    let read = sweep::read(&dir.join(sweep::FILE)).unwrap();
    assert_eq!(read.iter().map(fields).collect::<Vec<_>>(), want);
    let settings = std::fs::read_to_string(dir.join(sweep::SETTINGS_FILE)).unwrap();
    assert_eq!(settings, format!("{:#}\n", sweep::settings(&model, &widths, inputs, &spec, None)));
    let meta: serde_json::Value = serde_json::from_str(&settings).unwrap();
    assert_eq!(meta["widths"], serde_json::json!(widths));
    assert_eq!((meta["inputs"].as_u64(), meta["eval_samples"].as_u64()), (Some(25), Some(40)));
    assert_eq!((meta["zero_shot_images"].as_u64(), meta["prompts"].as_u64()), (Some(24), Some(2)));
    assert_eq!((meta["grid"].as_u64(), meta["seed"].as_u64()), (Some(6), Some(4)));
    assert_eq!(meta["model_sha256"].as_str().map(str::len), Some(64));

    check_table(&sweep::table(&rows), &rows);

    let shards: Vec<PathBuf> = (1..=2).map(|k| scratch(&format!("shard{k}"))).collect();
    for (k, d) in shards.iter().enumerate() {
        let shard = Shard { index: k + 1, count: 2 };
        let part = sweep::run_sweep(&model, &widths, inputs, &spec, d, Some(shard), &mut |_| {}).unwrap();
        let mine: Vec<usize> = widths.iter().copied().skip(k).step_by(2).collect();
        assert_eq!(part.iter().map(|r| r.width).collect::<Vec<_>>(), mine);
    }
    let out = scratch("merged");
    let merged = sweep::merge(&shards, &out).unwrap();
    assert_eq!(merged.iter().map(fields).collect::<Vec<_>>(), want);
    for file in [sweep::FILE, sweep::SETTINGS_FILE] {
        assert_eq!(bytes(&out.join(file)), bytes(&dir.join(file)), "{file}");
    }
    // The second shard loses its row: unfinished.
    let csv = String::from_utf8(bytes(&shards[1].join(sweep::FILE))).unwrap();
    std::fs::write(shards[1].join(sweep::FILE), format!("{}\n", csv.lines().next().unwrap())).unwrap();
    match sweep::merge(&shards, &scratch("unfinished")) {
        Err(sweep::SweepError::Merge(MergeError::Unfinished { rows: 0, expected: 1, .. })) => {}
        other => panic!("an unfinished shard: {:?}", other.map(|r| r.len())),
    }
    let _ = std::fs::remove_dir_all(dir.parent().unwrap());
}

fn bytes(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The table: a header naming the columns, then per row its width, parameters, errors, excess
/// risk `±` its standard error and the three accuracies, read back as numbers (to the printed
/// precision).
fn check_table(text: &str, rows: &[SweepRow]) {
    assert!(text.ends_with('\n'));
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), rows.len() + 1, "{text}");
    let header: Vec<&str> = lines[0].split_whitespace().collect();
    assert_eq!(
        header,
        ["width", "parameters", "max", "err", "mean", "err", "excess", "risk", "zero-shot", "PMI", "Bayes"]
    );
    for (line, r) in lines[1..].iter().zip(rows) {
        let f: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(f.len(), 10, "{line}");
        assert_eq!(f[5], "±", "{line}");
        assert_eq!((f[0].parse::<usize>().unwrap(), f[1].parse::<usize>().unwrap()), (r.width, r.parameters));
        let num = |i: usize| f[i].parse::<f64>().unwrap_or_else(|e| panic!("{line}: field {i}: {e}"));
        let close = |got: f64, want: f64, rel: f64| (got - want).abs() <= rel * want.abs() + 1e-300;
        assert!(close(num(2), r.max_abs_error, 1e-3) && close(num(3), r.mean_abs_error, 1e-3), "{line}");
        assert!((num(4) - r.excess_risk).abs() <= 5e-6 && (num(6) - r.excess_risk_stderr).abs() <= 5e-6, "{line}");
        for (i, want) in [(7, r.zero_shot_accuracy), (8, r.oracle_zero_shot_accuracy), (9, r.bayes_accuracy)] {
            assert!((num(i) - want).abs() <= 5e-5, "{line}");
        }
    }
}
