import numpy as np
from sextant.compare import Tolerance, Verdict, compare

TOL = Tolerance(atol=1e-3, rtol=1e-2)


def test_an_element_fails_only_when_it_exceeds_both_tolerances():
    ref = np.array([1000.0, 0.0], dtype=np.float32)
    # 1000 → 1005: abs 5 > atol but rel 0.5 % < rtol: passes; 0 → 0.0005: abs < atol: passes
    ok = compare({"y": ref}, {"y": np.array([1005.0, 0.0005], dtype=np.float32)}, TOL)
    assert ok.passed
    bad = compare({"y": ref}, {"y": np.array([1000.0, 0.01], dtype=np.float32)}, TOL)
    assert not bad.passed
    report = bad.outputs[0]
    assert report.mismatched == 1
    assert np.isclose(report.max_abs_error, 0.01)
    assert np.isclose(report.atol_needed, 0.01)  # the tolerance that would have passed
    assert "would pass with atol 0.01" in bad.summary()


def test_relative_error_is_guarded_against_zero():
    verdict = compare({"y": np.zeros(3)}, {"y": np.full(3, 1e-6)}, TOL)
    assert verdict.passed
    assert np.isfinite(verdict.max_rel_error)


def test_nan_and_inf_handling():
    ref = np.array([np.nan, np.inf, 1.0])
    assert compare({"y": ref}, {"y": ref.copy()}, TOL).passed
    verdict = compare({"y": ref}, {"y": np.array([1.0, np.inf, 1.0])}, TOL)
    assert not verdict.passed
    assert "NaN/Inf" in verdict.summary()
    assert not compare({"y": ref}, {"y": np.array([np.nan, -np.inf, 1.0])}, TOL).passed


def test_an_inf_against_a_finite_reference_fails():
    # the error of an Inf is not a number: it must not drop out of the comparison as a 0
    ref = np.array([1.0, 2.0, 3.0], dtype=np.float32)
    for value in (np.inf, -np.inf):
        verdict = compare({"y": ref}, {"y": np.array([1.0, value, 3.0], dtype=np.float32)}, TOL)
        assert not verdict.passed and verdict.outputs[0].mismatched == 1
        assert verdict.outputs[0].problem == (
            "NaN/Inf positions differ from the reference's: Inf differs from the reference at 1 positions"
        )
    # and the other way round: a finite value, however large, where the reference is Inf
    big = compare({"y": np.array([np.inf, 1.0])}, {"y": np.array([3e38, 1.0])}, TOL)
    assert not big.passed and big.outputs[0].mismatched == 1


def test_shape_dtype_and_missing_outputs():
    ref = {"y": np.zeros((2, 3), dtype=np.float32)}
    assert "shape (3, 2)" in compare(ref, {"y": np.zeros((3, 2), dtype=np.float32)}, TOL).summary()
    assert "dtype int64" in compare(ref, {"y": np.zeros((2, 3), dtype=np.int64)}, TOL).summary()
    assert "missing" in compare(ref, {"z": np.zeros((2, 3))}, TOL).summary()
    # a narrower float of the same kind is compared by value
    assert compare(ref, {"y": np.zeros((2, 3), dtype=np.float16)}, TOL).passed


def test_per_output_overrides_and_precision_defaults():
    tol = Tolerance.for_precision("fp16", per_output={"loose": (1.0, 1.0)})
    assert tol.for_output("y") == (1e-2, 1e-2)
    assert tol.for_output("loose") == (1.0, 1.0)
    assert Tolerance.for_precision("fp32", atol=0.5).atol == 0.5


def test_merge_keeps_the_worst_figures():
    a = compare({"y": np.array([1.0])}, {"y": np.array([1.0])}, TOL)
    b = compare({"y": np.array([1.0])}, {"y": np.array([2.0])}, TOL)
    merged = Verdict.merge([a, b])
    assert not merged.passed
    assert merged.max_abs_error == 1.0


def test_strings_compare_exactly():
    ref = {"y": np.array(["a", "b"], dtype=object)}
    assert compare(ref, {"y": np.array(["a", "b"], dtype=object)}, TOL).passed
    assert not compare(ref, {"y": np.array(["a", "c"], dtype=object)}, TOL).passed
