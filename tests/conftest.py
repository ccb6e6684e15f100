"""Shared fixtures: Debian's Chromium driven by Playwright for the browser tests.

Needs /usr/bin/chromium (Debian package ``chromium``: ``apt-get install -y chromium``; scripts/test.sh
installs it); Playwright's own browser download cannot work offline. Set HYPERINFLAM_SKIP_BROWSER=1
to skip the browser tests in a local pytest run (never skipped silently otherwise: a missing browser
fails); scripts/test.sh, the CI command, unsets it so CI never skips them.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
# Flags for headless Chromium as root on a machine without network (stack notes; machine notes):
# no sandbox (root), no GPU, and no background connections to Google services.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage"]


def require_chromium(path: Path = CHROMIUM) -> None:
    """Skip when HYPERINFLAM_SKIP_BROWSER=1; otherwise FAIL (never skip silently) when Debian's
    Chromium is not installed."""
    if os.environ.get("HYPERINFLAM_SKIP_BROWSER") == "1":
        pytest.skip("HYPERINFLAM_SKIP_BROWSER=1 is set by you: the report and the web pages are "
                    "not checked in Chromium in this run. scripts/test.sh (the README's test "
                    "command and .ci/run) unsets it, so CI always runs these tests.")
    if not path.exists():
        pytest.fail(f"{path} is missing: install Debian's chromium "
                    "(apt-get update && apt-get install -y chromium), or set "
                    "HYPERINFLAM_SKIP_BROWSER=1 to skip the browser tests", pytrace=False)


@pytest.fixture(autouse=True, scope="session")
def _plan_cache_in_a_temporary_folder(tmp_path_factory):
    """Compiled plans (hyperinflam.engine.plans) of the test run go to a folder of their own,
    never to the user's cache folder."""
    folder = tmp_path_factory.mktemp("plan-cache")
    previous = os.environ.get("HYPERINFLAM_CACHE_DIR")
    os.environ["HYPERINFLAM_CACHE_DIR"] = str(folder)
    yield folder
    if previous is None:
        os.environ.pop("HYPERINFLAM_CACHE_DIR", None)
    else:
        os.environ["HYPERINFLAM_CACHE_DIR"] = previous


@pytest.fixture(scope="session")
def browser():
    """One headless Chromium for every browser test of the session."""
    require_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


#: Small and quick settings for the one local Spark session of the test run.
#: Whole-stage code generation and adaptive re-planning cost more than they save on a few
#: thousand rows; neither changes a result.
SPARK_TEST_CONF = {"spark.sql.shuffle.partitions": "2", "spark.driver.memory": "1g",
                   "spark.default.parallelism": "2", "spark.sql.codegen.wholeStage": "false",
                   "spark.sql.adaptive.enabled": "false"}


def require_pyspark() -> None:
    """Skip when HYPERINFLAM_SKIP_SPARK=1; otherwise FAIL (never skip silently) without pyspark
    (the ``spark`` extra), as a missing Chromium does."""
    if os.environ.get("HYPERINFLAM_SKIP_SPARK") == "1":
        pytest.skip("HYPERINFLAM_SKIP_SPARK=1 is set by you: the Spark half of the engine suite "
                    "does not run. scripts/test.sh (the README's test command and .ci/run) unsets "
                    "it, so CI always runs it.")
    try:
        import pyspark  # noqa: F401
    except ImportError:
        pytest.fail("pyspark is not installed: pip install -e '.[test]' (it brings the spark "
                    "extra), or set HYPERINFLAM_SKIP_SPARK=1 to skip the Spark tests",
                    pytrace=False)


@pytest.fixture(scope="session")
def spark():
    """The one SparkSession (local[2]) of the test run, shared by every Spark test; stopped at
    the end of the run. Tests that need their own temporary views use ``spark.newSession()``
    (same SparkContext, no second start)."""
    require_pyspark()
    from hyperinflam.engine import spark_session

    session = spark_session("local[2]", SPARK_TEST_CONF)
    yield session
    session.stop()


#: Every engine the criterion suite runs on (Spark: slow, so ``pytest -m "not slow"`` skips it).
ENGINES = ["duckdb", pytest.param("spark", marks=pytest.mark.slow)]


@pytest.fixture(scope="session", params=ENGINES)
def backend(request):
    """An ibis connection of each engine, as ibis's own backend test suite runs every test on
    every backend: DuckDB in memory, and the one shared local Spark session. A criterion test
    module evaluates all its cases in one query per engine (tests/widetable.py)."""
    import ibis

    if request.param == "duckdb":
        con = ibis.duckdb.connect()
        yield con
        con.disconnect()
        return
    yield ibis.pyspark.connect(request.getfixturevalue("spark"))


#: Test modules whose tests not marked slow took more than 5 s in all (set-up, call and tear-down
#: of every test; ``pytest -m "not slow" --durations=0`` on 2026-12-02, the 2-core sandbox at
#: rest; docs/performance.md, "The quick test subset"): module -> seconds measured. Slow as a
#: whole, so that ``pytest -m "not slow"`` stays under a minute; CI runs them all.
SLOW_MODULES: dict[str, int] = {
    "test_cli_network": 65,
    "test_web_plans": 44,
    "test_report": 27,
    "test_load_omop_oddities": 21,
    "test_study_analysis": 18,
    "test_screen": 18,
    "test_study_phenotype": 18,
    "test_web_security": 17,
    "test_domains": 16,
    "test_study_cohort": 16,
    "test_study_recognition": 15,
    "test_web_labels": 14,
    "test_cli_messages": 13,
    "test_cli_options": 11,
    "test_load_fhir": 10,
    "test_web_schema": 9,
    "test_support_recorded": 9,
    "test_load_meds": 9,
    "test_load_omop": 8,
    "test_synth_db": 8,
    "test_roundtrip_omop": 8,
    "test_load_meds_files": 8,
    "test_web_app": 8,
    "test_study_end_to_end": 8,
    "test_synth": 6,
    "test_features": 5,
    "test_recognition": 5,
    "test_load_atomic": 5,
    "test_infections": 5,
}


def pytest_collection_modifyitems(items):
    """Tests that start Chromium or Spark, and the modules of SLOW_MODULES, are slow:
    ``pytest -m "not slow"``, the quick subset, leaves them out (CI runs everything)."""
    for item in items:
        if {"browser", "spark"} & set(getattr(item, "fixturenames", ())) \
                or item.module.__name__.rpartition(".")[2] in SLOW_MODULES:
            item.add_marker(pytest.mark.slow)
