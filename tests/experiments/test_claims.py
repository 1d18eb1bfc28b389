"""The claim engine on constructed per-seed measurements, against scipy's t-intervals."""

import math

import numpy as np
import pytest
from scipy import stats

from experiments.claims import BestOf, Claim, Diff, Measure, Ratio, check_declarations, judge


def claim(q, direction="<", threshold=0.0, **kw):
    return Claim("c", "a claim", q, direction, threshold, **kw)


def test_the_interval_is_student_t_over_seeds():
    v = np.array([0.31, 0.27, 0.35, 0.22, 0.29])
    verdict = judge(claim("x", "<", 1.0), {"x": v})
    ref = stats.ttest_1samp(v, 0.0).confidence_interval(0.95)
    assert verdict.n == 5 and verdict.basis == "interval"
    assert math.isclose(verdict.estimate, v.mean())
    assert math.isclose(verdict.low, ref.low) and math.isclose(verdict.high, ref.high)


@pytest.mark.parametrize(
    ("direction", "threshold", "status"),
    [("<", 0.5, "holds"), ("<", 0.3, "does not hold"), (">", 0.1, "holds"), (">", 0.3, "does not hold")],
)
def test_direction_and_threshold(direction, threshold, status):
    v = [0.31, 0.27, 0.35, 0.22, 0.29]
    assert judge(claim("x", direction, threshold), {"x": v}).status == status


def test_an_interval_that_crosses_the_threshold_does_not_hold_though_the_mean_clears_it():
    v = np.array([-1.0, 0.6, -0.9, 0.5, -0.2])  # mean -0.2 < 0, but the interval reaches above 0
    verdict = judge(claim("x", "<", 0.0), {"x": v})
    assert verdict.estimate < 0 < verdict.high
    assert verdict.status == "does not hold"
    # the same mean with a tight spread holds
    assert judge(claim("x", "<", 0.0), {"x": [-0.21, -0.19, -0.2, -0.22, -0.18]}).holds


def test_paired_differences_cancel_what_the_seeds_share_unpaired_do_not():
    base = np.array([1.0, 5.0, 2.0, 9.0, 4.0])  # seed-to-seed spread far above the effect
    m = {"a": base + 0.1 + np.array([0.01, -0.01, 0.02, 0.0, -0.02]), "b": base}
    paired = judge(claim(Diff("a", "b"), ">", 0.0), m)
    unpaired = judge(claim(Diff("a", "b", paired=False), ">", 0.0), m)
    assert paired.holds and not unpaired.holds
    ref = stats.ttest_ind(m["a"], m["b"], equal_var=False).confidence_interval(0.95)
    assert math.isclose(unpaired.low, ref.low) and math.isclose(unpaired.high, ref.high)
    ref_paired = stats.ttest_rel(m["a"], m["b"]).confidence_interval(0.95)
    assert math.isclose(paired.low, ref_paired.low) and math.isclose(paired.high, ref_paired.high)


def test_ratios_paired_and_unpaired():
    a, b = np.array([1.0, 2.0, 3.0, 4.0]), np.array([2.0, 4.1, 5.9, 8.0])
    paired = judge(claim(Ratio("a", "b"), "<", 0.6), {"a": a, "b": b})
    assert math.isclose(paired.estimate, float(np.mean(a / b))) and paired.holds
    unpaired = judge(claim(Ratio("a", "b", paired=False), "<", 0.6), {"a": a, "b": b})
    assert math.isclose(unpaired.estimate, a.mean() / b.mean())
    assert unpaired.low < unpaired.estimate < unpaired.high
    assert not unpaired.holds  # the means' spread is large once the seeds are not paired


def test_a_declared_best_of_takes_the_best_per_seed_and_says_so():
    m = {"e1": [0.5, 0.2, 0.9], "e2": [0.3, 0.4, 0.8], "e3": [0.6, 0.1, 0.7], "fm": [0.6, 0.5, 1.0]}
    q = Diff(BestOf(("e1", "e2", "e3")), "fm")
    c = Claim("mfm", "MFM beats FM", q, "<", 0.0)
    verdict = judge(c, m)
    best = np.min([m["e1"], m["e2"], m["e3"]], axis=0)
    assert np.allclose(verdict.values, best - np.array(m["fm"]))
    assert c.selection == "best of 3 (declared)"
    assert Claim("one", "one encoder", Diff("e1", "fm"), "<", 0.0).selection == ""
    with pytest.raises(ValueError, match="at least two"):
        BestOf(("e1",))


def test_fewer_than_three_values_decide_by_the_point_estimate():
    v = judge(claim("x", "<", 1.0), {"x": [0.5, 0.9]})
    assert v.basis == "point (n < 3)" and v.holds
    v = judge(claim("slope", ">", -1.1), {"slope": [-1.02]})
    assert v.n == 1 and v.low == v.high == v.estimate and v.holds


def test_missing_and_non_finite_measurements():
    assert judge(claim("x"), {"y": [1.0]}).status == "not measured"
    assert judge(claim(Diff("x", "y")), {"x": [1.0]}).status == "not measured"
    v = judge(claim("x", "<", 10.0), {"x": [1.0, float("nan"), 2.0]})
    assert v.status == "does not hold" and "non-finite" in v.reason


def test_paired_quantities_need_equal_seed_counts():
    with pytest.raises(ValueError, match="one value per seed"):
        judge(claim(Diff("a", "b")), {"a": [1.0, 2.0, 3.0], "b": [1.0, 2.0]})


def test_declarations_are_checked():
    with pytest.raises(ValueError, match="direction"):
        Claim("c", "t", "x", "<=", 0.0)
    with pytest.raises(ValueError, match="threshold"):
        Claim("c", "t", "x", "<", float("nan"))
    with pytest.raises(ValueError, match="declared twice"):
        check_declarations([Claim("c", "t", "x", "<", 0.0), Claim("c", "u", "y", ">", 0.0)])


def test_declarations_round_trip_through_json():
    import json

    c = Claim(
        "c",
        "t",
        Diff(BestOf(("a", Measure("b")), best="max"), Ratio("c", "d", paired=False), paired=False),
        ">",
        0.5,
        paper="X et al.",
        paper_value="0.3",
    )
    assert Claim.fromdict(json.loads(json.dumps(c.asdict()))) == c


def test_a_difference_of_differences_reads_with_its_brackets_and_judges_as_written():
    q = Diff(Diff("a", "b"), Diff("c", "d"))
    assert q.describe() == "(a − b) − (c − d)"
    assert Ratio("a", Diff("c", "d")).describe() == "a / (c − d)"
    m = {"a": [5.0, 6.0, 7.0], "b": [1.0, 1.0, 1.0], "c": [4.0, 4.0, 4.0], "d": [3.0, 3.0, 3.0]}
    np.testing.assert_allclose(q.values(m), [3.0, 4.0, 5.0])  # (a − b) − (c − d), not a − b − c − d
