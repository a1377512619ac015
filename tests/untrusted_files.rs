//! Checkpoints and configurations are untrusted input: a corrupted or hostile file (a size field
//! out of range, tensor shapes that disagree with the configuration, an unknown format version,
//! a file cut at any section boundary, a run too large for the memory budget) is refused by the
//! loader with a typed error before anything of its claimed size is allocated, and by the
//! binary with one `error: ...` line and exit code 1.

use std::path::{Path, PathBuf};
use std::process::Command;

use jghm::learn::checkpoint::{Checkpoint, CheckpointError, CheckpointFile, ModelFile};
use jghm::learn::config::ConfigError;
use jghm::learn::{AdamW, Class, ClipPair, Mlp, TrainConfig};
use jghm::model::Part;
use serde_json::Value;

fn dir() -> PathBuf {
    let d = std::env::temp_dir().join(format!("jghm-untrusted-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A small two-tower model written to a file, read back once.
fn model_file() -> (PathBuf, ModelFile) {
    // Written once per process: the tests run in parallel and read it meanwhile.
    static WRITTEN: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    let path = WRITTEN
        .get_or_init(|| {
            let path = dir().join("model.json");
            let mut spec = jghm::random_family::RandomSpec::symmetric(3, 2, 2, 4);
            spec.text_depth = 2;
            std::fs::write(&path, spec.build().unwrap().to_json()).unwrap();
            path
        })
        .clone();
    let file = ModelFile::read(&path).unwrap();
    (path, file)
}

fn small_config() -> TrainConfig {
    let mut cfg = TrainConfig::for_class(Class::Mlp);
    (cfg.width, cfg.out, cfg.batch) = (8, 4, 8);
    cfg
}

/// A valid MLP checkpoint of `model`.
fn checkpoint(model: &ModelFile) -> Vec<u8> {
    let cfg = small_config().check(&model.model).unwrap();
    let enc = |p| Mlp::new(cfg.mlp_shape(&model.model, p));
    let pair: ClipPair<f32, Mlp> = ClipPair::new(enc(Part::Image), enc(Part::Text), cfg.head(&model.model), cfg.scheme);
    let params = pair.init(&mut jghm::rng::stream(1, 0));
    Checkpoint {
        config: cfg.config().clone(),
        model_sha256: model.sha256.clone(),
        seed: 1,
        step: 2,
        opt: AdamW::new(&params),
        params,
        train_loss: 1.0,
        held_out_loss: None,
    }
    .to_bytes()
}

/// The safetensors header of `bytes` rewritten by `edit` (the tensor data is kept as is).
fn edit_header(bytes: &[u8], edit: impl FnOnce(&mut Value)) -> Vec<u8> {
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let mut header: Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    edit(&mut header);
    let mut text = serde_json::to_vec(&header).unwrap();
    while !text.len().is_multiple_of(8) {
        text.push(b' ');
    }
    let mut out = (text.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(&text);
    out.extend_from_slice(&bytes[8 + n..]);
    out
}

/// `bytes` with the embedded configuration's `field` set to `value`.
fn with_config_field(bytes: &[u8], field: &str, value: Value) -> Vec<u8> {
    edit_header(bytes, |h| {
        let meta = &mut h["__metadata__"];
        let mut cfg: Value = serde_json::from_str(meta["config"].as_str().unwrap()).unwrap();
        cfg[field] = value;
        meta["config"] = Value::String(cfg.to_string());
    })
}

fn load(model: &ModelFile, bytes: Vec<u8>) -> Result<CheckpointFile, CheckpointError> {
    CheckpointFile::from_bytes(model, bytes, Some(1 << 34))
}

#[test]
fn a_valid_checkpoint_loads_and_decodes() {
    let (_, model) = model_file();
    let file = load(&model, checkpoint(&model)).unwrap();
    assert_eq!(file.checkpoint::<f32>().unwrap().step, 2);
}

#[test]
fn config_fields_out_of_range_are_refused_by_name() {
    let (_, model) = model_file();
    let good = checkpoint(&model);
    for (field, value, named) in [
        ("layers", serde_json::json!(1099511627776u64), "layers"),
        ("width", serde_json::json!(1073741824u64), "width"),
        ("batch", serde_json::json!(100000000000u64), "batch"),
        ("out", serde_json::json!(0), "out"),
        ("bp_states_factor", serde_json::json!(17), "bp_states_factor"),
        ("holdout", serde_json::json!(1.5), "holdout"),
        ("embedding_std", serde_json::json!(0.0), "embedding_std"),
        ("embedding_std", serde_json::json!(1e300), "embedding_std"),
    ] {
        let err = load(&model, with_config_field(&good, field, value)).err().expect(field);
        assert!(matches!(err, CheckpointError::Config(_)), "{field}: {err}");
        assert!(err.to_string().contains(named), "{field}: {err}");
    }
}

#[test]
fn shapes_that_disagree_with_the_configuration_are_refused() {
    let (_, model) = model_file();
    let good = checkpoint(&model);
    // A wider MLP than the tensors hold (in range, so only the shapes can catch it).
    let err = load(&model, with_config_field(&good, "width", serde_json::json!(16))).err().unwrap();
    assert!(matches!(err, CheckpointError::Shape { .. }), "{err}");
    // Another class: the BP class's tensors are F64 and of other sizes.
    let err = load(&model, with_config_field(&good, "class", serde_json::json!("bp"))).err().unwrap();
    assert!(matches!(err, CheckpointError::Shape { .. }), "{err}");
    // A tensor's shape claims more numbers than its bytes hold.
    let lying = edit_header(&good, |h| h["param.image"]["shape"] = serde_json::json!([1u64 << 40]));
    assert!(load(&model, lying).is_err());
    // A tensor that is not part of the format.
    let extra = edit_header(&good, |h| {
        let end = h["adam_v.head"]["data_offsets"][1].clone();
        h["extra"] = serde_json::json!({"dtype": "F32", "shape": [0], "data_offsets": [end, end]});
    });
    let err = load(&model, extra).err().unwrap();
    assert!(err.to_string().contains("extra") || matches!(err, CheckpointError::Format(_)), "{err}");
}

#[test]
fn unknown_format_versions_are_refused_by_name() {
    let (_, model) = model_file();
    let v2 = edit_header(&checkpoint(&model), |h| {
        h["__metadata__"]["format"] = Value::String("jghm-clip-checkpoint-v2".into())
    });
    let err = load(&model, v2).err().unwrap();
    assert!(matches!(err, CheckpointError::Version(_)), "{err}");
    assert!(err.to_string().contains("jghm-clip-checkpoint-v2"), "{err}");
}

#[test]
fn truncation_at_every_section_boundary_is_an_error() {
    let (_, model) = model_file();
    let good = checkpoint(&model);
    let n = u64::from_le_bytes(good[..8].try_into().unwrap()) as usize;
    for cut in [0, 4, 8, 8 + n / 2, 8 + n, 8 + n + (good.len() - 8 - n) / 2, good.len() - 1] {
        assert!(load(&model, good[..cut].to_vec()).is_err(), "cut at {cut} of {}", good.len());
    }
    // A length prefix claiming an enormous header.
    let mut huge = good.clone();
    huge[..8].copy_from_slice(&u64::MAX.to_le_bytes());
    assert!(load(&model, huge).is_err());
}

#[test]
fn a_run_above_the_memory_budget_is_refused_naming_a_field() {
    let (_, model) = model_file();
    let err = small_config().check_within(&model.model, Some(1000)).err().unwrap();
    match &err {
        ConfigError::Memory { largest, .. } => assert!(!largest.is_empty()),
        e => panic!("expected a memory error, got {e}"),
    }
    assert!(err.to_string().contains("lower"), "{err}");
    assert!(small_config().check_within(&model.model, Some(1 << 34)).is_ok());
}

/// A checkpoint is checked against the memory of *evaluating* it: parameters (the file's three
/// blocks, decoded once) and one forward cache per tower and worker, well below the training
/// estimate (gradients, optimiser state, a training batch's loss and data). A budget between
/// the two loads the checkpoint for evaluation although it refuses the training run; a budget
/// below the evaluation estimate refuses it, naming evaluation.
#[test]
fn a_checkpoint_is_checked_against_the_memory_of_evaluating_it() {
    use jghm::learn::memory::{estimate, evaluation_estimate};
    let (_, model) = model_file();
    let cfg = small_config().check_within(&model.model, None).unwrap();
    let threads = rayon::current_num_threads();
    let eval = evaluation_estimate(&cfg, &model.model, threads);
    let train = estimate(&cfg, &model.model).total();
    // The parameters' part is the checkpoint's three blocks twice: about twice the file's size.
    let file_bytes = checkpoint(&model).len() as f64;
    assert!(eval.parameters > 1.5 * file_bytes && eval.parameters < 2.5 * file_bytes, "{eval:?} vs file {file_bytes}");
    assert!(eval.activations > 0.0 && eval.total() < train, "evaluation {} vs training {train}", eval.total());
    let between = ((eval.total() + train) / 2.0) as u64;
    assert!(small_config().check_within(&model.model, Some(between)).is_err());
    assert!(CheckpointFile::from_bytes(&model, checkpoint(&model), Some(between)).is_ok());
    let below = (eval.total() / 2.0) as u64;
    match CheckpointFile::from_bytes(&model, checkpoint(&model), Some(below)) {
        Err(CheckpointError::Config(ConfigError::EvaluationMemory { .. })) => {}
        other => panic!("expected the evaluation memory error, got {:?}", other.err()),
    }
}

/// Runs the binary; returns (exit code, stderr).
fn jghm(args: &[&str]) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_jghm")).args(args).output().expect("the binary runs");
    (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
}

fn refused(args: &[&str], expected: &str) {
    let (code, stderr) = jghm(args);
    assert_eq!(code, Some(1), "{args:?}: exit {code:?}, stderr {stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "{args:?}: {stderr}");
    assert!(stderr.starts_with("error: "), "{args:?}: {stderr}");
    assert!(stderr.contains(expected), "{args:?}: expected '{expected}' in {stderr}");
}

fn write(name: &str, bytes: &[u8]) -> String {
    let p = dir().join(name);
    std::fs::write(&p, bytes).unwrap();
    p.to_str().unwrap().to_string()
}

#[test]
fn the_binary_refuses_corrupted_checkpoints_with_one_line() {
    let (path, model) = model_file();
    let m = path.to_str().unwrap();
    let good = checkpoint(&model);
    let n = u64::from_le_bytes(good[..8].try_into().unwrap()) as usize;
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("layers", with_config_field(&good, "layers", serde_json::json!(1099511627776u64)), "layers"),
        ("width", with_config_field(&good, "width", serde_json::json!(1073741824u64)), "width"),
        ("batch", with_config_field(&good, "batch", serde_json::json!(100000000000u64)), "batch"),
        ("shape", with_config_field(&good, "width", serde_json::json!(16)), "tensor"),
        ("cut-header", good[..8 + n / 2].to_vec(), "checkpoint"),
        ("cut-data", good[..good.len() - 1].to_vec(), "checkpoint"),
    ];
    for (name, bytes, expected) in cases {
        let ck = write(&format!("{name}.safetensors"), &bytes);
        refused(&["eval", "--model", m, "--checkpoint", &ck, "--samples", "2", "--images", "2"], expected);
        refused(&["zero-shot", "--model", m, "--label", "root", "--score", &format!("ckpt:{ck}")], expected);
    }
    let ck = write("good.safetensors", &good);
    refused(&["eval", "--model", m, "--checkpoint", &ck, "--max-memory", "1000"], "memory");
}

#[test]
fn the_binary_refuses_huge_training_configurations_with_one_line() {
    let (path, _) = model_file();
    let m = path.to_str().unwrap();
    let out = dir().join("never.safetensors");
    let out = out.to_str().unwrap();
    for (name, text, expected) in [
        ("layers", r#"{"layers": 1099511627776}"#, "layers"),
        ("width", r#"{"width": 1073741824}"#, "width"),
        ("batch", r#"{"batch": 100000000000}"#, "batch"),
        ("product", r#"{"width": 8192, "layers": 256}"#, "memory"),
    ] {
        let cfg = write(&format!("cfg-{name}.json"), text.as_bytes());
        refused(&["train", "--model", m, "--config", &cfg, "--steps", "1", "--seed", "1", "--out", out], expected);
    }
    refused(&["train", "--model", m, "--steps", "1", "--seed", "1", "--out", out, "--max-memory", "1000"], "memory");
    assert!(!Path::new(out).exists(), "a refused run wrote a checkpoint");
}
