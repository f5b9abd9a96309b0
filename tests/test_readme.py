"""The README and docs/ stay true: what they show is checked against the shipped model and the app.

- every ``$ curl`` example in README.md and docs/*.md gets exactly the reply it shows;
- the explanation example satisfies the identities docs/protocols.md states;
- docs/protocols.md lists every route the app serves, and no route it doesn't;
- docs/operations.md lists every error type with its status, and every metric;
- docs/model.md's quality table has a row for every published version, matching its card, and
  its per-domain table matches the served version's card;
- every relative link (file and anchor) resolves.

The configuration table and restated defaults are checked in tests/app/test_settings_defaults.py.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from app.settings import Settings
from contract import CARD_FILE, version_dirs
from tests.paths import REPO_ROOT, SHIPPED_MODEL_BASE

README = REPO_ROOT / "README.md"
DOCS = REPO_ROOT / "docs"
PROTOCOLS = DOCS / "protocols.md"
OPERATIONS = DOCS / "operations.md"
MODEL_REPORT = DOCS / "model.md"
DOCUMENTS = (README, *sorted(DOCS.glob("*.md")))

# An example: a console line `$ curl -s localhost:8000<path> [options]` and, on the next line,
# the literal JSON reply. A POST sends the body of `-d '...'`; without `-d` it is a GET.
EXAMPLE = re.compile(
    r"^\$ curl -s localhost:8000(?P<path>\S+)(?P<options>[^\n]*)\n(?P<reply>[{\[][^\n]*)$",
    re.MULTILINE,
)
CURL_LINE = re.compile(r"^\$ curl .*$", re.MULTILINE)
BODY = re.compile(r"-d '(?P<body>[^']+)'")

# Numbers in a reply (explanations' shares and probabilities) are compared within this.
REPLY_TOLERANCE = 1e-5


@pytest.fixture(scope="module")
def shipped_client() -> Iterator[TestClient]:
    """The app serving model/sentiment as `make serve` does: its newest version is live."""
    settings = Settings(model_base_path=SHIPPED_MODEL_BASE, reload_interval_seconds=0)
    with TestClient(create_app(settings)) as client:
        yield client


def _section(document: str, heading: str) -> str:
    """The text under ``heading`` up to the next heading of any level."""
    after = document.split(f"\n{heading}\n", 1)[1]
    return re.split(r"\n#{1,6} ", after, maxsplit=1)[0]


def _without_code_blocks(document: str) -> str:
    return re.sub(r"^```.*?^```", "", document, flags=re.MULTILINE | re.DOTALL)


def _without_code(document: str) -> str:
    """The Markdown without fenced code blocks and inline code spans (neither holds links)."""
    return re.sub(r"`[^`\n]*`", "code", _without_code_blocks(document))


def _send(client: TestClient, example: re.Match[str]) -> Any:
    body = BODY.search(example["options"])
    if body is None:
        response = client.get(example["path"])
    else:
        response = client.post(example["path"], json=json.loads(body["body"]))
    return response.json()


def _assert_same(shown: Any, actual: Any, where: str = "reply") -> None:
    """Same structure, keys, strings and booleans; floats within REPLY_TOLERANCE."""
    if isinstance(shown, dict):
        assert isinstance(actual, dict) and actual.keys() == shown.keys(), where
        for key, value in shown.items():
            _assert_same(value, actual[key], f"{where}.{key}")
    elif isinstance(shown, list):
        assert isinstance(actual, list) and len(actual) == len(shown), where
        for index, (value, got) in enumerate(zip(shown, actual, strict=True)):
            _assert_same(value, got, f"{where}[{index}]")
    elif isinstance(shown, float) and not isinstance(actual, bool):
        assert actual == pytest.approx(shown, abs=REPLY_TOLERANCE), where
    else:
        assert type(actual) is type(shown) and actual == shown, where


def test_quick_start_curl_reply_matches_the_shipped_model(shipped_client: TestClient) -> None:
    first_screen = README.read_text().split("\n---\n", 1)[0]
    assert "make serve" in first_screen and "make test" in first_screen
    match = EXAMPLE.search(first_screen)
    assert match, "the README's first screen must show a curl and its literal reply"
    assert match["path"] == "/v1/predict"
    shown, actual = json.loads(match["reply"]), _send(shipped_client, match)
    assert actual["label"] == shown["label"]
    assert actual["model_version"] == shown["model_version"]
    assert actual["probability"] == pytest.approx(shown["probability"], abs=1e-6)


def _examples() -> list[Any]:
    return [
        pytest.param(document, index, id=f"{document.name}-{index}")
        for document in DOCUMENTS
        for index, _ in enumerate(EXAMPLE.finditer(document.read_text()))
    ]


def test_every_curl_example_shows_its_reply() -> None:
    """A `$ curl` line without a reply (or in another form) would escape the replay below."""
    for document in DOCUMENTS:
        text = document.read_text()
        curls = CURL_LINE.findall(text)
        assert len(curls) == len(EXAMPLE.findall(text)), document.name
    assert len(_examples()) >= 8


@pytest.mark.parametrize(("document", "index"), _examples())
def test_curl_example_gets_the_reply_it_shows(
    shipped_client: TestClient, document: Path, index: int
) -> None:
    example = list(EXAMPLE.finditer(document.read_text()))[index]
    _assert_same(json.loads(example["reply"]), _send(shipped_client, example))


def test_explanation_example_holds_the_documented_identities(shipped_client: TestClient) -> None:
    """sum(contributions) + bias == raw_logit, logit == raw_logit / temperature, probability ==
    sigmoid(logit) == what /v1/predict answers for the text (docs/protocols.md, Explanations)."""
    section = _section(PROTOCOLS.read_text(), "### Explanations")
    example = EXAMPLE.search(section)
    assert example and example["path"] == "/v1/explain"
    [shown] = json.loads(example["reply"])["explanations"]
    contributions = sum(unit["contribution"] for unit in shown["units"])
    assert contributions + shown["bias"] == pytest.approx(shown["raw_logit"], abs=1e-5)
    assert shown["logit"] == pytest.approx(shown["raw_logit"] / shown["temperature"], rel=1e-5)
    assert shown["probability"] == pytest.approx(1 / (1 + math.exp(-shown["logit"])), abs=1e-6)
    assert shown["input"]["token_count"] == len(shown["units"])
    body = BODY.search(example["options"])
    assert body
    predicted = shipped_client.post("/v1/predict", json=json.loads(body["body"])).json()
    assert predicted["probability"] == pytest.approx(shown["probability"], abs=1e-6)
    assert predicted["label"] == shown["label"]


DOCUMENTED_ROUTE = re.compile(r"`(?P<method>GET|POST) (?P<path>/[^`\s]*)`")


def _documented_form(path: str, model_name: str) -> str:
    """A route as the docs write it: the model's name, and no version or label variant."""
    path = path.replace("/versions/{version}", "").replace("/labels/{label}", "")
    return path.replace("{name}", model_name)


