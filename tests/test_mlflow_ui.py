"""The MLflow UI as a person uses it: a real ``mlflow server`` over a store a sweep filled, driven
in headless Chromium (Debian's ``chromium``) by Playwright.

Needs ``/usr/bin/chromium`` (``apt-get install chromium``; ``.ci/run`` installs it) or
``CLASSVIS_CHROMIUM=/path/to/chrome``; without one the test is skipped, unless
``CLASSVIS_REQUIRE_BROWSER=1`` (as in CI) makes that a failure. Screenshots are saved under
``test-artifacts/`` (or ``$CLASSVIS_TEST_ARTIFACTS``).
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest
from conftest import ROOT, mlflow_server_at
from test_sweeps import runs_of, sweeps_of
from test_train_e2e import client_for, train

pytestmark = [pytest.mark.slow, pytest.mark.browser]

# what a headless Chromium needs on a machine with a closed network (and as root in CI)
CHROMIUM_ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"]


def chromium() -> str:
    found = os.environ.get("CLASSVIS_CHROMIUM") or shutil.which("chromium") or shutil.which(
        "chromium-browser")
    if found:
        return found
    message = ("no Chromium: install Debian's chromium (apt-get install chromium) or set "
               "CLASSVIS_CHROMIUM")
    if os.environ.get("CLASSVIS_REQUIRE_BROWSER") == "1":
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture
def screenshots() -> Path:
    folder = Path(os.environ.get("CLASSVIS_TEST_ARTIFACTS", ROOT / "test-artifacts"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture
def mlflow_server(tmp_path):
    """A store filled by a real two-job sweep, served by ``mlflow server`` on 127.0.0.1."""
    db = tmp_path / "store.db"
    sweep = train(tmp_path, "-m", "dataset=digits", "seed=0,1", "trainer.teacher.epochs=2",
                  "trainer.student.steps=200", f"tracking.uri=sqlite:///{db}",
                  "tracking.experiment=ui-check", f"hydra.sweep.dir={tmp_path}/sweep")
    assert sweep.returncode == 0, sweep.stderr[-3000:]
    # a later sweep with a weaker extractor: sorted by result, it ranks below the first one
    weaker = train(tmp_path, "-m", "dataset=digits", "seed=0", "extractor=class_average",
                   "trainer.teacher.epochs=2", "trainer.student.steps=200",
                   f"tracking.uri=sqlite:///{db}", "tracking.experiment=ui-check",
                   f"hydra.sweep.dir={tmp_path}/weaker")
    assert weaker.returncode == 0, weaker.stderr[-3000:]
    with mlflow_server_at(tmp_path, f"sqlite:///{db}") as url:
        yield url, db


def close_assistant(page) -> None:
    """Fold away MLflow's side panel (an assistant) so the screenshot shows the runs."""
    close = page.get_by_role("button", name="Close", exact=True)
    if close.count():
        close.first.click()


def numbers_by_row(page) -> list[float]:
    """The first number of each row of the runs table, in the order the rows are shown (the
    grid positions its rows, so the DOM's order is not the order on screen)."""
    rows = page.locator("[role=row][row-index]")
    shown: dict[int, float] = {}
    for index in range(rows.count()):
        numbers = re.findall(r"\b0\.\d+", rows.nth(index).inner_text())
        if numbers:
            shown.setdefault(int(rows.nth(index).get_attribute("row-index")), float(numbers[0]))
    return [shown[key] for key in sorted(shown)]


def shown_numbers(page) -> list[float]:
    text = page.get_by_role("grid").first.inner_text() if page.get_by_role(
        "grid").count() else page.inner_text("body")
    return [float(value) for value in re.findall(r"\b0\.\d+", text)]


