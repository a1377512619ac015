#!/usr/bin/env python3
"""The noise of the paper's zero-shot Bayes estimate, on the paper's own tree.

The paper estimates the zero-shot Bayes risk (cross-entropy of the first text token) from
sampled labels: for each of 7,500 sampled images, -log p(y_1 | x) at the sampled y_1. This
script runs that estimator on 200,000 images of the paper's tree (drawn by the NumPy
transcription of its generator in paper_fixture.py), and prints its mean with a standard
error, the per-image standard deviation, and the standard error the paper's 7,500 images
carry. Needs NumPy:  python3 scripts/paper_zero_shot_noise.py
"""
import os, sys
import numpy as np
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from paper_fixture import tower

def model(eps):
    np.random.seed(42)
    text = tower(10, 3, 4, eps, 1.0)
    image = tower(10, 3, 4, eps, 1.0)
    return text, image

def draw(T, rng, values):
    # values: (B,) parent states; T: 10x10 rows; categorical via cumsum
    u = rng.random(values.shape[0])
    c = np.cumsum(T[values], axis=1)
    return (u[:, None] < c).argmax(axis=1)

def losses(eps, B, rng):
    text, image = model(eps)
    z = rng.integers(0, 10, B)
    levels = [z[:, None]]
    for k in range(4):
        parent = levels[-1]
        child = np.empty((B, parent.shape[1] * 3), dtype=np.int64)
        for i in range(parent.shape[1]):
            for j in range(3):
                child[:, 3 * i + j] = draw(image[k][j], rng, parent[:, i])
        levels.append(child)
    x = levels[-1]
    # upward BP, messages h(a) per node, normalised
    h = None
    for k in range(3, -1, -1):
        n = 3 ** k
        new = np.ones((B, n, 10))
        for i in range(n):
            for j in range(3):
                T = image[k][j]
                if k == 3:
                    m = T[:, x[:, 3 * i + j]].T            # (B,10)
                else:
                    m = h[:, 3 * i + j, :] @ T.T            # sum_b T[a,b] h(b)
                new[:, i, :] *= m
            new[:, i, :] /= new[:, i, :].sum(axis=1, keepdims=True)
        h = new
    post = h[:, 0, :]
    p = post
    y = z.copy()
    for k in range(4):
        p = p @ text[k][0]
        y = draw(text[k][0], rng, y)
    return -np.log(p[np.arange(B), y])

rng = np.random.default_rng(1)
for eps in (0.02, 0.2, 0.4):
    l = np.concatenate([losses(eps, 50000, rng) for _ in range(4)])
    sd = l.std()
    print(f"eps {eps}: mean {l.mean():.5f} +- {sd/np.sqrt(len(l)):.5f} (n={len(l)}), per-image sd {sd:.4f}, "
          f"s.e. at 7500 images {sd/np.sqrt(7500):.5f}")
