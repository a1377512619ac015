//! The paper's encoder form (`BlockForm::Paper`, `reproduce --encoder paper`): GPT-2's block
//! with three parts removed, and nothing else changed.
//!
//! The paper's `EncoderTransformer` computes, per block, `a = h + softmax(q kᵀ/√C) v` with
//! `q, k, v = LN₁(h) W_{q,k,v}` (no biases, no output projection), then `h' = a + MLP(LN₂(a))`,
//! and reads the last block out without a final LayerNorm. GPT-2's block with zero `qkv` biases,
//! `Wₒ = I`, `bₒ = 0` computes the same hidden states, so the two forms are compared on them,
//! parameter for parameter (by name), and the read-out is checked by hand. The gradients are
//! checked against finite differences in `learn_gradients.rs`.

use jghm::learn::{BlockForm, Encoder, Pooling, TrainConfig, Transformer, TransformerShape};
use jghm::rng;
use rand::Rng as _;
use rand_distr::{Distribution, StandardNormal};

fn shape(heads: usize) -> TransformerShape {
    TransformerShape { vocab: 4, len: 6, width: 8, layers: 3, heads, out: 3 }
}

fn normals(rng: &mut rng::Rng, n: usize) -> Vec<f64> {
    (0..n).map(|_| 0.5 * <StandardNormal as Distribution<f64>>::sample(&StandardNormal, rng)).collect()
}

/// Forward pass of `b` samples; returns the output and the hidden states `h^0..h^L`.
fn run(net: &Transformer, w: &[f64], tokens: &[u32], b: usize) -> (Vec<f64>, Vec<Vec<f64>>) {
    let mut cache = Encoder::<f64>::new_cache(net, b);
    let mut out = vec![0.0; b * net.shape.out];
    net.forward(w, tokens, b, &mut cache, &mut out);
    let n = b * net.shape.len * net.shape.width;
    let hidden = (0..=net.shape.layers).map(|l| cache.hidden(l)[..n].to_vec()).collect();
    (out, hidden)
}

/// GPT-2's parameters equal to the paper's where both have them, `b_qkv = 0`, `Wₒ = I`,
/// `bₒ = 0`, and `LN_f` at its start (gain 1, bias 0).
fn as_gpt2(paper: &Transformer, gpt2: &Transformer, w: &[f64]) -> Vec<f64> {
    let c = gpt2.shape.width;
    let mut out = vec![0.0; Encoder::<f64>::num_params(gpt2)];
    let from: std::collections::HashMap<String, std::ops::Range<usize>> = paper.named_ranges().into_iter().collect();
    for (name, range) in gpt2.named_ranges() {
        match from.get(&name) {
            Some(r) => out[range].copy_from_slice(&w[r.clone()]),
            None if name.ends_with("attn.w") => {
                for i in 0..c {
                    out[range.start + i * c + i] = 1.0;
                }
            }
            None if name == "lnf.w" => out[range].iter_mut().for_each(|x| *x = 1.0),
            None => assert!(name.ends_with("qkv.b") || name.ends_with("attn.b") || name == "lnf.b", "{name}"),
        }
    }
    out
}

