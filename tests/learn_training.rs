//! Training is reproducible (same parameters whatever the thread count, and after an
//! interruption and resume), checkpoints round-trip, a checkpoint of another model is refused,
//! and restarts continue the candidate with the lowest selection loss.

use jghm::learn::checkpoint::Checkpoint;
use jghm::learn::data::Data;
use jghm::learn::train::{candidate_start, held_out_loss, run_work, select_start, train, Run};
use jghm::learn::{BpEncoder, Class, ClipPair, Scheme, TrainConfig, Transformer};
use jghm::model::{Jghm, Part};
use jghm::random_family::RandomSpec;

fn tiny_model() -> Jghm {
    let mut spec = RandomSpec::symmetric(3, 2, 2, 4);
    spec.text_depth = 2;
    spec.build().unwrap()
}

fn transformer_pair(model: &Jghm, cfg: &TrainConfig) -> ClipPair<f32, Transformer> {
    let enc = |p| Transformer::new(cfg.transformer_shape(model, p));
    ClipPair::new(enc(Part::Image), enc(Part::Text), cfg.head(model), cfg.scheme)
}

fn small_config(class: Class) -> TrainConfig {
    let mut cfg = TrainConfig::for_class(class);
    cfg.width = 8;
    cfg.heads = 2;
    cfg.out = 4;
    cfg.batch = 20;
    cfg.schedule.steps = 12;
    cfg.schedule.warmup = 3;
    cfg.checkpoint_every = 5;
    cfg
}

/// Trains `steps` steps, optionally stopping after `stop_at` and resuming from the saved
/// checkpoint's bytes; returns the final checkpoint.
fn run(model: &Jghm, cfg: &TrainConfig, threads: usize, stop_at: Option<usize>) -> Checkpoint<f32> {
    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
    pool.install(|| {
        let mut pair = transformer_pair(model, cfg);
        let mut data = match cfg.n {
            Some(n) => Data::fixed(model, n, cfg.holdout, 9),
            None => Data::Fresh { model, seed: 9 },
        };
        let mut saved: Option<Vec<u8>> = None;
        let checked = cfg.check(model).unwrap();
        let first = Run {
            config: &checked,
            seed: 9,
            model_sha256: "m".into(),
            steps: stop_at.unwrap_or(cfg.schedule.steps),
            max_seconds: None,
        };
        let mut save = |ck: &Checkpoint<f32>| {
            saved = Some(ck.to_bytes());
            Ok(())
        };
        let ck = train(&mut pair, &mut data, &first, None, &mut |_| {}, &mut save).unwrap();
        if stop_at.is_none() {
            return ck;
        }
        let resumed = Checkpoint::<f32>::from_bytes(&saved.unwrap()).unwrap();
        let mut pair = transformer_pair(model, cfg);
        let rest = Run { steps: cfg.schedule.steps, ..first };
        train(&mut pair, &mut data, &rest, Some(resumed), &mut |_| {}, &mut |_| Ok(())).unwrap()
    })
}

#[test]
fn training_is_reproducible_across_threads_and_resume() {
    let model = tiny_model();
    // The last run restarts: 3 candidates of 4 steps, interrupted after the choice (step 5).
    for (n, scheme, restarts) in [
        (None, Scheme::InBatch, 1),
        (Some(200), Scheme::KWay { k: 3, split: false }, 1),
        (Some(200), Scheme::KWay { k: 3, split: true }, 1),
        (None, Scheme::InBatch, 3),
    ] {
        let mut cfg = small_config(Class::Transformer);
        cfg.n = n;
        cfg.scheme = scheme;
        cfg.restarts = restarts;
        cfg.restart_steps = 4;
        let reference = run(&model, &cfg, 1, None);
        let threaded = run(&model, &cfg, 3, None);
        let resumed = run(&model, &cfg, 2, Some(5));
        assert_eq!(reference.step, 12);
        assert_eq!(reference.params, threaded.params, "{scheme:?}: thread count changed the parameters");
        assert_eq!(reference.params, resumed.params, "{scheme:?}: resuming changed the parameters");
        assert_eq!(reference.opt, resumed.opt);
        // and training moved the parameters
        let init = transformer_pair(&model, &cfg).init(&mut jghm::rng::stream(9, 0));
        assert_ne!(init, reference.params);
    }
}