def test_ui_gives_the_sweeps_result_and_shows_runs_models_and_artifacts(mlflow_server,
                                                                         screenshots):
    sync_api = pytest.importorskip("playwright.sync_api")
    url, db = mlflow_server
    parent, weaker = sweeps_of(db, "ui-check")  # oldest first
    runs = sorted((r for r in runs_of(db, "ui-check")
                   if r.data.tags["mlflow.parentRunId"] == parent.info.run_id),
                  key=lambda r: r.data.tags["seed"])
    assert len(runs) == 2
    experiment_id = runs[0].info.experiment_id
    best = parent.data.metrics["student/accuracy"]
    assert weaker.data.metrics["student/accuracy"] < best  # the order sorting must give
    assert best == max(r.data.metrics["student/accuracy"] for r in runs) or len(
        {r.data.tags["hydra.overrides"].replace(f"seed={r.data.tags['seed']}", "")
         for r in runs}) == 1  # one config over two seeds: its mean is the sweep's result
    # the experiment says it is model training (the UI of MLflow 3.17 follows its sidebar's
    # switch instead, a per-browser choice; the links classvis prints ask for the view)
    client = client_for(db)
    assert client.get_experiment(experiment_id).tags["mlflow.experimentKind"] == (
        "custom_model_development")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium(), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 2200, "height": 900})
            page.set_default_timeout(60_000)
            # the experiment page, in the UI's "Model training" view
            page.goto(f"{url}/#/experiments/{experiment_id}/runs?workflowType=machine_learning")
            sweep = page.get_by_text(re.compile(r"^sweep: dataset=digits seed=0,1 ")).first
            sweep.wait_for()
            page.get_by_text(re.compile(r"^sweep: dataset=digits seed=0 ")).first.wait_for()
            # show the student's accuracy as a column, as a user does from "Columns"
            page.get_by_role("button", name="Columns").click()
            page.get_by_placeholder("Search", exact=False).first.fill("student/accuracy")
            # the option whose whole name is student/accuracy (best/student/accuracy and each
            # config's config/<config>/student/accuracy match the search too)
            page.locator("xpath=//*[not(self::strong)][normalize-space(.)='student/accuracy']"
                         ).first.click()
            page.keyboard.press("Escape")
            page.get_by_role("columnheader", name="student/accuracy").first.wait_for()
            close_assistant(page)
            page.wait_for_timeout(1000)
            # folded, the sweep's row shows its result: the best config's student accuracy
            folded = numbers_by_row(page)
            assert folded == pytest.approx([weaker.data.metrics["student/accuracy"], best],
                                           abs=1e-3), folded  # newest first, by default
            page.screenshot(path=str(screenshots / "mlflow_ui_sweep_folded.png"))
            # sorted by student/accuracy (MLflow flattens the tree when it sorts; the sweeps
            # alone: filter by their tag), the sweeps rank by their result, not by age
            search = page.get_by_placeholder(re.compile("metrics.rmse"))
            search.fill("tags.`classvis.kind` = 'sweep'")
            search.press("Enter")
            page.get_by_role("button", name=re.compile("^Sort")).click()
            page.get_by_placeholder("Search").last.fill("student/accuracy")
            page.locator("xpath=//*[@role='menuitemcheckbox']"
                         "[normalize-space(.)='student/accuracy']").first.click()
            page.get_by_role("button", name="Sort: student/accuracy").click()
            page.get_by_test_id("sort-select-desc").click()
            page.keyboard.press("Escape")
            page.wait_for_timeout(1500)
            ranked = numbers_by_row(page)
            assert ranked == pytest.approx([best, weaker.data.metrics["student/accuracy"]],
                                           abs=1e-3), ranked
            page.screenshot(path=str(screenshots / "mlflow_ui_sweeps_ranked.png"))
            search.fill("")
            search.press("Enter")
            page.get_by_role("button", name=re.compile("^Sort")).click()
            page.get_by_placeholder("Search").last.fill("Created")
            page.locator("xpath=//*[@role='menuitemcheckbox'][normalize-space(.)='Created']"
                         ).first.click()
            page.keyboard.press("Escape")
            page.wait_for_timeout(1500)
            # unfolded, its jobs' runs, named by what the sweep varies first
            sweep.locator("xpath=ancestor::div[@role='gridcell'][1]").locator(
                "button[data-component-id*='runnamecellrenderer']").click()
            for run in runs:
                assert run.info.run_name.startswith(f"seed={run.data.tags['seed']} | digits")
                page.get_by_text(run.info.run_name, exact=True).first.wait_for()
            page.wait_for_timeout(1000)
            shown = shown_numbers(page)
            for run in runs:
                accuracy = run.data.metrics["student/accuracy"]
                assert 0.5 < accuracy <= 1.0
                assert any(abs(value - accuracy) < 1e-3 for value in shown), (accuracy, shown)
            page.screenshot(path=str(screenshots / "mlflow_ui_experiment.png"))

            # a run's page: its artifacts hold the confusion matrix and the visualization grid
            page.get_by_role("link", name=runs[0].info.run_name).first.click()
            page.wait_for_url(re.compile(f"/runs/{runs[0].info.run_id}"))
            page.get_by_role("tab", name="Artifacts").click()
            page.get_by_text("visualizations.png", exact=True).first.wait_for()
            page.get_by_text("confusion", exact=True).first.click()
            page.get_by_text("student.png", exact=True).first.wait_for()
            page.get_by_text("visualizations.png", exact=True).first.click()
            preview = page.locator("img[src*='visualizations.png'], img[src^='blob:']").first
            preview.wait_for()
            assert preview.evaluate("image => image.naturalWidth") > 100
            page.screenshot(path=str(screenshots / "mlflow_ui_run_artifacts.png"))

            # the run's student as a logged model: named by what it is, its page lists its
            # metrics and the datasets they were measured on
            (model,) = client.search_logged_models(
                experiment_ids=[experiment_id],
                filter_string=f"source_run_id = '{runs[0].info.run_id}'")
            assert model.name == "digits-linear-student"
            page.goto(f"{url}/#/experiments/{experiment_id}/models/{model.model_id}"
                      "?workflowType=machine_learning")
            page.get_by_text("digits-linear-student").first.wait_for()
            page.get_by_text("student/accuracy", exact=True).first.wait_for()
            page.get_by_text(re.compile(r"^digits/test")).first.wait_for()
            body = page.inner_text("body")
            assert re.search(r"Metrics \([1-9]", body), body[:2000]
            page.screenshot(path=str(screenshots / "mlflow_ui_logged_model.png"))
        finally:
            browser.close()
