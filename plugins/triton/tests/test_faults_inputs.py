"""Bad input to ``sextant analyze`` and ``sextant serve`` is refused up front, naming the key, the
value and the rule, or warned about, before anything is started or measured."""

from __future__ import annotations

import pytest
from sextant.api import UsageError
from sextant_triton.analyze.settings import AnalyzeSettings, Range, from_mapping


@pytest.mark.parametrize(
    ("data", "names"),
    [
        ({"max_batch_size": [-4, 8]}, ("max_batch_size", "-4", ">= 1")),
        ({"concurrency": [0, 2]}, ("concurrency", "0", ">= 1")),
        ({"instance_count": [0]}, ("instance_count", "0", ">= 1")),
        ({"max_batch_size": [2, "8"]}, ("max_batch_size", "'8'", "integer")),
        ({"max_batch_size": {"min": 0, "max": 8}}, ("max_batch_size", "min 0", ">= 1")),
        ({"concurrency": {"min": 4, "max": 2}}, ("concurrency", "min 4 and max 2", "1 <= min <= max")),
        ({"concurrency": -1}, ("concurrency", "-1", ">= 1")),
        ({"queue_delay_us": [0, -100]}, ("queue_delay_us", "-100", ">= 0")),
        ({"request_rate": [100, 0]}, ("request_rate", "0", "> 0")),
        ({"dynamic_batching": ["no"]}, ("dynamic_batching", "'no'", "true or false")),
        ({"preferred_batch_sizes": [[4, 0]]}, ("preferred_batch_sizes", "0", ">= 1")),
        ({"preferred_batch_sizes": [4, 8]}, ("preferred_batch_sizes", "list of lists")),
    ],
)
def test_yaml_values_are_checked_like_ranges(data, names):
    with pytest.raises(UsageError) as info:
        from_mapping(data)
    for name in names:
        assert name in info.value.message


def test_good_lists_still_read():
    settings = from_mapping(
        {
            "max_batch_size": [1, 8],
            "concurrency": [1, 2, 4],
            "queue_delay_us": [0, 500],
            "request_rate": [50, 100.5],
            "dynamic_batching": [True, False],
            "preferred_batch_sizes": [[], [4, 8]],
        }
    )
    assert settings.max_batch_size == Range(1, 8, (1, 8))
    assert settings.concurrency == Range(1, 4, (1, 2, 4))
    assert settings.request_rate == (50.0, 100.5)
    assert settings.preferred_batch_sizes == ((), (4, 8))


def test_python_settings_pass_the_same_rules():
    rule = r"concurrency: 0 is not allowed: every value of concurrency must be an integer >= 1"
    with pytest.raises(UsageError, match=rule):
        AnalyzeSettings(concurrency=Range(0, 2, (0, 2)))
    with pytest.raises(UsageError, match="budget"):
        AnalyzeSettings(budget_s=0)
    with pytest.raises(UsageError, match="max_measurements"):
        AnalyzeSettings(max_measurements=0)
