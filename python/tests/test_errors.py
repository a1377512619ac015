"""Bad input is a ValueError with one clear message, never a crash."""

import json

import numpy as np
import pytest

import jghm


@pytest.fixture(scope="module")
def model():
    return jghm.Model.random(3, 2, 2, seed=1)


def test_wrong_length(model):
    with pytest.raises(ValueError, match="image has 3 tokens, but the model's image has 4 leaves"):
        model.root_posterior("image", np.zeros((2, 3), dtype=np.int64))


def test_out_of_vocabulary(model):
    x = np.zeros((3, 4), dtype=np.int64)
    x[2, 1] = 3
    with pytest.raises(ValueError, match=r"row 2: image token at position 1 is 3, out of the vocabulary 0..3"):
        model.log_likelihood("image", x)
    x[2, 1] = -1
    with pytest.raises(ValueError, match="row 2: image token 1 \\('-1'\\) is not a nonnegative integer"):
        model.pmi(x, np.zeros((3, 4), dtype=np.int64))


def test_float_dtype(model):
    with pytest.raises(ValueError, match="tokens must be an integer array, got dtype float64"):
        model.root_posterior("text", np.zeros((2, 4)))


def test_wrong_ndim(model):
    with pytest.raises(ValueError, match="must be a 2-D array, got 1 dimension"):
        model.root_posterior("image", np.zeros(4, dtype=np.int64))
    with pytest.raises(ValueError, match="must be a 2-D array, got 3 dimension"):
        model.log_joint(np.zeros((1, 1, 4), dtype=np.int64), np.zeros((1, 4), dtype=np.int64))


def test_other_integer_dtypes_and_lists_are_accepted(model):
    x, _ = model.sample(5, seed=2)
    ref = model.log_likelihood("image", x)
    for dtype in (np.int8, np.uint16, np.int32):
        assert np.array_equal(model.log_likelihood("image", x.astype(dtype)), ref)
    assert np.array_equal(model.log_likelihood("image", x.tolist()), ref)
    assert np.array_equal(model.log_likelihood("image", np.asfortranarray(x)), ref)
    assert model.root_posterior("image", np.zeros((0, 4), dtype=np.int64)).shape == (0, 3)


def test_mismatched_pairs_and_parts(model):
    with pytest.raises(ValueError, match="images has 2 rows but texts has 1"):
        model.pmi(np.zeros((2, 4), dtype=np.int64), np.zeros((1, 4), dtype=np.int64))
    with pytest.raises(ValueError, match="part must be 'image' or 'text', got 'shared'"):
        model.root_posterior("shared", np.zeros((1, 4), dtype=np.int64))


def test_scores_checked(model):
    n, m = len(model.enumerate_images()), len(model.enumerate_texts())
    with pytest.raises(ValueError, match=f"scores has shape \\[3, 3\\], but the model enumerates {n} images and {m} texts"):
        model.clip_excess_risk(np.zeros((3, 3)))
    scores = np.zeros((n, m))
    scores[1, 2] = np.nan
    with pytest.raises(ValueError, match=r"scores\[1, 2\] is NaN: scores must be finite"):
        model.clip_excess_risk(scores)
    with pytest.raises(ValueError, match="batch must be a positive integer"):
        model.clip_excess_risk(np.zeros((n, m)), batch=0)
    with pytest.raises(ValueError, match="statistic has 2 rows, but the side enumerates"):
        model.sufficiency_gap("image", np.zeros(2, dtype=np.int64))
    with pytest.raises(ValueError, match="unknown statistic 'nope'"):
        model.sufficiency_gap("text", "nope")


def test_too_large_to_enumerate():
    big = jghm.Model.random(10, 3, 4, seed=1)
    for call in (big.mutual_information, big.information, big.enumerate_images, big.pmi_matrix):
        with pytest.raises(ValueError, match="exact enumeration is too large"):
            call()


def test_impossible_observation():
    # A 2-state root copied exactly to one image leaf and one text leaf: x != y is impossible.
    eye = [[1.0, 0.0], [0.0, 1.0]]
    model = jghm.Model.from_json(json.dumps({"prior": [0.5, 0.5], "image": [{"transitions": [eye]}], "text": [{"transitions": [eye]}]}))
    assert np.array_equal(model.log_joint([[0]], [[1]]), [-np.inf])
    with pytest.raises(ValueError, match="row 0: the pair \\(image, text\\) has probability zero"):
        model.pmi([[0], [0]], [[0], [1]][::-1])
    assert abs(model.pmi([[0]], [[0]])[0] - np.log(2)) < 1e-12


def test_bad_models():
    with pytest.raises(ValueError):
        jghm.Model.from_json("{}")
    with pytest.raises(ValueError, match="--flip must lie in \\[0, 1\\]"):
        jghm.Model.random(2, 2, 2, flip=2.0)
    with pytest.raises(FileNotFoundError, match="cannot read model file"):
        jghm.Model.load("/nonexistent/model.json")
