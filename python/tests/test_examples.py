"""The NumPy example trains and is evaluated exactly (a short run)."""

import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "examples"))

import numpy_encoder  # noqa: E402


def test_numpy_encoder_learns(capsys):
    report = numpy_encoder.main(steps=400)
    assert "excess CLIP risk, trained" in capsys.readouterr().out
    # T4: the excess is nonnegative; a few hundred steps already remove part of it.
    assert 0.0 <= report["excess_risk"] < 0.8 * report["mutual_information"]
    assert abs(report["kl_image_to_text"] - report["excess_image_to_text"]) < 1e-10