def test_protocols_doc_lists_every_route_and_no_other() -> None:
    settings = Settings(model_base_path=SHIPPED_MODEL_BASE)
    schema = create_app(settings).openapi()
    served = {
        (method.upper(), _documented_form(path, settings.model_name))
        for path, operations in schema["paths"].items()
        for method in operations
    }
    text = PROTOCOLS.read_text()
    documented = {(m["method"], m["path"]) for m in DOCUMENTED_ROUTE.finditer(text)}
    assert served == documented
    paths = schema["paths"]
    if any("/versions/{version}" in path for path in paths):
        assert "`/versions/<v>`" in text
    if any("/labels/{label}" in path for path in paths):
        assert "`/labels/<label>`" in text


ERROR_ROW = re.compile(r"^\| (?P<status>\d{3}) \| (?P<types>`[^|]+`) \|", re.MULTILINE)
# The app's OpenAPI description lists every declared error type as "`type` (status)".
DECLARED_ERROR = re.compile(r"`(?P<type>[a-z_]+)` \((?P<status>\d{3})\)")


def test_error_table_lists_every_error_type_with_its_status() -> None:
    """docs/operations.md's error table states what the service declares (and /docs lists)."""
    description = create_app(Settings(model_base_path=SHIPPED_MODEL_BASE)).description
    declared = {(int(m["status"]), m["type"]) for m in DECLARED_ERROR.finditer(description)}
    documented = {
        (int(row["status"]), name.strip("` "))
        for row in ERROR_ROW.finditer(_section(OPERATIONS.read_text(), "## Errors"))
        for name in row["types"].split("/")
    }
    assert len(declared) >= 10
    assert documented == declared


