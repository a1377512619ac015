"""Train a small CLIP encoder with NumPy alone, then evaluate it exactly.

The model is tiny (81 images, 81 texts), so jghm enumerates every pair and returns the exact
excess CLIP risk of the learned score S(x, y) = f(x)ᵀ g(y), with f and g embedding tables,
trained by gradient descent (Adam) on the symmetric InfoNCE loss over sampled pairs.

    python examples/numpy_encoder.py            # a few seconds
"""

import time

import numpy as np

import jghm


def infonce_and_grads(fx, gy):
    """Symmetric InfoNCE of a batch (row i of fx pairs with row i of gy) and its gradients."""
    k = fx.shape[0]
    logits = fx @ gy.T
    rows = np.exp(logits - logits.max(1, keepdims=True))
    rows /= rows.sum(1, keepdims=True)
    cols = np.exp(logits - logits.max(0, keepdims=True))
    cols /= cols.sum(0, keepdims=True)
    diag = np.diag(logits)
    loss = 0.5 * (np.mean(-diag + np.log(np.exp(logits - logits.max(1, keepdims=True)).sum(1)) + logits.max(1))
                  + np.mean(-diag + np.log(np.exp(logits - logits.max(0, keepdims=True)).sum(0)) + logits.max(0)))
    d_logits = 0.5 * ((rows - np.eye(k)) + (cols - np.eye(k))) / k
    return loss, d_logits @ gy, d_logits.T @ fx


def main(dim=8, steps=3000, batch=128, pairs=20000, lr=0.01, seed=0):
    start = time.perf_counter()
    model = jghm.Model.random(3, 2, 2, seed=1)  # 3 states, binary trees of depth 2: 4 tokens per side
    xs, ys = model.enumerate_images(), model.enumerate_texts()
    index_x = {tuple(x): i for i, x in enumerate(xs)}
    index_y = {tuple(y): j for j, y in enumerate(ys)}
    images, texts = model.sample(pairs, seed=seed)
    ix = np.array([index_x[tuple(x)] for x in images])
    iy = np.array([index_y[tuple(y)] for y in texts])

    rng = np.random.default_rng(seed)
    params = [0.1 * rng.normal(size=(len(xs), dim)), 0.1 * rng.normal(size=(len(ys), dim))]
    moments = [[np.zeros_like(p), np.zeros_like(p)] for p in params]

    def excess(p):
        return model.clip_excess_risk(p[0] @ p[1].T)["excess_risk"]

    before = excess(params)
    for step in range(1, steps + 1):
        b = rng.integers(0, pairs, size=batch)
        loss, d_fx, d_gy = infonce_and_grads(params[0][ix[b]], params[1][iy[b]])
        grads = [np.zeros_like(params[0]), np.zeros_like(params[1])]
        np.add.at(grads[0], ix[b], d_fx)
        np.add.at(grads[1], iy[b], d_gy)
        for p, g, (m, v) in zip(params, grads, moments):  # Adam
            m *= 0.9
            m += 0.1 * g
            v *= 0.999
            v += 0.001 * g * g
            p -= lr * (m / (1 - 0.9**step)) / (np.sqrt(v / (1 - 0.999**step)) + 1e-8)
    report = model.clip_excess_risk(params[0] @ params[1].T)
    print(f"I(X; Y)                        = {report['mutual_information']:.6f} nats")
    print(f"excess CLIP risk, untrained    = {before:.6f} nats")
    print(f"excess CLIP risk, trained      = {report['excess_risk']:.6f} nats "
          f"(image->text {report['excess_image_to_text']:.6f}, text->image {report['excess_text_to_image']:.6f})")
    print(f"last batch InfoNCE loss        = {loss:.4f}; {time.perf_counter() - start:.1f} s")
    return report


if __name__ == "__main__":
    main()
