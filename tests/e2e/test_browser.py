"""The analyst's journey in a real browser: Debian's chromium driven by Playwright.

Home -> Data (upload, save) -> Train (FT-Transformer tiny + LightGBM) -> Runs -> Score
(download CSV) -> Explain -> ROI (what-if). One test with named steps: a failing step saves a
screenshot to test-artifacts/ and says which step broke. With PAYOFF_SCREENSHOT=1 a full-page
screenshot of Home with data is written to docs/screenshot.png (the README shows it).
"""

from __future__ import annotations

import contextlib
import csv
import io
import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import REPO, log_tail
from tests.fixtures import make_tabular_frame, write_csv

pytestmark = pytest.mark.e2e

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
ARTIFACTS = REPO / "test-artifacts"
STEP_TIMEOUT_MS = 60_000
TRAIN_TIMEOUT_MS = 180_000
DATASET_NAME = "e2e loans"
N_ROWS = 200


@pytest.fixture(scope="module")
def browser_page(streamlit_server) -> Iterator:
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is not installed (CI installs Debian's chromium package)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        context = browser.new_context(
            viewport={"width": 1400, "height": 1000}, accept_downloads=True
        )
        page = context.new_page()
        page.set_default_timeout(STEP_TIMEOUT_MS)
        try:
            yield page
        finally:
            context.close()
            browser.close()


@contextlib.contextmanager
def step(page, name: str, server) -> Iterator[None]:
    """Run one step; on failure save a screenshot and add the server log to the message."""
    try:
        yield
    except Exception as exc:
        ARTIFACTS.mkdir(exist_ok=True)
        shot = ARTIFACTS / f"e2e-{name}.png"
        with contextlib.suppress(Exception):
            page.screenshot(path=str(shot), full_page=True)
        raise AssertionError(
            f"step {name!r} failed ({exc}); screenshot {shot}\nserver log:\n{log_tail(server.log)}"
        ) from exc


def settle(page) -> None:
    """Wait until the script run finished (Streamlit's 'Running...' status is gone)."""
    page.wait_for_timeout(300)
    page.locator('[data-testid="stStatusWidget"]').wait_for(state="hidden")


def go_to(page, label: str, heading: str | None = None) -> None:
    """Open a page from the sidebar navigation and wait for its title."""
    page.locator('[data-testid="stSidebarNav"]').get_by_role("link", name=label, exact=True).click()
    page.get_by_role("heading", name=heading or label).first.wait_for()
    settle(page)


def selected(page, label: str) -> str:
    """The shown value of the selectbox labelled ``label`` (a combobox input)."""
    return page.get_by_role("combobox", name=label, exact=True).input_value()


def choose(page, label: str, option: str | re.Pattern) -> None:
    """Pick ``option`` in the selectbox labelled ``label``."""
    box = page.locator('[data-testid="stSelectbox"]').filter(
        has=page.get_by_role("combobox", name=label, exact=True)
    )
    box.get_by_role("button", name="Open").click()
    page.get_by_role("option", name=option).first.click()
    settle(page)


def grid_cell(page, text: str):
    """A cell of an st.dataframe: the grid is drawn on a canvas, and its accessible (hidden)
    table carries the text, so cells are waited for as attached, not visible."""
    cell = page.locator('[data-testid="stDataFrame"] [role="gridcell"]').filter(has_text=text)
    cell.first.wait_for(state="attached")
    return cell


def metric_value(page, label: str) -> str:
    metric = page.locator('[data-testid="stMetric"]').filter(
        has=page.get_by_text(label, exact=True)
    )
    return metric.locator('[data-testid="stMetricValue"]').inner_text()


