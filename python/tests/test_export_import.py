"""Export and score import from Python: the same files as the CLI, the PMI fed back has excess
0, an independent NumPy recomputation agrees with the evaluation, bad arrays are ValueErrors."""

import json
import struct

import numpy as np
import pytest

import jghm
from conftest import cli, cli_json

DTYPES = {"F64": np.float64, "I64": np.int64}


def read_safetensors(path):
    """A safetensors file as {name: array} and its metadata (the format is an 8-byte header
    length, a JSON header of dtypes, shapes and offsets, then the raw little-endian data)."""
    raw = open(path, "rb").read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n])
    meta = header.pop("__metadata__", {})
    data = raw[8 + n :]
    arrays = {}
    for name, t in header.items():
        start, end = t["data_offsets"]
        arrays[name] = np.frombuffer(data[start:end], dtype=DTYPES[t["dtype"]]).reshape(t["shape"])
    return arrays, meta


@pytest.fixture()
def model_file(tmp_path):
    model = jghm.Model.random(3, 2, 2, seed=5)
    path = tmp_path / "model.json"
    model.save(path)
    return model, path


def test_export_is_the_cli_export_byte_for_byte(model_file, tmp_path):
    model, path = model_file
    loaded = jghm.Model.load(path)
    assert loaded.sha256 == model.sha256
    model.export(tmp_path / "py.safetensors", 700, seed=3, hidden=True)
    cli("export", "--model", str(path), "--n", "700", "--seed", "3", "--hidden", "--out", str(tmp_path / "cli.safetensors"))
    assert (tmp_path / "py.safetensors").read_bytes() == (tmp_path / "cli.safetensors").read_bytes()
    arrays, meta = read_safetensors(tmp_path / "py.safetensors")
    assert meta["model_sha256"] == model.sha256
    images, texts = model.sample(700, seed=3)
    np.testing.assert_array_equal(arrays["images"], images)
    np.testing.assert_array_equal(arrays["texts"], texts)
    np.testing.assert_allclose(arrays["pmi"], model.pmi(images, texts), rtol=0, atol=1e-12)
    np.testing.assert_allclose(arrays["image_root_posterior"], model.root_posterior("image", images), rtol=0, atol=1e-12)
    np.testing.assert_array_equal(arrays["roots"], arrays["hidden"][:, 0])
    model.export(tmp_path / "all.safetensors", all=True)
    cli("export", "--model", str(path), "--all", "--out", str(tmp_path / "all-cli.safetensors"))
    assert (tmp_path / "all.safetensors").read_bytes() == (tmp_path / "all-cli.safetensors").read_bytes()
    with pytest.raises(ValueError, match="either n"):
        model.export(tmp_path / "x.safetensors")


def test_pmi_round_trips_to_zero_and_a_numpy_recomputation_agrees(model_file, tmp_path):
    model, path = model_file
    pmi = model.pmi_matrix()
    np.savez(tmp_path / "pmi.npz", scores=pmi)
    r = model.evaluate_scores(tmp_path / "pmi.npz")
    for key in ("excess_risk", "excess_risk_image_to_text", "excess_risk_text_to_image"):
        assert abs(r[key]) < 1e-12, (key, r[key])
    # The CLI reads the same NumPy file to the same figures.
    c = cli_json("eval", "--model", str(path), "--scores", str(tmp_path / "pmi.npz"))
    assert c["excess_risk"] == r["excess_risk"]
    # A row-shuffled score: large excess, and l_inf recomputed in NumPy from p(x), p(y), PMI.
    rng = np.random.default_rng(0)
    s = pmi[rng.permutation(pmi.shape[0])]
    np.save(tmp_path / "scores.npy", s)
    r = model.evaluate_scores(tmp_path / "scores.npy")
    px, py = model.probabilities("image"), model.probabilities("text")
    joint = px[:, None] * py[None, :] * np.exp(pmi)

    def l_inf(scores, log_pc, axis):
        norm = np.log(np.sum(np.exp(log_pc + scores), axis=axis, keepdims=True))
        return float(np.sum(joint * (norm - scores)))

    held_out = 0.5 * (l_inf(s, np.log(py)[None, :], 1) - l_inf(pmi, np.log(py)[None, :], 1)
                      + l_inf(s, np.log(px)[:, None], 0) - l_inf(pmi, np.log(px)[:, None], 0))
    assert abs(held_out - r["excess_risk"]) < 1e-9
    assert r["excess_risk"] > 0.5 * model.mutual_information()