METRIC_ROW = re.compile(r"^\| `(?P<name>sentiment_[a-z_]+)` \|", re.MULTILINE)


def test_metrics_table_lists_every_metric(shipped_client: TestClient) -> None:
    assert shipped_client.post("/v1/predict", json={"text": "Fine."}).status_code == 200
    exposed = {
        line.split()[2]
        for line in shipped_client.get("/metrics").text.splitlines()
        if line.startswith("# TYPE sentiment_") and not line.split()[2].endswith("_created")
    }
    documented = set(METRIC_ROW.findall(_section(OPERATIONS.read_text(), "## Metrics")))
    assert len(exposed) >= 10
    assert documented == exposed


# In the quality table, a figure the version's card does not record is marked with a dagger,
# and a figure nobody measured is an en dash.
NOT_IN_CARD = "\N{DAGGER}"
NOT_MEASURED = "\N{EN DASH}"
_FIGURE = rf"[\d.]+%?{NOT_IN_CARD}?|{NOT_MEASURED}"
QUALITY_ROW = re.compile(
    r"^\| `model/sentiment/(?P<version>\d+)`[^|]* \| (?P<accuracy>[\d.]+) \| (?P<auc>[\d.]+) \| "
    rf"(?P<ece>{_FIGURE}) / (?P<snippet_ece>{_FIGURE}) \| (?P<behavioural>{_FIGURE}) \|",
    re.MULTILINE,
)
BASELINE_ROW = re.compile(
    rf"^\| (?P<name>TF-IDF|NBSVM) [^|]* \| (?P<accuracy>[\d.]+) \| (?P<auc>{_FIGURE}) \|",
    re.MULTILINE,
)
# The per-domain table: domain, test rows, the model's accuracy and ECE, then the baselines',
# VADER's and the live version's accuracy on the same rows.
DOMAIN_ROW = re.compile(
    r"^\| (?P<domain>[a-z]+) \| (?P<rows>[\d,]+) \| (?P<model>[\d.]+) \| (?P<ece>[\d.]+) \| "
    r"(?P<tfidf_logreg>[\d.]+) \| (?P<nbsvm>[\d.]+) \| (?P<vader>[\d.]+) \| (?P<live>[\d.]+) \|$",
    re.MULTILINE,
)
KIND_ROW = re.compile(
    r"^\| [^|]+ \| `(?P<kind>[a-z_]+)` \| (?P<texts>\d+) \| (?P<accuracy>[\d.]+)% \|", re.MULTILINE
)


def _card(version: int) -> dict[str, Any]:
    card: dict[str, Any] = json.loads((SHIPPED_MODEL_BASE / str(version) / CARD_FILE).read_text())
    return card


def _check_figure(shown: str, recorded: float | None, *, percent: bool = False) -> None:
    """A figure from the card must match it; one the card lacks must say so (NOT_IN_CARD)."""
    if recorded is None:
        assert shown.endswith(NOT_IN_CARD) or shown == NOT_MEASURED, shown
        return
    expected = round(recorded * 100, 1) if percent else round(recorded, 4)
    assert float(shown.rstrip("%")) == pytest.approx(expected), shown