#[test]
fn checkpoint_round_trips_and_refuses_another_model() {
    let model = tiny_model();
    let cfg = small_config(Class::Bp);
    let pair: ClipPair<f64, BpEncoder> = ClipPair::new(
        cfg.check(&model).unwrap().bp_encoder(&model, Part::Image),
        cfg.check(&model).unwrap().bp_encoder(&model, Part::Text),
        cfg.head(&model),
        cfg.scheme,
    );
    let params = pair.init(&mut jghm::rng::stream(1, 0));
    let ck = Checkpoint {
        config: cfg.clone(),
        model_sha256: "abc".into(),
        seed: 1,
        step: 7,
        opt: jghm::learn::AdamW::new(&params),
        params,
        train_loss: 1.5,
        held_out_loss: Some(2.0),
    };
    let back = Checkpoint::<f64>::from_bytes(&ck.to_bytes()).unwrap();
    assert_eq!(back.params, ck.params);
    assert_eq!((back.step, back.seed, &back.config), (7, 1, &cfg));
    assert!(back.check_model("abc").is_ok());
    assert!(back.check_model("abd").is_err());
    // An f64 checkpoint is not read as f32, and garbage is an error, not a panic.
    assert!(Checkpoint::<f32>::from_bytes(&ck.to_bytes()).is_err());
    assert!(Checkpoint::<f64>::from_bytes(b"not a checkpoint").is_err());
}

/// The selection of [`select_start`], checked against each candidate trained on its own.
fn check_selection(model: &Jghm, n: Option<usize>) {
    let mut cfg = small_config(Class::Transformer);
    (cfg.n, cfg.holdout, cfg.restarts, cfg.restart_steps) = (n, 0.25, 3, 4);
    let checked = cfg.check(model).unwrap();
    let run = Run { config: &checked, seed: 9, model_sha256: "m".into(), steps: 12, max_seconds: None };
    assert_eq!(run_work(&run), 3 * 4 + 8);
    let data = || match n {
        Some(n) => Data::fixed(model, n, cfg.holdout, 9),
        None => Data::Fresh { model, seed: 9 },
    };
    let mut pair = transformer_pair(model, &cfg);
    let mut done = vec![];
    let chosen =
        select_start(&mut pair, &mut data(), &run, std::time::Instant::now(), &mut |r| done.push(r.done)).unwrap();
    assert_eq!(done, (1..=12).collect::<Vec<_>>(), "3 candidates of 4 steps");
    assert_eq!((chosen.losses.len(), chosen.work, chosen.checkpoint.step), (3, 12, 4));
    // Each candidate trained alone for 4 steps: its selection loss is the held-out loss when
    // pairs are held out, else its last step's training loss (⌈4/4⌉ = 1 step).
    let probe = Run { steps: 4, model_sha256: "m".into(), ..run };
    let mut alone = vec![];
    for r in 0..3 {
        let start = candidate_start(&mut pair, &probe, r);
        let mut last = f64::NAN;
        let mut d = data();
        let ck = train(&mut pair, &mut d, &probe, Some(start), &mut |s| last = s.loss, &mut |_| Ok(())).unwrap();
        let loss = held_out_loss(&mut pair, &ck.params, &d, cfg.batch).unwrap().unwrap_or(last);
        assert_eq!(held_out_loss(&mut pair, &ck.params, &d, cfg.batch).unwrap().is_some(), n.is_some());
        assert_eq!(chosen.losses[r], loss, "candidate {r}'s selection loss");
        alone.push(ck);
    }
    let best = (0..3).min_by(|&a, &b| chosen.losses[a].total_cmp(&chosen.losses[b])).unwrap();
    assert_eq!(chosen.index, best);
    assert_eq!(chosen.checkpoint.params, alone[best].params);
    assert!(alone[0].params != alone[1].params && alone[1].params != alone[2].params, "distinct initialisations");
    // Candidate 0 is the run without restarts.
    let mut single = cfg.clone();
    single.restarts = 1;
    let single = single.check(model).unwrap();
    let plain = Run { config: &single, steps: 4, model_sha256: "m".into(), ..run };
    let plain = train(&mut pair, &mut data(), &plain, None, &mut |_| {}, &mut |_| Ok(())).unwrap();
    assert_eq!(plain.params, alone[0].params);
    // The whole run is the chosen candidate continued, and nothing is saved before the choice.
    let mut saved_steps = vec![];
    let mut pair = transformer_pair(model, &cfg);
    let full = train(&mut pair, &mut data(), &run, None, &mut |_| {}, &mut |ck| {
        saved_steps.push(ck.step);
        Ok(())
    })
    .unwrap();
    assert_eq!(saved_steps, vec![4, 5, 10, 12]);
    let continued = train(&mut pair, &mut data(), &run, Some(chosen.checkpoint), &mut |_| {}, &mut |_| Ok(())).unwrap();
    assert_eq!(full.params, continued.params);
}

#[test]
fn restarts_continue_the_candidate_with_the_lowest_selection_loss() {
    let model = tiny_model();
    check_selection(&model, None);
    check_selection(&model, Some(200));
}
