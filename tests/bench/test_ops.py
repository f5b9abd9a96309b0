"""bench.ops traces a real shipped graph and attributes its time to the ops (or stages) that ran."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.ops import op_costs, stage_of
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


def test_stage_is_the_first_name_scope_inside_the_signature_function() -> None:
    call = "StatefulPartitionedCall_1/StatefulPartitionedCall"
    assert stage_of(f"{call}/ngrams/ngram_lookup/LookupTableFindV2") == "ngrams"
    assert stage_of(f"{call}/split/StringSplitV2") == "split"
    assert stage_of(f"{call}/GatherV2_6") == "GatherV2_6", "an unscoped op is its own stage"


def test_op_costs_add_up_per_stage_for_a_graph_with_stages(tmp_path: Path) -> None:
    """A graph exported with name scopes (as the serving graph is) is profiled per stage."""
    import tensorflow as tf

    class Staged(tf.Module):  # type: ignore[misc]
        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")])  # type: ignore[untyped-decorator]
        def serve(self, text: tf.Tensor) -> dict[str, tf.Tensor]:
            with tf.name_scope("standardize"):
                lowered = tf.strings.regex_replace(tf.strings.lower(text), "[.,]", " ")
            with tf.name_scope("split"):
                count = tf.strings.split(lowered).row_lengths()
            return {"probability": tf.cast(count, tf.float32)[:, tf.newaxis]}

    module = Staged()
    tf.saved_model.save(module, str(tmp_path), signatures={"serving_default": module.serve})
    profile = op_costs(tmp_path, ["A film, a plot."] * 8, batch_size=4)
    stages = dict(profile.stages)
    assert {"standardize", "split"} <= set(stages)
    assert [micros for _, micros in profile.stages] == sorted(stages.values(), reverse=True)
    total = sum(cost.microseconds_per_text for cost in profile.ops)
    assert sum(stages.values()) == pytest.approx(total)