#[test]
fn the_paper_block_is_gpt2s_without_qkv_biases_output_projection_and_final_layernorm() {
    let (b, t, c, p) = (3, 6, 8, 3);
    let mut rng = rng::stream(21, 0);
    for heads in [1, 2] {
        for pooling in [Pooling::Mean, Pooling::Learned] {
            let paper = Transformer::new(shape(heads)).with_pooling(pooling).with_block(BlockForm::Paper);
            let gpt2 = Transformer::new(shape(heads)).with_pooling(pooling);
            let np = Encoder::<f64>::num_params(&paper);
            // Per block 3C (qkv biases) + C² + C (Wₒ, bₒ) fewer, and 2C (LN_f) at the end.
            assert_eq!(Encoder::<f64>::num_params(&gpt2) - np, 3 * (3 * c + c * c + c) + 2 * c);
            let w = normals(&mut rng, np);
            let tokens: Vec<u32> = (0..b * t).map(|_| rng.random_range(0..4)).collect();
            let (out, hidden) = run(&paper, &w, &tokens, b);
            let (_, hidden_gpt2) = run(&gpt2, &as_gpt2(&paper, &gpt2, &w), &tokens, b);
            for (l, (x, y)) in hidden.iter().zip(&hidden_gpt2).enumerate() {
                let worst = x.iter().zip(y).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
                assert!(worst <= 1e-12, "heads {heads}, {pooling:?}: h^{l} differs by {worst:e}");
            }
            // f(x) = (Σ_t π_t h^L_t) W_p + b_p, without a final LayerNorm.
            let named: std::collections::HashMap<_, _> = paper.named_ranges().into_iter().collect();
            let pool: Vec<f64> = match pooling {
                Pooling::Mean => vec![1.0 / t as f64; t],
                Pooling::Learned => w[named["pool"].clone()].to_vec(),
            };
            let (wp, bp) = (&w[named["out.w"].clone()], &w[named["out.b"].clone()]);
            let last = &hidden[3];
            for s in 0..b {
                for j in 0..p {
                    let mut f = bp[j];
                    for i in 0..c {
                        let pooled: f64 = (0..t).map(|u| pool[u] * last[(s * t + u) * c + i]).sum();
                        f += pooled * wp[i * p + j];
                    }
                    let got = out[s * p + j];
                    assert!((got - f).abs() <= 1e-12 * (1.0 + f.abs()), "output {s},{j}: {got} vs {f}");
                }
            }
        }
    }
}

/// The names cover the parameter vector exactly once, in order, in both forms.
#[test]
fn named_ranges_tile_the_parameter_vector() {
    for form in [BlockForm::Gpt2, BlockForm::Paper] {
        for pooling in [Pooling::Mean, Pooling::Learned] {
            let net = Transformer::new(shape(2)).with_block(form).with_pooling(pooling);
            let mut next = 0;
            for (name, range) in net.named_ranges() {
                assert_eq!(range.start, next, "{form:?} {pooling:?}: {name} starts at {}", range.start);
                next = range.end;
            }
            assert_eq!(next, Encoder::<f64>::num_params(&net), "{form:?} {pooling:?}");
            let has = |n: &str| net.named_ranges().iter().any(|(m, _)| m == n);
            assert_eq!(has("h0.attn.w"), form == BlockForm::Gpt2);
            assert_eq!(has("lnf.w"), form == BlockForm::Gpt2);
            assert_eq!(has("pool"), pooling == Pooling::Learned);
        }
    }
}

/// The paper's form starts as the module doc of `Transformer::init` says: LayerNorm gains 1,
/// biases 0, every other tensor drawn (none left at zero by the shorter layout).
#[test]
fn the_paper_forms_start_has_unit_gains_and_its_own_layout() {
    let net = Transformer::new(shape(1)).with_block(BlockForm::Paper).with_embedding_std(1.0);
    let w: Vec<f64> = Encoder::<f64>::init(&net, &mut rng::stream(3, 0));
    for (name, range) in net.named_ranges() {
        let xs = &w[range];
        if name.ends_with(".w") && name.contains("ln") {
            assert!(xs.iter().all(|&x| x == 1.0), "{name}");
        } else if name.ends_with(".b") {
            assert!(xs.iter().all(|&x| x == 0.0), "{name}");
        } else {
            assert!(xs.iter().any(|&x| x != 0.0), "{name} is not drawn");
        }
    }
}

/// A configuration file may ask for the paper's block; one without the field keeps GPT-2's.
#[test]
fn a_configuration_chooses_the_block_form() {
    let model = jghm::random_family::RandomSpec::symmetric(3, 2, 2, 1).build().unwrap();
    let paper: TrainConfig = serde_json::from_str(r#"{"block": "paper", "width": 16, "heads": 1}"#).unwrap();
    let checked = paper.check(&model).unwrap();
    assert_eq!(checked.transformer(&model, jghm::model::Part::Image).block(), BlockForm::Paper);
    let default: TrainConfig = serde_json::from_str(r#"{"width": 16}"#).unwrap();
    let checked = default.check(&model).unwrap();
    assert_eq!(checked.transformer(&model, jghm::model::Part::Image).block(), BlockForm::Gpt2);
    assert!(serde_json::from_str::<TrainConfig>(r#"{"block": "bert"}"#).is_err());
}
