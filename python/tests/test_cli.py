"""The bindings against the command line on random tiny models, to 1e-12."""

import json

import numpy as np
import pytest

import jghm
from conftest import cli, cli_json, tokens_arg

TOL = 1e-12

# (states, children, depth, text_depth, shared_depth, seed): small enough to enumerate.
SHAPES = [(2, 2, 2, None, 0, 1), (3, 2, 1, 2, 0, 5), (3, 2, 1, None, 1, 9)]


def random_args(states, children, depth, text_depth, shared_depth, seed):
    args = ["--states", str(states), "--children", str(children), "--depth", str(depth), "--seed", str(seed)]
    if text_depth is not None:
        args += ["--text-depth", str(text_depth)]
    if shared_depth:
        args += ["--shared-depth", str(shared_depth)]
    return args


@pytest.fixture(params=SHAPES, ids=lambda s: "S{}m{}L{}Ly{}T{}seed{}".format(*s))
def pair(request, tmp_path):
    """(Model built by the bindings, path of the same model written by `jghm model random`)."""
    states, children, depth, text_depth, shared_depth, seed = request.param
    path = tmp_path / "model.json"
    cli("model", "random", *random_args(*request.param), "--out", str(path))
    model = jghm.Model.random(
        states, children, depth, text_depth=text_depth, shared_depth=shared_depth, seed=seed
    )
    return model, path


def test_random_model_is_the_cli_model(pair):
    model, path = pair
    assert json.loads(model.to_json()) == json.loads(path.read_text())
    loaded = jghm.Model.load(path)
    assert loaded.to_json() == model.to_json()
    assert model.shape() == cli_json("model", "check", "--model", str(path))


def test_sample_is_the_cli_sample(pair):
    model, path = pair
    images, texts = model.sample(40, seed=7)
    assert images.shape == (40, model.image_len) and texts.shape == (40, model.text_len)
    assert images.dtype == np.int64
    lines = cli("sample", "--model", str(path), "--n", "40", "--seed", "7").splitlines()
    rows = [json.loads(line) for line in lines]
    assert [r["image"] for r in rows] == images.tolist()
    assert [r["text"] for r in rows] == texts.tolist()


def test_posterior_and_likelihood_match_cli(pair):
    model, path = pair
    images, texts = model.sample(6, seed=3)
    for part, batch in (("image", images), ("text", texts)):
        post = model.root_posterior(part, batch)
        ll = model.log_likelihood(part, batch)
        assert post.shape == (6, model.root_states)
        for i, row in enumerate(batch):
            ref = cli_json("posterior", "--model", str(path), f"--{part}", tokens_arg(row))
            assert np.max(np.abs(post[i] - ref["posterior"])) < TOL
            assert abs(ll[i] - ref["log_likelihood"]) < TOL


def test_pmi_and_joint_match_cli(pair):
    model, path = pair
    images, texts = model.sample(6, seed=4)
    texts = texts[::-1].copy()  # also unmatched pairs
    pmi = model.pmi(images, texts)
    joint = model.log_joint(images, texts)
    for i in range(6):
        ref = cli_json("pmi", "--model", str(path), "--image", tokens_arg(images[i]), "--text", tokens_arg(texts[i]))
        assert abs(pmi[i] - ref["pmi"]) < TOL
        assert abs(joint[i] - ref["log_pxy"]) < TOL


def test_information_matches_cli(pair):
    model, path = pair
    ours = model.information()
    ref = cli_json("info", "--model", str(path), "--exact")
    assert set(ours) == set(ref)
    for key, value in ref.items():
        if isinstance(value, float):
            assert abs(ours[key] - value) < TOL, key
    assert abs(model.mutual_information() - ref["mutual_information"]) < TOL
    assert abs(model.entropy("image") - ref["entropy_image"]) < TOL
    assert abs(model.entropy("text") - ref["entropy_text"]) < TOL


@pytest.mark.parametrize("side", ["image", "text"])
@pytest.mark.parametrize("statistic", ["root-posterior", "map-root", "first-tokens:1"])
def test_sufficiency_matches_cli(pair, side, statistic):
    model, path = pair
    ours = model.sufficiency_gap(side, statistic)
    ref = cli_json("sufficiency", "--model", str(path), "--statistic", statistic, "--side", side, "--exact")
    assert set(ours) == set(ref)
    for key, value in ref.items():
        if isinstance(value, float):
            assert abs(ours[key] - value) < TOL, key


def test_clip_loss_matches_cli(pair):
    model, path = pair
    pmi = model.pmi_matrix()
    report = model.clip_excess_risk(pmi, batch=2)
    for batch, suffix in (("inf", ""), ("2", "K_")):
        ref = cli_json("clip-loss", "--model", str(path), "--batch", batch, "--score", "pmi", "--exact")
        loss = (report[f"loss_{suffix}image_to_text"] + report[f"loss_{suffix}text_to_image"]) / 2
        assert abs(loss - ref["loss"]) < TOL
        assert abs(report[f"loss_{suffix}image_to_text"] - ref["loss_image_to_text"]) < TOL
        assert abs(report[f"loss_{suffix}text_to_image"] - ref["loss_text_to_image"]) < TOL
