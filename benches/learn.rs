//! Criterion benchmarks of the learned encoders' kernels on the standard configuration (image
//! 81 tokens, vocabulary 10; d = 64, 2 layers, 4 heads, p = 32): the transformer's forward and
//! backward passes on one chunk of samples, and one whole CLIP training step (batch 256, both
//! towers, loss, backward; no optimiser). Run with `cargo bench --bench learn`.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use jghm::learn::{ClipPair, Encoder, Head, Scheme, Transformer, TransformerShape, CHUNK};
use rand::Rng as _;

fn shape(len: usize) -> TransformerShape {
    TransformerShape { vocab: 10, len, width: 64, layers: 2, heads: 4, out: 32 }
}

fn tokens(n: usize) -> Vec<u32> {
    let mut rng = jghm::rng::stream(0, 0);
    (0..n).map(|_| rng.random_range(0..10u32)).collect()
}

fn encoder(c: &mut Criterion) {
    let enc = Transformer::new(shape(81));
    let params: Vec<f32> = enc.init(&mut jghm::rng::stream(1, 0));
    let tok = tokens(CHUNK * 81);
    let mut cache = Encoder::<f32>::new_cache(&enc, CHUNK);
    let mut out = vec![0.0f32; CHUNK * 32];
    let dout = vec![0.01f32; CHUNK * 32];
    let mut grad = vec![0.0f32; Encoder::<f32>::num_params(&enc)];
    let mut group = c.benchmark_group("transformer_chunk_81_tokens");
    group.throughput(Throughput::Elements(CHUNK as u64));
    group.bench_function("forward", |b| b.iter(|| enc.forward(&params, &tok, CHUNK, &mut cache, &mut out)));
    enc.forward(&params, &tok, CHUNK, &mut cache, &mut out);
    group.bench_function("backward", |b| b.iter(|| enc.backward(&params, &tok, CHUNK, &mut cache, &dout, &mut grad)));
    group.finish();
}

fn clip_step(c: &mut Criterion) {
    let b = 256;
    let mut pair: ClipPair<f32, Transformer> = ClipPair::new(
        Transformer::new(shape(81)),
        Transformer::new(shape(27)),
        Head::Bilinear { normalise: false },
        Scheme::InBatch,
    );
    let params = pair.init(&mut jghm::rng::stream(1, 0));
    let mut grads = params.zeros_like();
    let (images, texts) = (tokens(b * 81), tokens(b * 27));
    let mut group = c.benchmark_group("clip_step_batch_256");
    group.sample_size(10);
    group.throughput(Throughput::Elements(b as u64));
    group.bench_function("loss_and_grad", |bch| bch.iter(|| pair.loss_and_grad(&params, &images, &texts, &mut grads)));
    group.finish();
}

criterion_group!(benches, encoder, clip_step);
criterion_main!(benches);