def test_analyst_journey(streamlit_server, browser_page, tmp_path) -> None:
    page, server = browser_page, streamlit_server
    upload = write_csv(tmp_path / f"{DATASET_NAME}.csv", make_tabular_frame(N_ROWS, seed=3))

    with step(page, "home", server):
        page.goto(server.url)
        page.get_by_role("heading", name="Payoff").first.wait_for()
        settle(page)
        grid_cell(page, "Credit scoring (sample)")
        grid_cell(page, "Food reviews (sample)")

    with step(page, "data", server):
        go_to(page, "Data")
        page.get_by_text("Upload a new CSV", exact=True).click()
        settle(page)
        page.locator('input[type="file"]').set_input_files(str(upload))
        page.get_by_text(f"Read {N_ROWS} rows × 5 columns").wait_for()
        settle(page)
        page.get_by_role("button", name="Save dataset").click()
        page.get_by_text(re.compile(rf"Saved dataset #\d+ {DATASET_NAME}")).wait_for()
        settle(page)

    with step(page, "train", server):
        go_to(page, "Train")
        assert DATASET_NAME in selected(page, "Dataset")
        page.get_by_text("Logistic regression (baseline)", exact=True).click()
        settle(page)
        choose(page, "Size", "tiny")
        page.get_by_role("slider", name="Time budget per model (seconds)").focus()
        page.keyboard.press("Home")
        settle(page)
        page.get_by_role("button", name="Start training").click()
        settle(page)
        page.get_by_text(re.compile(r"FT-Transformer tiny · succeeded")).wait_for(
            timeout=TRAIN_TIMEOUT_MS
        )
        page.get_by_text(re.compile(r"LightGBM \(baseline\) · succeeded")).wait_for(
            timeout=TRAIN_TIMEOUT_MS
        )

    with step(page, "runs", server):
        go_to(page, "Runs")
        page.get_by_role("heading", name="Leaderboard").wait_for()
        assert grid_cell(page, "FT-Transformer tiny").count() == 1
        assert grid_cell(page, "LightGBM (baseline)").count() == 1
        assert grid_cell(page, "succeeded").count() == 2

    with step(page, "score", server):
        go_to(page, "Score")
        choose(page, "Model", re.compile("FT-Transformer tiny"))
        page.get_by_text("A dataset in Payoff", exact=True).click()
        settle(page)
        choose(page, "Dataset", re.compile(DATASET_NAME))
        reasons = page.get_by_role("spinbutton", name=re.compile("Add the top three reasons"))
        reasons.fill("10")
        reasons.press("Enter")
        settle(page)
        page.get_by_role("button", name="Score", exact=True).click()
        # Scoring is a background job: a worker may have to start first.
        page.get_by_text(re.compile(r"Batch #\d+")).wait_for(timeout=TRAIN_TIMEOUT_MS)
        settle(page)
        with page.expect_download() as download:
            page.get_by_role("button", name="Download CSV").click()
        saved = tmp_path / "scores.csv"
        download.value.save_as(saved)
        rows = list(csv.DictReader(io.StringIO(saved.read_text())))
        assert len(rows) == N_ROWS
        assert "probability" in rows[0]
        assert all(0.0 <= float(r["probability"]) <= 1.0 for r in rows)

    with step(page, "explain", server):
        go_to(page, "Explain")
        choose(page, "Model", re.compile("FT-Transformer tiny"))
        rows_slider = page.get_by_role("slider", name="Rows to explain")
        if not rows_slider.count():
            page.get_by_text("New explanation").click()
            settle(page)
        rows_slider.focus()
        page.keyboard.press("Home")
        settle(page)
        for _ in range(2):
            page.keyboard.press("ArrowRight")
        settle(page)
        page.get_by_role("button", name="Explain", exact=True).click()
        page.get_by_text(re.compile("add up to the model's output")).wait_for(
            timeout=TRAIN_TIMEOUT_MS
        )
        settle(page)

    with step(page, "fairness", server):
        go_to(page, "Fairness & segments")
        # The page scores the test part and computes the group table first: on a busy
        # 2-core machine that can outlast Playwright's default 30 s.
        page.get_by_text("Demographic parity ratio").first.wait_for(timeout=TRAIN_TIMEOUT_MS)
        page.get_by_text(re.compile("four-fifths rule")).first.wait_for(timeout=TRAIN_TIMEOUT_MS)
        settle(page)

    with step(page, "roi", server):
        go_to(page, "ROI & what-if")
        page.get_by_text("Operating threshold", exact=True).first.wait_for(timeout=TRAIN_TIMEOUT_MS)
        page.get_by_text(re.compile("^Verdict: ")).first.wait_for(timeout=TRAIN_TIMEOUT_MS)
        before = metric_value(page, "Monthly value vs today")
        volume = page.get_by_role("spinbutton", name="Decisions per month", exact=True)
        current = float(volume.input_value())
        volume.fill(str(int(current * 3)))
        volume.press("Enter")
        settle(page)
        page.wait_for_function(
            """([label, before]) => [...document.querySelectorAll('[data-testid="stMetric"]')]
                .some(m => m.innerText.includes(label) && !m.innerText.includes(before))""",
            arg=["Monthly value vs today", before],
        )
        assert metric_value(page, "Monthly value vs today") != before

    if os.environ.get("PAYOFF_SCREENSHOT") == "1":
        with step(page, "screenshot", server):
            go_to(page, "Home", "Payoff")
            page.get_by_text("Recent activity").wait_for()
            (REPO / "docs").mkdir(exist_ok=True)
            page.screenshot(path=str(REPO / "docs" / "screenshot.png"), full_page=True)