def test_model_report_quality_table_matches_every_published_card() -> None:
    text = _section(MODEL_REPORT.read_text().replace("*", ""), "## Quality")
    rows = {int(row["version"]): row for row in QUALITY_ROW.finditer(text)}
    published = [version for version, _ in version_dirs(SHIPPED_MODEL_BASE)]
    assert sorted(rows) == published, "every published version needs its row"
    for version, row in rows.items():
        card = _card(version)
        test = card["metrics"]["test"]
        snippets = card["metrics"].get("validation_snippets") or {}
        behavioural = card.get("behavioural") or {}
        assert float(row["accuracy"]) == pytest.approx(test["accuracy"]), version
        assert float(row["auc"]) == pytest.approx(test["roc_auc"]), version
        _check_figure(row["ece"], test.get("ece"))
        _check_figure(row["snippet_ece"], snippets.get("ece"))
        _check_figure(row["behavioural"], behavioural.get("accuracy"), percent=True)
    baselines = _card(published[-1])["baselines"]
    by_name = {"TF-IDF": baselines["tfidf_logreg"], "NBSVM": baselines["nbsvm"]}
    shown = {row["name"]: row for row in BASELINE_ROW.finditer(text)}
    assert shown.keys() == by_name.keys()
    for name, row in shown.items():
        assert float(row["accuracy"]) == pytest.approx(by_name[name]["test_accuracy"]), name
        _check_figure(row["auc"], by_name[name].get("test_roc_auc"))


def test_model_report_domain_table_matches_the_served_card() -> None:
    text = _section(MODEL_REPORT.read_text().replace("*", ""), "## Quality")
    by_domain = _card(version_dirs(SHIPPED_MODEL_BASE)[-1][0])["per_domain"]["test_by_domain"]
    shown = {row["domain"]: row for row in DOMAIN_ROW.finditer(text)}
    assert shown.keys() == by_domain.keys()
    for domain, row in shown.items():
        figures = by_domain[domain]
        assert int(row["rows"].replace(",", "")) == figures["model"]["rows"], domain
        assert float(row["model"]) == pytest.approx(figures["model"]["accuracy"]), domain
        assert float(row["ece"]) == pytest.approx(figures["model"]["ece"]), domain
        for scorer in ("tfidf_logreg", "nbsvm", "vader", "live"):
            assert float(row[scorer]) == pytest.approx(figures[scorer]["accuracy"]), domain


def test_model_report_behavioural_kinds_match_the_served_card() -> None:
    text = _section(MODEL_REPORT.read_text(), "## The behavioural set")
    by_kind = _card(version_dirs(SHIPPED_MODEL_BASE)[-1][0])["behavioural"]["by_kind"]
    shown = {row["kind"]: row for row in KIND_ROW.finditer(text)}
    assert shown.keys() == by_kind.keys()
    for kind, row in shown.items():
        assert int(row["texts"]) == by_kind[kind]["texts"], kind
        assert float(row["accuracy"]) == pytest.approx(round(by_kind[kind]["accuracy"] * 100, 1))


LINK = re.compile(r"\]\((?P<target>[^)\s]+)\)")


def _anchors(document: Path) -> set[str]:
    """GitHub's heading anchors: lower-cased, punctuation dropped, spaces as hyphens."""
    anchors: set[str] = set()
    text = _without_code_blocks(document.read_text())
    for heading in re.findall(r"^#{1,6} (.+)$", text, re.MULTILINE):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        candidate, suffix = slug, 1
        while candidate in anchors:
            candidate, suffix = f"{slug}-{suffix}", suffix + 1
        anchors.add(candidate)
    return anchors


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda path: path.name)
def test_relative_links_resolve(document: Path) -> None:
    """Every relative link points at an existing file and, with #anchor, at one of its headings."""
    for match in LINK.finditer(_without_code(document.read_text())):
        target = match["target"]
        if re.match(r"[a-z]+:", target):  # https:, mailto:
            continue
        path_part, _, anchor = target.partition("#")
        linked = (document.parent / path_part).resolve() if path_part else document
        assert linked.exists(), f"{document.name}: {target}"
        if anchor:
            assert linked.suffix == ".md", f"{document.name}: {target}"
            assert anchor in _anchors(linked), f"{document.name}: {target}"


def test_docs_exist_and_the_readme_stays_short() -> None:
    assert {path.name for path in DOCS.glob("*.md")} >= {
        "model.md",
        "benchmark.md",
        "operations.md",
        "protocols.md",
    }
    assert len(README.read_text().splitlines()) <= 350
