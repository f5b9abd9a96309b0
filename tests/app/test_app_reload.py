"""Hot reload under load: a new version swaps in with zero failures; broken ones never serve."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from app.main import create_app
from app.settings import Settings
from tests.app.conftest import wait_until

HAMMER_SECONDS = 60.0


def _reload_failures(client: TestClient) -> float:
    for line in client.get("/metrics").text.splitlines():
        if line.startswith('sentiment_model_reloads_total{outcome="failure"}'):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_new_version_swaps_in_under_load_and_broken_versions_never_serve(
    make_settings: Callable[..., Settings],
    publish: Callable[..., Path],
    publish_broken: Callable[[int, str], Path],
    caplog: Any,
) -> None:
    app = create_app(make_settings(reload_interval_seconds=0.1))
    with TestClient(app) as client:
        stop = threading.Event()
        per_thread: list[list[tuple[int, str | None]]] = [[], []]

        def hammer(outcomes: list[tuple[int, str | None]]) -> None:
            deadline = time.monotonic() + HAMMER_SECONDS
            for i in range(100_000):
                if stop.is_set() or time.monotonic() > deadline:
                    return
                response = client.post("/v1/predict", json={"text": f"Review {i}: a fine film."})
                version = (
                    response.json().get("model_version") if response.status_code == 200 else None
                )
                outcomes.append((response.status_code, version))

        def served() -> int:
            return sum(len(outcomes) for outcomes in per_thread)

        threads = [threading.Thread(target=hammer, args=(outcomes,)) for outcomes in per_thread]
        for thread in threads:
            thread.start()
        try:
            assert wait_until(lambda: served() >= 20, seconds=20)
            publish(2)
            assert wait_until(
                lambda: client.get("/readyz").json().get("model_version") == "2", seconds=30
            )
            before_broken = served()
            assert wait_until(lambda: served() >= before_broken + 20, seconds=20)

            publish_broken(3, "tampered_sample")
            publish_broken(4, "missing_graph")
            assert wait_until(lambda: _reload_failures(client) >= 2, seconds=30)
            settled = served()
            # Several more polls of the directory while requests keep flowing.
            time.sleep(0.5)
            assert wait_until(lambda: served() >= settled + 20, seconds=20)
        finally:
            stop.set()
            for thread in threads:
                thread.join(HAMMER_SECONDS)

        all_outcomes = [outcome for outcomes in per_thread for outcome in outcomes]
        assert all(status == 200 for status, _ in all_outcomes), "a request failed during reload"
        assert {version for _, version in all_outcomes} == {"1", "2"}
        for outcomes in per_thread:
            versions = [version for _, version in outcomes]
            first_new = versions.index("2")
            assert set(versions[first_new:]) == {"2"}, "served the old version after the swap"
        assert client.get("/readyz").json()["model_version"] == "2"
        # The status lists the version serving and the refused ones, with the reason.
        status = client.get("/v1/models/sentiment").json()["model_version_status"]
        states = {entry["version"]: entry for entry in status}
        assert [v for v, entry in states.items() if entry["state"] == "AVAILABLE"] == ["2"]
        assert states["4"]["state"] == states["3"]["state"] == "END"
        assert "saved_model.pb is missing" in states["4"]["status"]["error_message"]
        assert "sample replay differs" in states["3"]["status"]["error_message"]
        # Each broken version is refused (and logged) once, not on every poll.
        assert _reload_failures(client) == 2
        refusals = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
        assert len(refusals) == 2
        assert any("version 3" in message for message in refusals)
        assert any("version 4" in message for message in refusals)
        metrics = client.get("/metrics").text
        assert 'sentiment_model_info{name="sentiment",version="2"} 1.0' in metrics
        assert 'version="1"' not in metrics.split("sentiment_model_info", 1)[1].split("# HELP")[0]
        assert 'sentiment_model_reloads_total{outcome="success"} 2.0' in metrics
