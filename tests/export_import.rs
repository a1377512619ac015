//! Data sets leave with their exact quantities (`jghm export`) and scores of encoders trained
//! elsewhere come back (`jghm eval --scores`): the exported numbers are BP's, the files are
//! reproducible, the PMI fed back has excess risk 0 exactly, and an independent recomputation
//! from the files agrees with the evaluation.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use jghm::arrays::{self, to_safetensors, Array, Stored};
use jghm::bp;
use jghm::eval::exact::{checkpoint_spec, evaluate_exact};
use jghm::eval::imported::{
    evaluate_pairs, read_scores, route, ImportError, ImportedScore, PairsSpec, Route, Similarity,
};
use jghm::export::{enumerate_all, sample_set};
use jghm::info::Enumeration;
use jghm::learn::checkpoint::sha256_hex;
use jghm::model::{Jghm, Part};
use jghm::random_family::RandomSpec;
use jghm::sample::sample_pairs;

/// No trunk, 4 image and 4 text leaves, 3 tokens: 81 images and 81 texts.
fn tiny(seed: u64) -> Jghm {
    RandomSpec::symmetric(3, 2, 2, seed).build().unwrap()
}

/// A trunk of one level above one-level towers: 4 image and 4 text leaves, 3 tokens.
fn with_trunk(seed: u64) -> Jghm {
    let mut spec = RandomSpec::symmetric(2, 2, 1, seed);
    spec.shared_depth = 1;
    spec.text_depth = 1;
    spec.vocab = 3;
    spec.build().unwrap()
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("jghm-export-import-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

/// Every exported number is BP's on that pair (1e-12), the pairs are `sample_pairs`' with the
/// seed, the roots their sampled roots; the file reads back to the same arrays.
#[test]
fn exported_pairs_carry_bp_quantities() {
    for model in [tiny(1), with_trunk(2)] {
        let set = sample_set(&model, 300, 7, true, &mut |_| {});
        let pairs = sample_pairs(&model, 300, 7, true);
        let s0 = model.root_states();
        for (i, p) in pairs.iter().enumerate() {
            assert_eq!((&set.images[i], &set.texts[i]), (&p.image, &p.text));
            assert_eq!(set.roots[i], p.hidden.as_ref().unwrap()[0]);
            assert_eq!(set.hidden.as_ref().unwrap()[i], *p.hidden.as_ref().unwrap());
            let parts = bp::pmi(&model, &p.image, &p.text).unwrap();
            for (got, want) in [
                (set.pmi[i], parts.pmi),
                (set.log_pxy[i], parts.log_pxy),
                (set.log_px[i], parts.log_px),
                (set.log_py[i], parts.log_py),
            ] {
                assert!((got - want).abs() < 1e-12, "pair {i}: {got} vs {want}");
            }
            for (part, post) in [(Part::Image, &set.image_root_posterior), (Part::Text, &set.text_root_posterior)] {
                let seq = if part == Part::Image { &p.image } else { &p.text };
                let want = bp::root_posterior_of(&model, part, seq).unwrap().root;
                for (a, b) in post[i * s0..(i + 1) * s0].iter().zip(&want) {
                    assert!((a - b).abs() < 1e-12, "pair {i} {part}: {a} vs {b}");
                }
            }
        }
        let sha = sha256_hex(model.to_json().as_bytes());
        let path = scratch("pairs.safetensors");
        std::fs::write(&path, set.to_safetensors(&model, &sha)).unwrap();
        let back = arrays::read(&path).unwrap();
        assert_eq!(back.metadata["model_sha256"], sha);
        assert_eq!(back.metadata["seed"], "7");
        assert_eq!(back.arrays["images"].shape, vec![300, model.len_of(Part::Image)]);
        assert_eq!(back.arrays["pmi"].data, set.pmi);
        assert_eq!(back.arrays["image_root_posterior"].shape, vec![300, s0]);
        assert_eq!(back.arrays["roots"].data, set.roots.iter().map(|&z| z as f64).collect::<Vec<_>>());
        assert_eq!(back.arrays["hidden"].shape, vec![300, model.tree().nodes.len()]);
    }
}

/// The same model and seed give the same bytes with one thread and with several.
#[test]
fn export_is_the_same_whatever_the_thread_count() {
    let model = tiny(3);
    let bytes = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        pool.install(|| sample_set(&model, 5000, 11, false, &mut |_| {}).to_safetensors(&model, "h"))
    };
    let one = bytes(1);
    assert_eq!(one, bytes(2));
    assert_eq!(one, bytes(4));
    assert_ne!(one, sample_set(&model, 5000, 12, false, &mut |_| {}).to_safetensors(&model, "h"), "another seed");
}

/// `--all`: every sequence of positive probability, `log p`, and the PMI matrix, equal to BP's.
#[test]
fn all_sequences_are_the_enumeration() {
    for model in [tiny(4), with_trunk(5)] {
        let all = enumerate_all(&model).unwrap();
        let en = Enumeration::new(&model).unwrap();
        assert_eq!(all.images, en.image.tokens);
        assert_eq!(all.texts, en.text.tokens);
        let ny = all.texts.len();
        for i in (0..all.images.len()).step_by(7) {
            assert!((all.log_px[i] - bp::log_px(&model, &all.images[i]).unwrap()).abs() < 1e-12);
            for j in (0..ny).step_by(5) {
                let want = bp::pmi(&model, &all.images[i], &all.texts[j]).unwrap().pmi;
                assert!((all.pmi[i * ny + j] - want).abs() < 1e-10, "({i}, {j})");
            }
        }
        // p(x, y) = p(x) p(y) e^PMI sums to 1.
        let total: f64 = (0..all.images.len())
            .flat_map(|i| (0..ny).map(move |j| (i, j)))
            .map(|(i, j)| (all.log_px[i] + all.log_py[j] + all.pmi[i * ny + j]).exp())
            .sum();
        assert!((total - 1.0).abs() < 1e-12, "{total}");
    }
    let big = RandomSpec::symmetric(4, 3, 3, 1).build().unwrap();
    let err = enumerate_all(&big).unwrap_err().to_string();
    assert!(err.contains("too") || err.contains("limit"), "{err}");
}

/// Writes the `--all` export and a scores file holding `scores` (and no tokens: the export's
/// order is the enumeration's, which the reader assumes).
fn write_scores(model: &Jghm, sha: &str, name: &str, values: &[f64], with_tokens: bool) -> PathBuf {
    let all = enumerate_all(model).unwrap();
    let s = Array::matrix(all.images.len(), all.texts.len(), values.to_vec());
    let tok = |rows: &[Vec<usize>]| {
        Array::matrix(rows.len(), rows[0].len(), rows.iter().flatten().map(|&t| t as f64).collect())
    };
    let (xi, yi) = (tok(&all.images), tok(&all.texts));
    let mut arrays = vec![("scores", &s, Stored::F64)];
    if with_tokens {
        arrays.push(("images", &xi, Stored::I64));
        arrays.push(("texts", &yi, Stored::I64));
    }
    let path = scratch(name);
    std::fs::write(&path, to_safetensors(&arrays, BTreeMap::from([("model_sha256".into(), sha.into())]))).unwrap();
    path
}

/// T2/T4 through the files: the exported PMI fed back as scores has excess risk 0 in both
/// directions (to round-off), a row-shuffled one a large excess; an independent recomputation
/// of `ℓ_∞` from the files' numbers alone agrees with the evaluation to 1e-9.
#[test]
fn pmi_round_trips_to_zero_excess_and_a_held_out_recomputation_agrees() {
    for model in [tiny(6), with_trunk(7)] {
        let sha = sha256_hex(model.to_json().as_bytes());
        let all = enumerate_all(&model).unwrap();
        let (nx, ny) = (all.images.len(), all.texts.len());
        let en = Enumeration::new(&model).unwrap();
        let spec = checkpoint_spec(&en, 4);
        // The PMI: excess 0.
        let path = write_scores(&model, &sha, "pmi.safetensors", &all.pmi, true);
        let score = read_scores(&model, &sha, &path, None, None, None).unwrap();
        assert!(matches!(route(&model, &score).unwrap(), Route::Exact(_)));
        let r = evaluate_exact(&model, &score, &spec).unwrap();
        for e in [r.image_to_text.excess, r.text_to_image.excess, r.excess_risk] {
            assert!(e.abs() < 1e-12, "PMI fed back: excess {e}");
        }
        // A row-shuffled PMI (image i gets the row of image 37 i + 11 mod |X|, a permutation as
        // 37 is prime to |X| = 81): a large part of I(X;Y) is lost.
        let from = |i: usize| (37 * i + 11) % nx;
        let shuffled: Vec<f64> = (0..nx).flat_map(|i| all.pmi[from(i) * ny..(from(i) + 1) * ny].to_vec()).collect();
        let path = write_scores(&model, &sha, "shuffled.safetensors", &shuffled, false);
        let score = read_scores(&model, &sha, &path, None, None, None).unwrap();
        let r = evaluate_exact(&model, &score, &spec).unwrap();
        assert!(
            r.excess_risk > 0.5 * r.mutual_information,
            "shuffled: {} (I = {})",
            r.excess_risk,
            r.mutual_information
        );
        // Held out: ℓ_∞^{X→Y}(S) = Σ_{x,y} p(x, y) [−S(x, y) + log Σ_y' p(y') e^{S(x, y')}] from
        // the export's log p and PMI only (no BP, no contrastive module), and Y→X likewise.
        let p = |i: usize, j: usize| (all.log_px[i] + all.log_py[j] + all.pmi[i * ny + j]).exp();
        let lse = |v: Vec<f64>| {
            let m = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            m + v.iter().map(|x| (x - m).exp()).sum::<f64>().ln()
        };
        let loss = |s: &[f64], image_to_text: bool| -> f64 {
            let mut total = 0.0;
            for i in 0..nx {
                for j in 0..ny {
                    let pij = p(i, j);
                    if pij == 0.0 {
                        continue;
                    }
                    let norm = if image_to_text {
                        lse((0..ny).map(|k| all.log_py[k] + s[i * ny + k]).collect())
                    } else {
                        lse((0..nx).map(|k| all.log_px[k] + s[k * ny + j]).collect())
                    };
                    total += pij * (-s[i * ny + j] + norm);
                }
            }
            total
        };
        for (dir, want) in [(true, r.image_to_text.loss), (false, r.text_to_image.loss)] {
            let got = loss(&shuffled, dir);
            assert!((got - want).abs() < 1e-9, "held-out l_inf {got} vs eval {want}");
        }
        let held_out =
            0.5 * (loss(&shuffled, true) - loss(&all.pmi, true) + loss(&shuffled, false) - loss(&all.pmi, false));
        assert!((held_out - r.excess_risk).abs() < 1e-9, "held-out excess {held_out} vs eval {}", r.excess_risk);
    }
}

/// Embeddings read from `.npy`-in-`.npz` files, with the tokens of an `--all` export: dot and
/// cosine scores equal `scale ⟨f, g⟩` and `scale cos(f, g)`, and the exact report is the one of
/// the same scores given as a matrix.
#[test]
fn embeddings_from_npz_are_the_scores_they_say() {
    let model = tiny(8);
    let sha = sha256_hex(model.to_json().as_bytes());
    let all = enumerate_all(&model).unwrap();
    let set = scratch("all.safetensors");
    std::fs::write(&set, all.to_safetensors(&model, &sha)).unwrap();
    let p = 3;
    let emb = |n: usize, salt: u64| -> Vec<f64> {
        (0..n * p).map(|k| ((k as u64 * 2654435761 + salt) % 1000) as f64 / 500.0 - 1.0).collect()
    };
    let (fx, gy) = (emb(all.images.len(), 1), emb(all.texts.len(), 2));
    let npz = scratch("emb.npz");
    write_npz(
        &npz,
        &[
            ("image_embeddings", &[all.images.len(), p], &fx),
            ("text_embeddings", &[all.texts.len(), p], &gy),
            ("logit_scale", &[], &[2.5]),
        ],
    );
    let en = Enumeration::new(&model).unwrap();
    let spec = checkpoint_spec(&en, 3);
    for similarity in [Similarity::Dot, Similarity::Cosine] {
        let score = read_scores(&model, &sha, &npz, Some(&set), Some(similarity), None).unwrap();
        let dot = |i: usize, j: usize| -> f64 {
            let (f, g) = (&fx[i * p..(i + 1) * p], &gy[j * p..(j + 1) * p]);
            let d: f64 = f.iter().zip(g).map(|(a, b)| a * b).sum();
            let norm = |v: &[f64]| v.iter().map(|a| a * a).sum::<f64>().sqrt();
            2.5 * if similarity == Similarity::Dot { d } else { d / (norm(f) * norm(g)) }
        };
        let values: Vec<f64> = (0..all.images.len())
            .flat_map(|i| (0..all.texts.len()).map(move |j| (i, j)))
            .map(|(i, j)| dot(i, j))
            .collect();
        for (k, v) in values.iter().enumerate().step_by(13) {
            let (i, j) = (k / all.texts.len(), k % all.texts.len());
            assert!((score.at(i, j) - v).abs() < 1e-12);
        }
        let matrix = ImportedScore::matrix(all.images.clone(), all.texts.clone(), values);
        let (a, b) = (evaluate_exact(&model, &score, &spec).unwrap(), evaluate_exact(&model, &matrix, &spec).unwrap());
        assert!((a.excess_risk - b.excess_risk).abs() < 1e-12);
        assert!(a.excess_risk > 0.0);
        // The level sets of the embeddings are finer than those of the matrix rows, never
        // coarser, so their sufficiency gap is at most the rows'.
        assert!(a.image_to_text.statistic.sufficiency.kl_form <= b.image_to_text.statistic.sufficiency.kl_form + 1e-12);
    }
}

/// Monte Carlo on exported pairs, checked against the exact answer on an enumerable model: the
/// excess risks of fixed embeddings within 4 standard errors (plus the `O(1/B)` bias bound),
/// the Bayes accuracy within 4 binomial standard errors of its exact value.
#[test]
fn pairs_estimate_agrees_with_the_exact_evaluation() {
    let model = tiny(9);
    let sha = sha256_hex(model.to_json().as_bytes());
    let n = 20_000;
    let set = sample_set(&model, n, 5, false, &mut |_| {});
    let set_path = scratch("set.safetensors");
    std::fs::write(&set_path, set.to_safetensors(&model, &sha)).unwrap();
    // Embeddings: the posterior p(z | ·) of each side (a good but not optimal statistic).
    let s0 = model.root_states();
    let rows = |post: &[f64]| -> Vec<f64> { post.iter().map(|v| 3.0 * v).collect() };
    let npz = scratch("pairs.npz");
    write_npz(
        &npz,
        &[
            ("image_embeddings", &[n, s0], &rows(&set.image_root_posterior)),
            ("text_embeddings", &[n, s0], &rows(&set.text_root_posterior)),
        ],
    );
    let score = read_scores(&model, &sha, &npz, Some(&set_path), None, None).unwrap();
    assert!(score.rows_are_pairs);
    let spec = PairsSpec { block: 1000, k: 4, prompts: 16 };
    let mc = evaluate_pairs(&model, &score, Some(&set.roots), &spec).unwrap();
    // The exact answer for the same score function: look it up over every sequence.
    let all = enumerate_all(&model).unwrap();
    let f = |part: Part, seq: &[usize]| bp::root_posterior_of(&model, part, seq).unwrap().root;
    let values: Vec<f64> = all
        .images
        .iter()
        .flat_map(|x| all.texts.iter().map(move |y| (x, y)))
        .map(|(x, y)| 9.0 * f(Part::Image, x).iter().zip(f(Part::Text, y)).map(|(a, b)| a * b).sum::<f64>())
        .collect();
    let exact_score = ImportedScore::matrix(all.images.clone(), all.texts.clone(), values);
    let en = Enumeration::new(&model).unwrap();
    let exact = evaluate_exact(&model, &exact_score, &checkpoint_spec(&en, 4)).unwrap();
    // The bias of `log mean_{j≠i} e^{S_ij}` over m = B − 1 draws is `−E_a v_a / (2m)` to leading
    // order, with `v_a = Var(e^{S(a, C)}) / (E e^{S(a, C)})²` the relative variance over
    // `C ~ p(c)`; the paired difference's bias is at most the sum of the two scores' (computed
    // exactly here from the enumeration), doubled for the higher-order terms.
    let (nx, ny) = (all.images.len(), all.texts.len());
    let relative_variance = |s: &dyn Fn(usize, usize) -> f64, image_to_text: bool| -> f64 {
        let (na, nc) = if image_to_text { (nx, ny) } else { (ny, nx) };
        let (log_pa, log_pc) = if image_to_text { (&all.log_px, &all.log_py) } else { (&all.log_py, &all.log_px) };
        (0..na)
            .map(|a| {
                let at = |c: usize| if image_to_text { s(a, c) } else { s(c, a) };
                let m1: f64 = (0..nc).map(|c| (log_pc[c] + at(c)).exp()).sum();
                let m2: f64 = (0..nc).map(|c| (log_pc[c] + 2.0 * at(c)).exp()).sum();
                log_pa[a].exp() * (m2 / (m1 * m1) - 1.0)
            })
            .sum()
    };
    let learned = |i: usize, j: usize| exact_score.at(i, j);
    let pmi = |i: usize, j: usize| all.pmi[i * ny + j];
    let m = (spec.block - 1) as f64;
    for (est, want, image_to_text) in [
        (&mc.report.excess_risk_image_to_text, exact.image_to_text.excess, true),
        (&mc.report.excess_risk_text_to_image, exact.text_to_image.excess, false),
    ] {
        let bias =
            2.0 * (relative_variance(&learned, image_to_text) + relative_variance(&pmi, image_to_text)) / (2.0 * m);
        let slack = 4.0 * est.stderr + bias;
        assert!((est.value - want).abs() < slack, "pairs {} ± {} vs exact {want}", est.value, est.stderr);
        assert!(est.stderr > 0.0 && est.stderr < 0.02, "{}", est.stderr);
    }
    let bayes = exact.zero_shot.iter().find(|z| z.label == "root").unwrap().bayes_accuracy.value;
    let se = (bayes * (1.0 - bayes) / mc.zero_shot_images as f64).sqrt();
    assert!((mc.report.bayes_accuracy - bayes).abs() < 4.0 * se, "{} vs {bayes}", mc.report.bayes_accuracy);
    assert!(mc.finite.excess.value > 0.0 && mc.finite.k == 4);
}

/// Bad files give one clear error each: another model's export, wrong shapes, NaN, a token out
/// of the vocabulary, missing arrays, too few pairs.
#[test]
fn bad_files_are_refused_with_their_cause() {
    let model = tiny(10);
    let sha = sha256_hex(model.to_json().as_bytes());
    let all = enumerate_all(&model).unwrap();
    let (nx, ny) = (all.images.len(), all.texts.len());
    let err =
        |path: &Path, set: Option<&Path>| read_scores(&model, &sha, path, set, None, None).unwrap_err().to_string();
    let other = write_scores(&model, "0123", "other.safetensors", &all.pmi, true);
    assert!(err(&other, None).contains("another model"), "{}", err(&other, None));
    let file = scratch("wrong.npz");
    write_npz(&file, &[("scores", &[nx, ny - 1], &vec![0.0; nx * (ny - 1)])]);
    assert!(err(&file, None).contains("shape"), "{}", err(&file, None));
    let mut nan = all.pmi.clone();
    nan[5] = f64::NAN;
    write_npz(&file, &[("scores", &[nx, ny], &nan)]);
    assert!(err(&file, None).contains("not a finite number"), "{}", err(&file, None));
    let mut bad = vec![0.0; nx * model.len_of(Part::Image)];
    bad[3] = model.vocab_of(Part::Image) as f64;
    write_npz(
        &file,
        &[
            ("image_embeddings", &[nx, 1], &vec![0.0; nx]),
            ("text_embeddings", &[ny, 1], &vec![0.0; ny]),
            ("images", &[nx, model.len_of(Part::Image)], &bad),
        ],
    );
    assert!(err(&file, None).contains("out of the image vocabulary"), "{}", err(&file, None));
    write_npz(&file, &[("image_embeddings", &[nx, 1], &vec![0.0; nx])]);
    assert!(err(&file, None).contains("neither"), "{}", err(&file, None));
    write_npz(&file, &[("image_embeddings", &[nx, 1], &vec![0.0; nx]), ("text_embeddings", &[ny, 1], &vec![0.0; ny])]);
    assert!(err(&file, None).contains("no 'images' token array"), "{}", err(&file, None));
    std::fs::write(&file, b"not an array file").unwrap();
    assert!(err(&file, None).contains("is not a safetensors"), "{}", err(&file, None));
    // Embeddings of too few images to evaluate exactly, and not pairs: refused with the counts.
    let set = sample_set(&model, 10, 1, false, &mut |_| {});
    let tok = |rows: &[Vec<usize>]| rows.iter().flatten().map(|&t| t as f64).collect::<Vec<_>>();
    write_npz(
        &file,
        &[
            ("image_embeddings", &[10, 1], &[1.0; 10]),
            ("text_embeddings", &[10, 1], &[1.0; 10]),
            ("images", &[10, model.len_of(Part::Image)], &tok(&set.images)),
            ("texts", &[10, model.len_of(Part::Text)], &tok(&set.texts)),
        ],
    );
    let score = read_scores(&model, &sha, &file, None, None, None).unwrap();
    let e = route(&model, &score).err().unwrap();
    assert!(matches!(e, ImportError::NotCovered { .. }), "{e}");
}

/// A `.npz` of float64 arrays as NumPy's `np.savez` writes it (a zip of `.npy` files).
fn write_npz(path: &Path, arrays: &[(&str, &[usize], &[f64])]) {
    use npyz::WriterBuilder;
    use std::io::Write;
    let mut zip = zip::ZipWriter::new(std::fs::File::create(path).unwrap());
    for (name, shape, data) in arrays {
        zip.start_file(format!("{name}.npy"), zip::write::SimpleFileOptions::default()).unwrap();
        let shape: Vec<u64> = shape.iter().map(|&d| d as u64).collect();
        let mut bytes = vec![];
        {
            let mut w = npyz::WriteOptions::new().default_dtype().shape(&shape).writer(&mut bytes).begin_nd().unwrap();
            w.extend(data.iter().copied()).unwrap();
            w.finish().unwrap();
        }
        zip.write_all(&bytes).unwrap();
    }
    zip.finish().unwrap();
}
