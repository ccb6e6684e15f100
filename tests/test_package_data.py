"""Data files ship inside the package (no wheel is built: the checks read what a wheel would hold).

`export omop` after a plain `pip install .` needs the official OMOP CDM 5.4 DDL; it lives in
the package (hyperinflam/omop_cdm54) and is found through importlib.resources, and every data
file under src/hyperinflam is matched by a package-data pattern of pyproject.toml, so that the
wheel holds it.
"""

from __future__ import annotations

import tomllib
from importlib import resources
from pathlib import Path, PurePosixPath

import hyperinflam

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "hyperinflam"
#: The DDL files the exporter reads, with the table count of CDM 5.4 (39 CREATE TABLE statements
#: in OHDSI/CommonDataModel v5.4.2 for each dialect, counted by hand in the release).
DDL_FILES = ("duckdb/omopcdm_duckdb_5.4_ddl.sql", "postgresql/omopcdm_postgresql_5.4_ddl.sql")
CDM54_TABLES = 39


def _package_data_patterns() -> list[str]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    return config["tool"]["setuptools"]["package-data"]["hyperinflam"]


def test_importlib_resources_finds_the_omop_ddl():
    ddl = resources.files("hyperinflam") / "omop_cdm54" / "ddl"
    for name in DDL_FILES:
        item = ddl.joinpath(*name.split("/"))
        assert item.is_file(), f"{name} is not in the installed package"
        text = item.read_text(encoding="utf-8")
        assert sum(line.startswith("CREATE TABLE") for line in text.splitlines()) == CDM54_TABLES
        assert "@cdmDatabaseSchema." in text  # the exporter substitutes the schema
    assert (resources.files("hyperinflam") / "omop_cdm54" / "SOURCE.md").is_file()


def test_the_exporter_reads_the_ddl_from_the_package():
    from hyperinflam.exports import omop as export_omop

    package = Path(hyperinflam.__file__).resolve().parent
    assert Path(export_omop.DDL_DIR).resolve().is_relative_to(package)
    for name in DDL_FILES:
        assert (Path(export_omop.DDL_DIR) / name).is_file()


def test_every_data_file_of_the_package_is_in_package_data():
    patterns = _package_data_patterns()
    files = [p.relative_to(PACKAGE).as_posix() for p in PACKAGE.rglob("*")
             if p.is_file() and p.suffix not in (".py", ".pyc") and "__pycache__" not in p.parts]
    assert files
    missing = [f for f in files if not any(_ships(f, pattern) for pattern in patterns)]
    assert not missing, f"data files a wheel would leave out (add them to package-data): {missing}"
    for pattern in patterns:  # no stale pattern
        assert any(_ships(f, pattern) for f in files), f"package-data {pattern!r} matches nothing"


def _ships(path: str, pattern: str) -> bool:
    """setuptools' package-data glob: ``*`` stays inside one folder level."""
    a, b = PurePosixPath(path), PurePosixPath(pattern)
    return len(a.parts) == len(b.parts) and a.match(pattern)


def test_the_shipped_clinical_reference_is_the_one_in_docs():
    """The report cites and lists the clinical reference the package ships
    (report/clinical-reference.md); it must be docs/clinical-reference.md to the byte, or a
    change to the reference would reach the docs but not the reports (or the reverse)."""
    shipped = resources.files("hyperinflam.report").joinpath("clinical-reference.md")
    docs = ROOT / "docs" / "clinical-reference.md"
    assert shipped.read_bytes() == docs.read_bytes(), (
        "copy docs/clinical-reference.md to src/hyperinflam/report/clinical-reference.md")
