#!/usr/bin/env python3
"""Writes tests/data/paper_generator.json: the paper's model draw computed by NumPy itself.

The paper's simulation code (Oko, Lin, Cai, Mei 2025; its `GenTransition` with
translation_invariance=True, called by its `DoubleSampler`) is not importable here, so this
script re-implements that generator with NumPy, step for step and in the same order of NumPy
calls:

    np.random.seed(seed)
    for each tower, text first, then image (flip eps of that tower):
        for each level, root first:
            skeleton = identity(S)[np.random.permutation(S), :]
            for each child position:
                noise = np.random.normal(0, scale, [S, S])
                soft  = exp(noise - rowmax) / rowsum(exp(noise - rowmax))
                matrix = (1 - eps) * skeleton + eps * soft

The Rust port (src/random_family/paper.rs, NumPy's legacy routines in
src/random_family/numpy_legacy.rs) must reproduce every entry; tests/paper_family.rs compares.
The file also holds the first raw outputs of the legacy generator for seed 42, so the
low-level routines are checked on their own.

Usage: python3 scripts/paper_fixture.py > tests/data/paper_generator.json
(needs numpy; any version with the legacy RandomState, which NumPy keeps frozen).
"""

import json
import sys

import numpy as np


def softmax_rows(x):
    shifted = np.exp(x - np.max(x, axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


def tower(states, children, depth, eps, scale):
    levels = []
    for _ in range(depth):
        skeleton = np.identity(states)[np.random.permutation(states), :]
        levels.append(
            [
                (1 - eps) * skeleton + eps * softmax_rows(np.random.normal(0, scale, [states, states]))
                for _ in range(children)
            ]
        )
    return levels


def paper_model(states, children, depth, image_flip, text_flip, scale, seed):
    np.random.seed(seed)
    text = tower(states, children, depth, text_flip, scale)
    image = tower(states, children, depth, image_flip, scale)
    as_lists = lambda t: [[m.tolist() for m in level] for level in t]
    return {
        "states": states,
        "children": children,
        "depth": depth,
        "image_flip": image_flip,
        "text_flip": text_flip,
        "scale": scale,
        "seed": seed,
        "image": as_lists(image),
        "text": as_lists(text),
    }


def raw_outputs():
    state = np.random.RandomState(42)
    u32 = state.randint(0, 2**32, size=8, dtype=np.uint64).tolist()
    state = np.random.RandomState(42)
    doubles = state.random_sample(4).tolist()
    state = np.random.RandomState(42)
    gauss = state.normal(0, 1, 5).tolist()
    state = np.random.RandomState(42)
    perm = state.permutation(10).tolist()
    state = np.random.RandomState(5489)
    u32_5489 = state.randint(0, 2**32, size=2, dtype=np.uint64).tolist()
    return {
        "seed42_u32": u32,
        "seed42_random_sample": doubles,
        "seed42_normal": gauss,
        "seed42_permutation_10": perm,
        "seed5489_u32": u32_5489,
    }


def main():
    models = [paper_model(10, 3, 4, eps, eps, 1.0, 42) for eps in (0.02, 0.2, 0.4)]
    # Different flips per tower: checks which tower is drawn first and gets which flip.
    models.append(paper_model(10, 3, 4, 0.3, 0.1, 1.0, 42))
    # An odd number of Gaussians per matrix: the cached second Gaussian carries over.
    models.append(paper_model(5, 2, 3, 0.25, 0.15, 0.7, 7))
    out = {"numpy_version": np.__version__, "raw": raw_outputs(), "models": models}
    json.dump(out, sys.stdout, separators=(",", ":"))
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
