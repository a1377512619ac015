//! The CLIP loss's batch layouts ([`Scheme`]): which pairs each direction's groups score, the
//! paper's layout with separate positives per direction beside ours with shared ones, and that
//! both are unbiased for the same `ℓ_K` (T2-T3: each group is an i.i.d. draw of one positive
//! pair and `K − 1` independent negatives).

use jghm::learn::data::Data;
use jghm::learn::{clip_loss, Scheme};
use jghm::model::{Jghm, Part};
use jghm::random_family::RandomSpec;

/// The pair indices of `list`'s groups of `k`: `(image, text)` per entry.
fn group_pairs(pairs: &[(u32, u32)], list: &[u32], k: usize) -> Vec<Vec<(u32, u32)>> {
    list.chunks_exact(k).map(|g| g.iter().map(|&q| pairs[q as usize]).collect()).collect()
}

#[test]
fn the_split_layout_gives_each_direction_its_own_positives() {
    for (b, k) in [(1, 2), (3, 4), (5, 3)] {
        let scheme = Scheme::KWay { k, split: true };
        let (n, p) = (scheme.encoded(b), scheme.positives(b));
        assert_eq!((n, p, scheme.per_direction(n)), (b * (k + 1), 2 * b, b));
        let g = scheme.groups(b);
        assert_eq!((g.k, g.x2y.len(), g.y2x.len()), (k, b * k, b * k));
        let mut negative_texts = vec![];
        for (i, group) in group_pairs(&g.pairs, &g.x2y, k).iter().enumerate() {
            // Anchor image i against its own text, then K − 1 texts from the negatives.
            assert_eq!(group[0], (i as u32, i as u32));
            for &(image, text) in &group[1..] {
                assert_eq!(image, i as u32);
                negative_texts.push(text);
            }
        }
        let mut negative_images = vec![];
        for (i, group) in group_pairs(&g.pairs, &g.y2x, k).iter().enumerate() {
            // Anchor text b + i (the second set of positives) against its own image.
            let anchor = (b + i) as u32;
            assert_eq!(group[0], (anchor, anchor));
            for &(image, text) in &group[1..] {
                assert_eq!(text, anchor);
                negative_images.push(image);
            }
        }
        // Every negative sample is used once, and never a positive.
        negative_texts.sort_unstable();
        negative_images.sort_unstable();
        let negatives: Vec<u32> = (p as u32..n as u32).collect();
        assert_eq!(negative_texts, negatives);
        assert_eq!(negative_images, negatives);
    }
}

#[test]
fn the_shared_layout_scores_the_pairs_it_always_scored() {
    // b = 2, K = 3: positives (0,0), (1,1); image 0's negative texts 2, 3; image 1's 4, 5; text
    // 0's negative images 2, 3; text 1's 4, 5.
    let g = Scheme::KWay { k: 3, split: false }.groups(2);
    assert_eq!(g.pairs, vec![(0, 0), (1, 1), (0, 2), (0, 3), (1, 4), (1, 5), (2, 0), (3, 0), (4, 1), (5, 1)]);
    assert_eq!(g.x2y, vec![0, 2, 3, 1, 4, 5]);
    assert_eq!(g.y2x, vec![0, 6, 7, 1, 8, 9]);
    assert_eq!(Scheme::KWay { k: 3, split: false }.encoded(2), 6);
}

