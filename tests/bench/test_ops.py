"""bench.ops traces a real shipped graph and attributes its time to the ops that ran."""

from __future__ import annotations

from bench.ops import op_costs
from tests.paths import SHIPPED_MODEL_BASE


def test_op_costs_of_a_shipped_version_name_its_ops_largest_first() -> None:
    texts = ["A wonderful film, I loved it.", "Terrible acting and a dull plot."] * 8
    profile = op_costs(SHIPPED_MODEL_BASE / "1", texts, batch_size=4)
    assert profile.signature == "serving_default"  # version 1 has no `score` signature
    times = [cost.microseconds_per_text for cost in profile.ops]
    assert times == sorted(times, reverse=True) and sum(times) > 0
    op_types = {cost.op_type for cost in profile.ops}
    # The tutorial's graph standardizes with regexes and looks words up in a string table.
    assert {"StaticRegexReplace", "LookupTableFindV2"} <= op_types


def test_op_costs_time_the_score_signature_where_it_exists() -> None:
    profile = op_costs(SHIPPED_MODEL_BASE / "3", ["Not bad at all."] * 4, batch_size=4)
    assert profile.signature == "score"
    assert any(cost.op_type == "UnsortedSegmentSum" for cost in profile.ops)
