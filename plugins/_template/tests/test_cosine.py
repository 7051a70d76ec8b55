import numpy as np
from sextant.api import Tolerance
from sextant.testing.contracts import check_plugin
from sextant_cosine.compare import compare


def test_contracts():
    assert [c.name for c in check_plugin("sextant_cosine")] == ["cosine"]


def test_scale_is_ignored_direction_is_not():
    ref = {"emb": np.array([[1.0, 2.0, 3.0], [0.0, 1.0, 0.0]])}
    tol = Tolerance(atol=0.0, rtol=1e-6)
    assert compare(ref, {"emb": ref["emb"] * 3.0}, tol).passed
    turned = np.array([[1.0, 2.0, 3.0], [1.0, 0.0, 0.0]])
    verdict = compare(ref, {"emb": turned}, tol)
    assert not verdict.passed and verdict.outputs[0].mismatched == 1
