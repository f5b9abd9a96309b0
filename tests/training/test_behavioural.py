"""The behavioural sets ship in the package, keep one schema, and are reported per set and kind."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.paths import REPO_ROOT
from training.behavioural import (
    BEHAVIOUR_DIR,
    DOMAINS,
    KINDS,
    SUBKINDS,
    BehaviouralSetError,
    load_set,
    load_sets,
    report,
)


def test_every_shipped_set_loads_and_lives_in_the_package_not_in_tests() -> None:
    assert BEHAVIOUR_DIR == REPO_ROOT / "training" / "behaviour"
    sets = load_sets()
    names = [behavioural_set.name for behavioural_set in sets]
    assert "written_2026_11" in names and names == sorted(names)
    for behavioural_set in sets:
        texts = [row.text for row in behavioural_set.texts]
        assert len(set(texts)) == len(texts), behavioural_set.name
        assert {row.kind for row in behavioural_set.texts} <= set(KINDS)
        assert {row.subkind for row in behavioural_set.texts} <= {None, *SUBKINDS}
        assert {row.domain for row in behavioural_set.texts} <= {None, *DOMAINS}
    # The package data entry that puts them into an installed package (and so the images).
    pyproject = (REPO_ROOT / "pyproject.toml").read_text()
    assert 'training = ["behaviour/*.jsonl", "mixes/*.json"]' in pyproject


def test_the_2026_11_set_keeps_its_texts_regrouped_into_six_kinds() -> None:
    rows = load_set(BEHAVIOUR_DIR / "written_2026_11.jsonl").texts
    assert len(rows) == 314
    assert {row.kind for row in rows} == set(KINDS)
    negation = [row for row in rows if row.kind == "negation"]
    assert all(row.subkind is not None for row in negation)
    assert all(row.domain not in (None, "movie") for row in rows if row.kind == "domain")


def _write(path: Path, rows: list[dict[str, object]]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ({"text": "fine", "label": 1, "kind": "negated_negative"}, "kind 'negated_negative'"),
        ({"text": "", "label": 1, "kind": "plain"}, "empty text"),
        ({"text": "fine", "label": 2, "kind": "plain"}, "label must be 0 or 1"),
        ({"text": "fine", "label": 1, "kind": "plain", "subkind": "negated_negative"}, "subkind"),
        (
            {"text": "not bad", "label": 0, "kind": "negation", "subkind": "negated_negative"},
            "a negated_negative has label 1",
        ),
        ({"text": "fine", "label": 1, "kind": "domain"}, "needs a domain"),
        ({"text": "fine", "label": 1, "kind": "plain", "domain": "cars"}, "domain 'cars'"),
        ({"text": "fine", "label": 1, "kind": "plain", "note": "x"}, "unknown field"),
    ],
)
def test_a_row_that_breaks_the_schema_names_its_file_and_line(
    tmp_path: Path, row: dict[str, object], message: str
) -> None:
    good = {"text": "great", "label": 1, "kind": "plain"}
    path = _write(tmp_path / "mine.jsonl", [good, row])
    with pytest.raises(BehaviouralSetError, match=f"mine.jsonl: line 2: .*{message}"):
        load_set(path)


def test_a_location_without_a_set_is_an_error_not_an_empty_report(tmp_path: Path) -> None:
    with pytest.raises(BehaviouralSetError, match="no behavioural set"):
        load_sets(tmp_path)
    with pytest.raises(BehaviouralSetError, match="no behavioural set"):
        load_sets(tmp_path / "absent.jsonl")


def test_report_gives_each_set_per_kind_subkind_and_domain_and_pools_them(tmp_path: Path) -> None:
    _write(
        tmp_path / "a_old.jsonl",
        [
            {"text": "great", "label": 1, "kind": "plain", "domain": "movie"},
            {"text": "awful", "label": 0, "kind": "plain"},
            {"text": "not bad", "label": 1, "kind": "negation", "subkind": "negated_negative"},
        ],
    )
    _write(
        tmp_path / "b_new.jsonl",
        [
            {"text": "app crashes", "label": 0, "kind": "domain", "domain": "app"},
            {"text": "not worth it", "label": 0, "kind": "negation", "subkind": "negated_positive"},
        ],
    )
    # A scorer that gets "not bad" and "app crashes" wrong.
    wrong = {"not bad": 0.2, "app crashes": 0.9}

    def score(texts: list[str]) -> np.ndarray:
        return np.array([wrong.get(t, 0.9 if t == "great" else 0.1) for t in texts])

    section = report(load_sets(tmp_path), score)
    assert list(section["sets"]) == ["a_old", "b_new"]
    old, new = section["sets"]["a_old"], section["sets"]["b_new"]
    assert old["source"] == "a_old.jsonl" and old["texts"] == 3
    assert old["accuracy"] == pytest.approx(2 / 3, abs=1e-4)
    assert old["by_kind"] == {
        "negation": {"accuracy": 0.0, "texts": 1},
        "plain": {"accuracy": 1.0, "texts": 2},
    }
    assert old["by_subkind"] == {"negated_negative": {"accuracy": 0.0, "texts": 1}}
    assert old["by_domain"] == {"movie": {"accuracy": 1.0, "texts": 1}}
    assert new["by_kind"]["domain"] == {"accuracy": 0.0, "texts": 1}
    assert new["by_subkind"] == {"negated_positive": {"accuracy": 1.0, "texts": 1}}
    assert section["texts"] == 5 and section["accuracy"] == pytest.approx(0.6)
    assert section["by_kind"]["negation"] == {"accuracy": 0.5, "texts": 2}