#[test]
fn layouts_recorded_before_the_split_read_back_unchanged() {
    let old = r#"{"kind":"k-way","k":4}"#;
    let scheme: Scheme = serde_json::from_str(old).unwrap();
    assert_eq!(scheme, Scheme::KWay { k: 4, split: false });
    assert_eq!(serde_json::to_string(&scheme).unwrap(), old);
    let paper = serde_json::to_string(&Scheme::PAPER).unwrap();
    assert_eq!(paper, r#"{"kind":"k-way","k":4,"split":true}"#);
    assert_eq!(serde_json::from_str::<Scheme>(&paper).unwrap(), Scheme::PAPER);
    assert_eq!(Scheme::PAPER.describe(), "K = 4 independent, separate positives per direction");
}

fn tiny_model() -> Jghm {
    let mut spec = RandomSpec::symmetric(3, 2, 2, 4);
    spec.text_depth = 2;
    spec.build().unwrap()
}

#[test]
fn fresh_and_fixed_batches_hold_the_layouts_sample_counts() {
    let model = tiny_model();
    let (lx, ly) = (model.len_of(Part::Image), model.len_of(Part::Text));
    for scheme in [Scheme::InBatch, Scheme::KWay { k: 3, split: false }, Scheme::KWay { k: 3, split: true }] {
        let b = 4;
        let n = scheme.encoded(b);
        let mut fresh = Data::Fresh { model: &model, seed: 7 };
        let batch = fresh.batch(0, b, scheme);
        assert_eq!((batch.images.len(), batch.texts.len()), (n * lx, n * ly), "{scheme:?}");
        let mut fixed = Data::fixed(&model, 60, 0.4, 7);
        let batch = fixed.batch(3, b, scheme);
        assert_eq!((batch.images.len(), batch.texts.len()), (n * lx, n * ly), "{scheme:?}");
        // 24 held-out pairs: groups of the layout's positives.
        let held_out = fixed.held_out_batches(b, scheme);
        assert_eq!(held_out.len(), 24 / scheme.positives(b), "{scheme:?}");
        assert!(held_out.iter().all(|h| h.images.len() == n * lx && h.texts.len() == n * ly));
    }
}

/// The CLIP loss of the exact PMI score on fresh batches of the layout, one value per batch.
fn pmi_losses(model: &Jghm, scheme: Scheme, b: usize, batches: usize, seed: u64) -> Vec<f64> {
    let (lx, ly) = (model.len_of(Part::Image), model.len_of(Part::Text));
    let mut data = Data::Fresh { model, seed };
    let groups = scheme.groups(b);
    (0..batches)
        .map(|step| {
            let batch = data.batch(step, b, scheme);
            let token = |t: &u32| *t as usize;
            let scores: Vec<f64> = groups
                .pairs
                .iter()
                .map(|&(i, j)| {
                    let x: Vec<usize> = batch.images[i as usize * lx..][..lx].iter().map(token).collect();
                    let y: Vec<usize> = batch.texts[j as usize * ly..][..ly].iter().map(token).collect();
                    jghm::bp::pmi(model, &x, &y).unwrap().pmi
                })
                .collect();
            clip_loss(&scores, &groups, &mut vec![]).loss
        })
        .collect()
}

fn mean_and_error(xs: &[f64]) -> (f64, f64) {
    let n = xs.len() as f64;
    let mean = xs.iter().sum::<f64>() / n;
    let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0);
    (mean, (var / n).sqrt())
}

#[test]
fn both_k_way_layouts_estimate_the_same_clip_risk_of_the_pmi() {
    // Each group is one positive pair and K − 1 independent draws whichever layout, so the
    // mean loss of a fixed score is ℓ_K(S) for both; a layout that paired the wrong image with
    // a text would move it towards log K.
    let model = tiny_model();
    let (k, b, batches) = (4, 16, 400);
    let shared = mean_and_error(&pmi_losses(&model, Scheme::KWay { k, split: false }, b, batches, 11));
    let split = mean_and_error(&pmi_losses(&model, Scheme::KWay { k, split: true }, b, batches, 12));
    let se = shared.1.hypot(split.1);
    assert!((shared.0 - split.0).abs() < 4.0 * se, "shared {shared:?}, split {split:?}");
    // The PMI does better than chance (log K) by many standard errors in both, so the test
    // would see a mispaired layout.
    let chance = (k as f64).ln();
    assert!(chance - split.0 > 20.0 * split.1, "split {split:?}, log K {chance}");
    assert!(chance - shared.0 > 20.0 * shared.1, "shared {shared:?}, log K {chance}");
}
