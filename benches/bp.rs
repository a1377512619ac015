//! Criterion benchmarks of exact inference on the standard random family (S = 10, m = 3,
//! depth 4, as the PyTorch reference script `bp_torch.py`, not in this repository): the upward pass (root posteriors, fast batched
//! and reference), the downward pass (every node's marginal: batched `BatchMarginals` and the
//! reference `bp::marginals`; the text leaves' marginals alone), PMI and `log p(x, y)` (fast batched and reference), and
//! enumeration (brute force on a tiny model; `info --exact` on 2^16 images).
//! Run with `cargo bench --bench bp`; `cargo test` does not run it.

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use jghm::bp::fast::FastBp;
use jghm::bp::marginals::BatchMarginals;
use jghm::bp::{self, brute_force, PmiParts, Tokens, Workspace};
use jghm::info;
use jghm::sample::sample_pairs;
use jghm::{Part, RandomSpec};

const BATCH: usize = 4096;

fn standard() -> (jghm::Jghm, Vec<Vec<usize>>, Vec<Vec<usize>>) {
    let model = RandomSpec::symmetric(10, 3, 4, 1).build().expect("valid spec");
    let pairs = sample_pairs(&model, BATCH, 1, false);
    let (xs, ys) = pairs.into_iter().map(|p| (p.image, p.text)).unzip();
    (model, xs, ys)
}

fn upward(c: &mut Criterion) {
    let (model, xs, _) = standard();
    let fast = FastBp::new(&model);
    let mut group = c.benchmark_group("upward");
    group.throughput(Throughput::Elements(BATCH as u64));
    let (mut post, mut ll) = (vec![0.0; BATCH * 10], vec![0.0; BATCH]);
    group.bench_function("fast_root_posteriors_batch", |b| {
        b.iter(|| fast.root_posteriors_into(Part::Image, &xs, &mut post, &mut ll))
    });
    group.bench_function("reference_workspace_batch", |b| {
        let mut ws = Workspace::new(&model);
        let mut row = vec![0.0; 10];
        b.iter(|| {
            for x in &xs {
                ws.upward(&model, &Tokens { image: Some(x), text: None });
                ws.root_posterior_into(&model, &mut row);
            }
        })
    });
    group.finish();
}

fn downward(c: &mut Criterion) {
    let (model, xs, _) = standard();
    let mut group = c.benchmark_group("downward");
    group.throughput(Throughput::Elements(1));
    let images: Vec<Tokens> = xs.iter().map(|x| Tokens { image: Some(x), text: None }).collect();
    let batched = BatchMarginals::new(&model);
    let (mut out, mut ll) = (vec![0.0; BATCH * model.tree().total_states], vec![0.0; BATCH]);
    group.throughput(Throughput::Elements(BATCH as u64));
    group.bench_function("fast_marginals_batch", |b| b.iter(|| batched.marginals_into(&images, &mut out, &mut ll)));
    // Only the text leaves' marginals p(y_j | x): the downward pass through the text tower.
    let leaves = BatchMarginals::selected(&model, &model.tree().text_leaves);
    let mut leaf_out = vec![0.0; BATCH * leaves.row_len()];
    group.bench_function("fast_text_leaf_marginals_batch", |b| {
        b.iter(|| leaves.marginals_into(&images, &mut leaf_out, &mut ll))
    });
    group.throughput(Throughput::Elements(1));
    group.bench_function("reference_marginals_one_image", |b| {
        b.iter(|| bp::marginals(&model, &Tokens { image: Some(&xs[0]), text: None }).expect("possible"))
    });
    group.finish();
}

fn pmi(c: &mut Criterion) {
    let (model, xs, ys) = standard();
    let fast = FastBp::new(&model);
    let mut group = c.benchmark_group("pmi");
    group.throughput(Throughput::Elements(BATCH as u64));
    let mut out = vec![PmiParts { pmi: 0.0, log_pxy: 0.0, log_px: 0.0, log_py: 0.0 }; BATCH];
    group.bench_function("fast_pmi_batch", |b| b.iter(|| fast.pmi_into(&xs, &ys, &mut out)));
    let mut log_pxy = vec![0.0; BATCH];
    group.bench_function("fast_log_pxy_batch", |b| b.iter(|| fast.log_pxy_into(&xs, &ys, &mut log_pxy)));
    group.bench_function("reference_pmi_batch", |b| {
        b.iter(|| xs.iter().zip(&ys).map(|(x, y)| bp::pmi(&model, x, y).expect("possible").pmi).sum::<f64>())
    });
    group.finish();
}

fn enumeration(c: &mut Criterion) {
    // 3 states, 2 children, depth 2 per tower: 4 + 4 leaves, 1 + 2 + 2 hidden nodes.
    let model = RandomSpec::symmetric(3, 2, 2, 1).build().expect("valid spec");
    let pair = sample_pairs(&model, 1, 1, false).pop().expect("one pair");
    let mut group = c.benchmark_group("enumeration");
    group.bench_function("brute_force_pair_s3_m2_d2", |b| {
        b.iter_batched(
            || Tokens { image: Some(&pair.image), text: Some(&pair.text) },
            |t| brute_force::enumerate(&model, &t).expect("small enough"),
            BatchSize::SmallInput,
        )
    });
    // Exact information by enumeration (`jghm info --exact`): 2^16 images of a depth-4 binary
    // tower through the batched BP, then every pair through the separator.
    let model =
        RandomSpec { text_children: 2, text_depth: 2, ..RandomSpec::symmetric(2, 2, 4, 1) }.build().expect("valid");
    group.sample_size(10);
    group.bench_function("info_exact_s2_m2_d4", |b| {
        b.iter(|| info::exact(&info::Enumeration::new(&model).expect("small enough")))
    });
    group.finish();
}

criterion_group!(benches, upward, downward, pmi, enumeration);
criterion_main!(benches);
