"""Model construction, properties and files."""

import json

import numpy as np

import jghm


def test_properties_and_round_trip(tmp_path):
    model = jghm.Model.random(3, 2, 2, text_depth=1, vocab=4, seed=2)
    assert (model.image_len, model.text_len) == (4, 2)
    assert (model.image_vocab, model.text_vocab, model.root_states) == (4, 4, 3)
    assert np.allclose(model.prior, [1 / 3] * 3)
    assert "image_len=4" in repr(model)
    path = tmp_path / "m.json"
    model.save(path)
    again = jghm.Model.load(str(path))
    assert again.to_json() == model.to_json()
    assert jghm.Model.from_json(model.to_json()).to_json() == model.to_json()
    assert json.loads(model.to_json())["prior"] == list(model.prior)
    assert isinstance(jghm.__version__, str)


def test_sampling_is_reproducible_and_seeded():
    model = jghm.Model.random(3, 2, 2, seed=1)
    a = model.sample(1000, seed=5)
    b = model.sample(1000, seed=5)
    c = model.sample(1000, seed=6)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert not np.array_equal(a[0], c[0])
    # The empirical law of the images approaches p(x).
    images = model.enumerate_images()
    index = {tuple(x): i for i, x in enumerate(images)}
    x, _ = model.sample(200_000, seed=1)
    counts = np.bincount([index[tuple(r)] for r in x], minlength=len(images)) / len(x)
    assert np.max(np.abs(counts - model.probabilities("image"))) < 0.01