def test_embeddings_without_files_and_on_sampled_pairs(model_file):
    model, _ = model_file
    X, Y = model.enumerate_images(), model.enumerate_texts()
    f, g = model.root_posterior("image", X), model.root_posterior("text", Y)
    exact = model.evaluate_embeddings(X, Y, f, g, logit_scale=4.0)
    assert exact["excess_risk_stderr"] == 0.0 and exact["excess_risk"] > 0.0
    # The same scores as a matrix, through clip_excess_risk: the same excess.
    assert abs(model.clip_excess_risk(4.0 * f @ g.T)["excess_risk"] - exact["excess_risk"]) < 1e-12
    # Sampled pairs that cover every sequence: still exact, the same figure.
    images, texts = model.sample(8000, seed=1)
    post = lambda part, rows: model.root_posterior(part, rows)
    covered = model.evaluate_embeddings(images, texts, post("image", images), post("text", texts), logit_scale=4.0, pairs=True)
    assert covered["excess_risk_stderr"] == 0.0
    assert abs(covered["excess_risk"] - exact["excess_risk"]) < 1e-12
    # 400 pairs do not cover them: Monte Carlo on the pairs, within 4 standard errors of exact
    # plus the leading bias of the log of a mean over m = 399 negatives, E_a Var/mean^2 / (2m)
    # for each score (computed here from the exact laws), doubled.
    images, texts = model.sample(400, seed=2)
    mc = model.evaluate_embeddings(images, texts, post("image", images), post("text", texts), logit_scale=4.0, pairs=True, block=400)
    assert 0 < mc["excess_risk_stderr"] < 0.1
    px, py, pmi = model.probabilities("image"), model.probabilities("text"), model.pmi_matrix()
    s = 4.0 * f @ g.T

    def relative_variance(scores, p_anchor, p_other):
        w = np.exp(scores)
        m1, m2 = w @ p_other, (w * w) @ p_other
        return float(p_anchor @ (m2 / m1**2 - 1))

    for key, (a, b, sc, pm) in {"excess_risk_image_to_text": (px, py, s, pmi),
                                "excess_risk_text_to_image": (py, px, s.T, pmi.T)}.items():
        bias = 2 * (relative_variance(sc, a, b) + relative_variance(pm, a, b)) / (2 * 399)
        assert abs(mc[key] - exact[key]) < 4 * mc[key + "_stderr"] + bias, (key, mc[key], exact[key])


def test_bad_arrays_and_files_are_value_errors(model_file, tmp_path):
    model, _ = model_file
    X, Y = model.enumerate_images(), model.enumerate_texts()
    f = np.ones((len(X), 2))
    g = np.ones((len(Y), 2))
    bad = f.copy()
    bad[3, 1] = np.nan
    with pytest.raises(ValueError, match="not finite"):
        model.evaluate_embeddings(X, Y, bad, g)
    with pytest.raises(ValueError, match="rows"):
        model.evaluate_embeddings(X, Y, f[:-1], g)
    with pytest.raises(ValueError, match="same number of columns"):
        model.evaluate_embeddings(X, Y, f, np.ones((len(Y), 3)))
    with pytest.raises(ValueError, match="vocabulary"):
        model.evaluate_embeddings(X + 7, Y, f, g)
    with pytest.raises(ValueError, match="dot or cosine"):
        model.evaluate_embeddings(X, Y, f, g, similarity="l2")
    with pytest.raises(ValueError, match="cover"):
        model.evaluate_embeddings(X[:10], Y, f[:10], g)
    other = jghm.Model.random(3, 2, 2, seed=6)
    other.export(tmp_path / "other.safetensors", all=True)
    with pytest.raises(ValueError, match="another model"):
        model.evaluate_scores(tmp_path / "other.safetensors")
    np.savez(tmp_path / "wrong.npz", scores=np.zeros((3, 4)))
    with pytest.raises(ValueError, match="shape"):
        model.evaluate_scores(tmp_path / "wrong.npz")
    (tmp_path / "junk.npz").write_bytes(b"junk")
    with pytest.raises(ValueError, match="is not a safetensors"):
        model.evaluate_scores(tmp_path / "junk.npz")
