"""The playground page in a real browser: Debian's headless Chromium driven by Selenium.

It runs against a real uvicorn server on 127.0.0.1 (bench.servers) serving the newest shipped
version with the explain signature, behind an API key, so the page's key field and the key
on its fetches are exercised too. ``.ci/run`` installs chromium and chromium-driver; the test
skips, saying why, only where they are not installed.

``pytest --playground-screenshot=PATH`` (option defined in tests/conftest.py) also saves the
screenshot to PATH; ``make playground-screenshot`` writes the README's, docs/playground.png.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from bench.servers import SERVICE, Server, running_server
from tests.app.conftest import publish_version
from tests.app.explain_models import explain_version_dir
from tests.paths import REPO_ROOT

pytestmark = pytest.mark.e2e

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
API_KEY = "playground-key"
WAIT_SECONDS = 30
TEXT = "A wonderful film with brilliant acting, but the ending was not good. I loved it."


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    base = tmp_path_factory.mktemp("playground") / "sentiment"
    base.mkdir()
    source = explain_version_dir()
    publish_version(base, source, int(source.name))  # the page shows the shipped number
    env = {
        "SENTIMENT_MODEL_BASE_PATH": str(base),
        "SENTIMENT_RELOAD_INTERVAL_SECONDS": "0",
        "SENTIMENT_API_KEY": API_KEY,
        "SENTIMENT_WORKERS": "1",  # one model copy is enough for one browser
    }
    with running_server("playground", SERVICE, env, REPO_ROOT, "/readyz", 90) as server:
        yield server


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    missing = [path for path in (CHROMIUM, CHROMEDRIVER) if not Path(path).exists()]
    if missing:
        pytest.skip(
            f"{', '.join(missing)} not installed (apt-get install chromium chromium-driver)"
        )
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service as DriverService

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                     "--window-size=1200,1500", "--disable-gpu"):  # fmt: skip
        options.add_argument(argument)
    driver = webdriver.Chrome(service=DriverService(CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def screenshot_target(request: pytest.FixtureRequest) -> Path | None:
    """Where ``--playground-screenshot`` asks for a copy of the screenshot (None: nowhere)."""
    target = request.config.getoption("--playground-screenshot")
    return Path(target) if target else None


def test_playground_scores_explains_and_scores_a_file(
    served: Server, browser: Any, tmp_path: Path, screenshot_target: Path | None
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(browser, WAIT_SECONDS)
    browser.get(served.url + "/")
    assert browser.title == "Sentiment playground"

    # An API key is configured: the page asks for it (its first fetch got 401).
    key_field = wait.until(ec.visibility_of_element_located((By.ID, "api-key")))
    key_field.send_keys(API_KEY)
    key_field.send_keys("\t")  # change event: the card loads with the key
    wait.until(lambda d: "test accuracy" in d.find_element(By.ID, "card").text)  # the <dl> stays
    card_text = browser.find_element(By.ID, "card").text
    assert "test accuracy" in card_text and "calibration (ECE)" in card_text

    # Type: scored as you type, label and probability shown, words coloured.
    browser.find_element(By.ID, "text").send_keys(TEXT)
    # The whole text is rendered once its last keystroke's answer is in (and only then: an
    # earlier answer shows a prefix), so the elements below are final.
    wait.until(lambda d: d.find_element(By.ID, "highlighted").text == TEXT)
    assert browser.find_element(By.ID, "label").text in ("positive", "negative")
    shown_probability = float(browser.find_element(By.ID, "probability").text)
    with httpx.Client(base_url=served.url, headers={"X-API-Key": API_KEY}) as client:
        expected = client.post("/v1/predict", json={"text": TEXT}).json()
    assert shown_probability == pytest.approx(expected["probability"], abs=1e-4)
    assert browser.find_element(By.ID, "label").text == expected["label"]
    words = browser.find_elements(By.CSS_SELECTOR, "#highlighted .w")
    assert {word.text.lower() for word in words} >= {"wonderful", "brilliant", "loved", "good"}
    shares = {word.text.lower(): float(word.get_attribute("data-share")) for word in words}
    assert shares["wonderful"] > 0 and shares["loved"] > 0
    assert len(browser.find_elements(By.CSS_SELECTOR, "#strongest li")) == 10
    _screenshot(browser, tmp_path, screenshot_target)

    # A small CSV (quotes, commas, an empty text) through /v1/predict/batch in chunks.
    csv_path = tmp_path / "reviews.csv"
    csv_path.write_text(
        'id,text\n1,"Great movie, loved it"\n2,"Dull, ""boring"" and far too long"\n3,\n'
        "4,Not bad at all\n"
    )
    assert not browser.find_element(By.ID, "download").is_displayed()
    browser.find_element(By.ID, "file").send_keys(str(csv_path))
    wait.until(ec.visibility_of_element_located((By.ID, "download")))
    status = browser.find_element(By.ID, "file-status").text
    assert status == "Done: 4 texts scored, 1 refused."
    rows = browser.find_elements(By.CSS_SELECTOR, "#file-preview tbody tr")
    cells = [[cell.text for cell in row.find_elements(By.TAG_NAME, "td")] for row in rows]
    assert [row[1] for row in cells] == [
        "Great movie, loved it", 'Dull, "boring" and far too long', "", "Not bad at all"
    ]  # fmt: skip
    assert cells[0][2] == "positive" and cells[1][2] == "negative"
    assert cells[2][2] == "empty text" and cells[2][3] == ""
    assert all(re.fullmatch(r"0\.\d{4}|1\.0000", row[3]) for row in (cells[0], cells[1]))
    link = browser.find_element(By.ID, "download")
    assert link.get_attribute("download") == "reviews-scored.csv"
    assert link.get_attribute("href").startswith("blob:")


def _screenshot(browser: Any, tmp_path: Path, target: Path | None) -> None:
    """Always into tmp_path; also to ``target`` (``--playground-screenshot``) when given."""
    shot = tmp_path / "playground.png"
    assert browser.save_screenshot(str(shot))
    if target is not None:
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, target)
