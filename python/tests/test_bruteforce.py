"""The bindings against brute-force sums over every hidden configuration, to 1e-12."""

import itertools
import json

import numpy as np
import pytest

import jghm

TOL = 1e-12


def tower_likelihood(levels, root_states, tokens):
    """p(tokens | z = a) for every root state a, summing over every hidden assignment."""
    sizes = [len(level["transitions"]) for level in levels]
    depth = len(levels)
    counts = list(itertools.accumulate(sizes, lambda a, b: a * b))  # nodes per depth 1..L
    hidden_states = [len(levels[k]["transitions"][0][0]) for k in range(depth - 1)]
    hidden = [range(hidden_states[k]) for k in range(depth - 1) for _ in range(counts[k])]
    out = np.zeros(root_states)
    for a in range(root_states):
        total = 0.0
        for assignment in itertools.product(*hidden):
            states, start = [[a]], 0
            for k in range(depth - 1):
                states.append(list(assignment[start:start + counts[k]]))
                start += counts[k]
            states.append(list(tokens))
            prob = 1.0
            for k in range(depth):
                m = sizes[k]
                for n, s in enumerate(states[k + 1]):
                    psi = levels[k]["transitions"][n % m]
                    prob *= psi[states[k][n // m]][s]
            total += prob
        out[a] = total
    return out


def brute(model):
    """(images, texts, p(x | z) rows, p(y | z) rows, prior) over every sequence, lexicographic."""
    spec = json.loads(model.to_json())
    assert not spec.get("shared"), "brute force here is for models without a trunk"
    prior = np.array(spec["prior"])
    s0 = len(prior)
    xs = np.array(list(itertools.product(range(model.image_vocab), repeat=model.image_len)))
    ys = np.array(list(itertools.product(range(model.text_vocab), repeat=model.text_len)))
    lx = np.array([tower_likelihood(spec["image"], s0, x) for x in xs])
    ly = np.array([tower_likelihood(spec["text"], s0, y) for y in ys])
    return xs, ys, lx, ly, prior


@pytest.fixture(params=[dict(states=2, children=2, depth=2, seed=3), dict(states=3, children=2, depth=1, text_depth=2, seed=2)])
def case(request):
    model = jghm.Model.random(**request.param)
    return model, brute(model)


def test_inference_on_every_sequence(case):
    model, (xs, ys, lx, ly, prior) = case
    px, py = lx @ prior, ly @ prior
    joint = (lx * prior) @ ly.T
    assert np.array_equal(model.enumerate_images(), xs)
    assert np.array_equal(model.enumerate_texts(), ys)
    assert np.max(np.abs(model.probabilities("image") - px)) < TOL
    assert np.max(np.abs(model.log_likelihood("image", xs) - np.log(px))) < TOL
    assert np.max(np.abs(model.log_likelihood("text", ys) - np.log(py))) < TOL
    assert np.max(np.abs(model.root_posterior("image", xs) - lx * prior / px[:, None])) < TOL
    assert np.max(np.abs(model.root_posterior("text", ys) - ly * prior / py[:, None])) < TOL
    i, j = np.meshgrid(np.arange(len(xs)), np.arange(len(ys)), indexing="ij")
    i, j = i.ravel(), j.ravel()
    pmi = np.log(joint / np.outer(px, py))
    assert np.max(np.abs(model.log_joint(xs[i], ys[j]) - np.log(joint[i, j]))) < TOL
    assert np.max(np.abs(model.pmi(xs[i], ys[j]) - pmi[i, j])) < TOL
    assert np.max(np.abs(model.pmi_matrix() - pmi)) < TOL


def test_information_by_brute_force(case):
    model, (xs, ys, lx, ly, prior) = case
    px, py = lx @ prior, ly @ prior
    joint = (lx * prior) @ ly.T
    mi = float(np.sum(joint * np.log(joint / np.outer(px, py))))
    info = model.information()
    assert abs(model.mutual_information() - mi) < TOL
    assert abs(info["entropy_image"] + np.sum(px * np.log(px))) < TOL
    assert abs(model.entropy("text") + np.sum(py * np.log(py))) < TOL
    assert abs(info["entropy_root"] + np.sum(prior * np.log(prior))) < TOL


def clip_loss(joint, scores):
    """ℓ_∞ of both directions by its definition: -E S(A, C) + E_A log E_{C'} exp S(A, C')."""
    px, py = joint.sum(1), joint.sum(0)
    xy = -np.sum(joint * scores) + np.sum(px * np.log(np.exp(scores) @ py))
    yx = -np.sum(joint * scores) + np.sum(py * np.log(px @ np.exp(scores)))
    return xy, yx


def test_clip_excess_risk(case):
    model, (xs, ys, lx, ly, prior) = case
    joint = (lx * prior) @ ly.T
    mi = model.mutual_information()
    pmi = model.pmi_matrix()
    best = model.clip_excess_risk(pmi)
    assert abs(best["excess_risk"]) < TOL
    assert abs(best["excess_image_to_text"]) < TOL and abs(best["excess_text_to_image"]) < TOL
    assert abs(best["optimum_image_to_text"] + mi) < TOL
    rng = np.random.default_rng(0)
    shuffled = pmi[rng.permutation(len(xs))]
    bad = model.clip_excess_risk(shuffled)
    assert bad["excess_risk"] > 0.1 * mi
    scores = pmi + rng.normal(size=pmi.shape)
    r = model.clip_excess_risk(scores)
    xy, yx = clip_loss(joint, scores)
    assert abs(r["loss_image_to_text"] - xy) < TOL and abs(r["loss_text_to_image"] - yx) < TOL
    assert abs(r["excess_image_to_text"] - (xy + mi)) < TOL
    assert abs(r["kl_image_to_text"] - r["excess_image_to_text"]) < 1e-10  # T4, a second route
    assert abs(r["kl_text_to_image"] - r["excess_text_to_image"]) < 1e-10
    # A constant shift of the score changes nothing; a per-image shift changes only Y->X.
    shifted = model.clip_excess_risk(scores + 5.0)
    assert abs(shifted["excess_risk"] - r["excess_risk"]) < 1e-10


def test_sufficiency_of_labels_and_embeddings(case):
    model, _ = case
    mi = model.mutual_information()
    n = len(model.enumerate_images())
    exact = model.sufficiency_gap("image", np.arange(n))
    assert abs(exact["sufficiency"]) < TOL and exact["classes"] == n
    constant = model.sufficiency_gap("image", np.zeros(n, dtype=np.int64))
    assert abs(constant["sufficiency"] - mi) < TOL
    embedding = model.root_posterior("image", model.enumerate_images())
    by_values = model.sufficiency_gap("image", embedding)
    by_name = model.sufficiency_gap("image", "root-posterior")
    assert abs(by_values["sufficiency"] - by_name["sufficiency"]) < TOL
    for key in ("information_form", "variational_form"):
        assert abs(by_values[key] - by_values["sufficiency"]) < 1e-10  # T6: three forms agree
