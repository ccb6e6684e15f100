"""The declarative study definition: a TOML file validated by pydantic.

A study file has the sections ``[study]``, ``[cohort]``, ``[windows]``, ``[[timepoints]]``,
``[markers]``, ``[cotherapies]``, ``[outcomes]``, ``[analysis]`` and ``[published]``; every key
has a default taken from the
clinical reference (docs/clinical-reference.md §10.4 and §12.1-§12.8, §12.29, §12.32-§12.34,
§12.39), so a study file only states what differs. Unknown keys are errors (``extra="forbid"``)
and every error names the file, the section, the key and the allowed values.

``load_study("rajasekaran2014")`` loads the study shipped with the package
(``hyperinflam/studies/rajasekaran2014.toml``); any other argument is a path to a TOML file.
docs/study-definition.md documents every key.
"""

from __future__ import annotations

import os
import re
import tomllib
from datetime import date
from importlib import resources
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from hyperinflam.errors import StudyDefinitionError
from hyperinflam.vocabulary import Vocabulary

SHIPPED_STUDIES_PACKAGE = "hyperinflam"
SHIPPED_STUDIES_FOLDER = "studies"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


_vocabulary: Vocabulary | None = None


def _vocab() -> Vocabulary:
    global _vocabulary
    if _vocabulary is None:
        _vocabulary = Vocabulary()
    return _vocabulary


def _drug_name(name: str) -> str:
    """Resolve a drug name or alias (vocabulary/drugs.csv) to its canonical name."""
    key = name.strip().lower()
    for drug, row in _vocab().drugs.items():
        aliases = [a.strip().lower() for a in (row.get("aliases") or "").split("|") if a]
        if key == drug or key in aliases:
            return drug
    raise ValueError(f"unknown drug '{name}'; allowed: {', '.join(sorted(_vocab().drugs))} "
                     f"(or an alias listed in vocabulary/drugs.csv)")


class StudySection(_Section):
    """[study]: identification. ``id`` names the study in every results row."""

    id: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    title: str
    reference: str = ""
    description: str = ""


_REQUIRE = re.compile(
    r"^\s*([a-z][a-z0-9_]*)\s*(>=|<=|>|<|==)\s*(-?\d+(?:\.\d+)?|met)\s*$")


class RequiredCriterion(_Section):
    """A parsed ``require``, checked at the index time:

    * a marker threshold in canonical units, ``"ferritin >= 500"``, applied to the baseline value
      of that variable (chosen with the baseline window rules); or
    * a screening output at the index time (hyperinflam.screening.screen evaluated at each stay's first
      dose), ``"hscore_points >= 169"``, ``"hlh2004_met_count >= 5"`` or ``"hscore_ge_169 == met"``
      (column names: docs/screen-output.md).
    """

    variable: str
    operator: Literal[">=", "<=", ">", "<", "=="]
    threshold: float | Literal["met"]

    @property
    def is_marker(self) -> bool:
        return self.variable in _vocab().variables

    @property
    def criterion(self) -> str | None:
        """The criterion module whose output is required (None for a marker)."""
        if self.is_marker:
            return None
        return _criterion_of(self.variable)

    def __str__(self) -> str:
        value = self.threshold if isinstance(self.threshold, str) else f"{self.threshold:g}"
        return f"{self.variable} {self.operator} {value}"


def _criterion_of(column: str) -> str | None:
    from hyperinflam.criteria import discover

    names = sorted(discover(), key=len, reverse=True)  # longest prefix first (phoenix8 vs phoenix)
    return next((n for n in names if column.startswith(f"{n}_")), None)


class CohortSection(_Section):
    """[cohort]: who is in the case series (clinical reference §10.4; §12.7, §12.32).

    Age is in completed years at PICU admission, inclusive at both ends. The index event is the
    first administration of ``index_drug`` whose start lies within the PICU stay; the first
    qualifying stay per patient is kept; earlier exposure to the drug is flagged.
    """

    age_min_years: int = Field(0, ge=0, le=120)
    age_max_years: int = Field(21, ge=0, le=120)
    admitted_from: date | None = None
    admitted_to: date | None = None
    index_drug: str = "anakinra"
    first_qualifying_stay_only: bool = True
    require: str | None = None

    @field_validator("index_drug")
    @classmethod
    def _known_drug(cls, value: str) -> str:
        return _drug_name(value)

    @field_validator("require")
    @classmethod
    def _parse_require(cls, value: str | None) -> str | None:
        if value is None or value.strip() == "":
            return None
        match = _REQUIRE.match(value)
        if not match:
            raise ValueError(
                f"'{value}' is not a threshold; write 'NAME OP NUMBER' with OP one of "
                f">=, <=, >, <, ==, e.g. 'ferritin >= 500' (a marker, canonical unit), "
                f"'hscore_points >= 169' or 'hscore_ge_169 == met' (a screening output)")
        name, op, number = match.groups()
        if name in _vocab().variables:
            if number == "met":
                raise ValueError(f"'{value}': a marker needs a number, e.g. '{name} >= 500'")
        elif _criterion_of(name) is None:
            raise ValueError(
                f"unknown name '{name}': neither a vocabulary variable "
                f"({', '.join(sorted(_vocab().variables))}) nor a screening output column "
                f"(NAME_... of a criterion; see docs/screen-output.md)")
        elif number == "met" and op != "==":
            raise ValueError(f"'{value}': write '{name} == met'")
        return value.strip()

    @model_validator(mode="after")
    def _ranges(self) -> CohortSection:
        if self.age_min_years > self.age_max_years:
            raise ValueError(f"age_min_years: {self.age_min_years} must be <= age_max_years "
                             f"({self.age_max_years})")
        if self.admitted_from and self.admitted_to and self.admitted_from > self.admitted_to:
            raise ValueError(f"admitted_from: {self.admitted_from} must be on or before "
                             f"admitted_to ({self.admitted_to})")
        return self

    @property
    def required_criterion(self) -> RequiredCriterion | None:
        if self.require is None:
            return None
        var, op, number = _REQUIRE.match(self.require).groups()
        return RequiredCriterion(variable=var, operator=op,
                                 threshold=number if number == "met" else float(number))


class WindowsSection(_Section):
    """[windows]: hours relative to the index (clinical reference §10.4; §12.1-§12.2).

    Baseline: the value closest to the index within [baseline_from_hours, baseline_to_hours]
    (edges inclusive); equidistant values -> the earlier (pre-index) one. The trajectory span only
    selects values for the plots.

    ``day7_target_hours`` and ``day7_tolerance_hours`` are the founding design's one timepoint
    written the short way: a study without ``[[timepoints]]`` has one timepoint built from them
    (default 168 +/- 24 h, "day 7"). A study that lists ``[[timepoints]]`` may not set them.
    """

    baseline_from_hours: float = -24.0
    baseline_to_hours: float = 12.0
    day7_target_hours: float = 168.0
    day7_tolerance_hours: float = Field(24.0, ge=0)
    trajectory_from_days: float = -2.0
    trajectory_to_days: float = 10.0

    @model_validator(mode="after")
    def _ordered(self) -> WindowsSection:
        if self.baseline_from_hours > self.baseline_to_hours:
            raise ValueError(f"baseline_from_hours: {self.baseline_from_hours:g} must be <= "
                             f"baseline_to_hours ({self.baseline_to_hours:g})")
        if self.trajectory_from_days > self.trajectory_to_days:
            raise ValueError(f"trajectory_from_days: {self.trajectory_from_days:g} must be <= "
                             f"trajectory_to_days ({self.trajectory_to_days:g})")
        return self

    @property
    def day7_from_hours(self) -> float:
        return self.day7_target_hours - self.day7_tolerance_hours

    @property
    def day7_to_hours(self) -> float:
        return self.day7_target_hours + self.day7_tolerance_hours


RESERVED_TIMEPOINT_NAMES = ("baseline", "change", "all_timepoints")


def default_timepoint_name(target_hours: float) -> str:
    """``day7`` for 168 h, ``h36`` for 36 h (a timepoint given without a name)."""
    days = target_hours / 24.0
    return f"day{days:g}" if float(days).is_integer() else f"h{target_hours:g}".replace(".", "_")


def default_timepoint_label(target_hours: float) -> str:
    """``day 7`` for 168 h, ``36 h`` for 36 h (a timepoint given without a label)."""
    days = target_hours / 24.0
    return f"day {days:g}" if float(days).is_integer() else f"{target_hours:g} h"


class TimepointSection(_Section):
    """One ``[[timepoints]]`` entry: the value closest to ``target_hours`` after the index within
    +/- ``tolerance_hours`` (edges inclusive; equidistant -> the earlier value), compared with
    baseline. ``name`` is the identifier written in the results (``day7``); ``label`` the words
    every output uses ("day 7")."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    label: str = ""
    target_hours: float = Field(gt=0)
    tolerance_hours: float = Field(ge=0)

    @model_validator(mode="before")
    @classmethod
    def _defaults(cls, data):
        if isinstance(data, dict) and isinstance(data.get("target_hours"), (int, float)):
            data = dict(data)
            data.setdefault("name", default_timepoint_name(float(data["target_hours"])))
            if not str(data.get("label") or "").strip():
                data["label"] = default_timepoint_label(float(data["target_hours"]))
        return data

    @field_validator("name")
    @classmethod
    def _not_reserved(cls, value: str) -> str:
        if value in RESERVED_TIMEPOINT_NAMES:
            raise ValueError(f"'{value}' is reserved; name a timepoint e.g. 'day7' or 'day14'")
        return value

    @property
    def from_hours(self) -> float:
        return self.target_hours - self.tolerance_hours

    @property
    def to_hours(self) -> float:
        return self.target_hours + self.tolerance_hours


class MarkersSection(_Section):
    """[markers]: vocabulary variables compared baseline vs day 7 (clinical reference §10.1)."""

    variables: list[str] = Field(default_factory=lambda: ["crp", "ferritin", "fibrinogen",
                                                          "anc", "alc"], min_length=1)

    @field_validator("variables")
    @classmethod
    def _known(cls, values: list[str]) -> list[str]:
        unknown = [v for v in values if v not in _vocab().variables]
        if unknown:
            raise ValueError(f"unknown variable(s) {', '.join(unknown)}; allowed: "
                             f"{', '.join(sorted(_vocab().variables))}")
        if len(set(values)) != len(values):
            raise ValueError("each variable may be listed once")
        return values


class CotherapiesSection(_Section):
    """[cotherapies]: drug classes reported within a window around the index and any time in
    the stay (clinical reference §12.8: -24 h ... +7 d and "any time in stay")."""

    classes: list[str] = Field(default_factory=lambda: ["corticosteroid", "ivig"])
    window_from_hours: float = -24.0
    window_to_hours: float = 168.0
    any_time_in_stay: bool = True

    @field_validator("classes")
    @classmethod
    def _known(cls, values: list[str]) -> list[str]:
        known = sorted({r["drug_class"] for r in _vocab().drugs.values()})
        unknown = [v for v in values if v not in known]
        if unknown:
            raise ValueError(f"unknown drug class(es) {', '.join(unknown)}; allowed: "
                             f"{', '.join(known)}")
        return values

    @model_validator(mode="after")
    def _ordered(self) -> CotherapiesSection:
        if self.window_from_hours > self.window_to_hours:
            raise ValueError(f"window_from_hours: {self.window_from_hours:g} must be <= "
                             f"window_to_hours ({self.window_to_hours:g})")
        return self


class OutcomesSection(_Section):
    """[outcomes]: infections after the index and deaths, in stay and within ``followup_days``
    of the index, with days from index (clinical reference §12.33)."""

    infections: bool = True
    deaths: bool = True
    followup_days: float = Field(28.0, gt=0)


class AnalysisSection(_Section):
    """[analysis]: tests and summary conventions (clinical reference §10.4; §12.4-§12.6).

    Wilcoxon signed-rank: exact when the number of pairs <= wilcoxon_exact_max_n and there are
    no zero differences and no tied absolute differences, else the normal approximation; the
    ``method``, ``zero_method`` and ``correction`` are passed to scipy explicitly.
    """

    tests: list[Literal["paired_t", "wilcoxon"]] = Field(
        default_factory=lambda: ["paired_t", "wilcoxon"])
    alternative: Literal["two-sided"] = "two-sided"
    wilcoxon_exact_max_n: int = Field(25, ge=0)
    wilcoxon_zero_method: Literal["wilcox", "pratt", "zsplit"] = "wilcox"
    wilcoxon_correction: bool = False
    sem_ddof: Literal[1, 0] = 1
    headline_change: Literal["pct_change_of_means", "median_pct_change"] = "pct_change_of_means"
    #: The repeated-measures model over baseline and every timepoint (statsmodels MixedLM: random
    #: intercept per patient, timepoint a fixed factor). Unset: fitted when the study has two or
    #: more timepoints.
    mixed_model: bool | None = None


class RecognitionSection(_Section):
    """[recognition]: the secondary analysis "time from recognition to treatment" (clinical
    reference §12.40). Recognition = the first time a criterion of the hyperinflammatory
    phenotype group is met in the PICU stay (screening.recognition, the one "meets" rule), on
    the screen evaluated at admission and at every data time of the stay; the delay = first
    dose of the index drug - recognition. Patients start early when the delay (or, with
    ``early_start_from = "picu_admission"``, the hours from PICU admission to the first dose) is
    at most ``early_start_cut_hours``, late otherwise; the markers are compared between the two.
    """

    enabled: bool = True
    #: 5 days: Eloseily 2020's early start (within 5 days of hospital admission; §9.1, §12.40).
    early_start_cut_hours: float = Field(120.0, gt=0)
    early_start_from: Literal["recognition", "picu_admission"] = "recognition"


class PublishedRow(_Section):
    """One ``[[published.rows]]`` entry: a number as the publication prints it, beside the row of
    this site's results it corresponds to (``section``, ``variable``, ``level``, ``comparison``,
    ``timepoint`` and ``stat_name`` as in docs/results-format.md). ``stat_name`` may also be
    ``mean_sem`` (mean ± SEM) or ``count_percent`` (count (percent))."""

    label: str
    published: str
    section: str
    variable: str
    stat_name: str
    level: str | None = None
    comparison: str | None = None
    timepoint: str | None = None
    note: str | None = None


class PublishedSection(_Section):
    """``[published]``: the numbers of the publication the study reproduces, shown beside this
    site's numbers ("published vs this site")."""

    citation: str
    rows: list[PublishedRow] = Field(default_factory=list)


def _timepoints_from_windows(data: dict) -> list[dict]:
    windows = data.get("windows") if isinstance(data.get("windows"), dict) else {}
    target = windows.get("day7_target_hours", WindowsSection.model_fields["day7_target_hours"].default)
    tolerance = windows.get("day7_tolerance_hours",
                            WindowsSection.model_fields["day7_tolerance_hours"].default)
    if not isinstance(target, (int, float)) or not isinstance(tolerance, (int, float)):
        return []  # the [windows] error is reported there
    return [{"target_hours": target, "tolerance_hours": tolerance}]


class StudyDefinition(_Section):
    """A whole study file.

    ``timepoints`` is always filled after validation: the ``[[timepoints]]`` of the file, or the
    one timepoint of ``[windows] day7_target_hours`` / ``day7_tolerance_hours`` (default day 7,
    168 +/- 24 h). Timepoints are ordered by target; their windows start after the baseline window
    ends and do not overlap one another.
    """

    study: StudySection
    cohort: CohortSection = Field(default_factory=CohortSection)
    windows: WindowsSection = Field(default_factory=WindowsSection)
    timepoints: list[TimepointSection] = Field(default_factory=list)
    markers: MarkersSection = Field(default_factory=MarkersSection)
    cotherapies: CotherapiesSection = Field(default_factory=CotherapiesSection)
    outcomes: OutcomesSection = Field(default_factory=OutcomesSection)
    analysis: AnalysisSection = Field(default_factory=AnalysisSection)
    recognition: RecognitionSection = Field(default_factory=RecognitionSection)
    published: PublishedSection | None = None

    source: str | None = Field(default=None, exclude=True)
    #: The study file's text as read (newlines as LF), for the network package's study hash.
    text: str | None = Field(default=None, exclude=True)

    @model_validator(mode="before")
    @classmethod
    def _fill_timepoints(cls, data):
        if not isinstance(data, dict):
            return data
        if not data.get("timepoints"):
            return {**data, "timepoints": _timepoints_from_windows(data)}
        windows = data.get("windows") if isinstance(data.get("windows"), dict) else {}
        both = [k for k in ("day7_target_hours", "day7_tolerance_hours") if k in windows]
        if both:
            raise ValueError(f"windows: {both[0]} and [[timepoints]] both given; list "
                             f"every timepoint as [[timepoints]] (name, label, target_hours, "
                             f"tolerance_hours) and remove [windows] {', '.join(both)}")
        return data

    @model_validator(mode="after")
    def _timepoints_apart(self) -> StudyDefinition:
        points = sorted(self.timepoints, key=lambda t: t.target_hours)
        if [t.name for t in points] != [t.name for t in self.timepoints]:
            raise ValueError("timepoints: list the timepoints in order of target_hours")
        names = [t.name for t in points]
        if len(set(names)) != len(names):
            raise ValueError(f"timepoints: each name may be used once (got {', '.join(names)})")
        first = points[0]
        if first.from_hours <= self.windows.baseline_to_hours:
            raise ValueError(
                f"timepoints: the window of '{first.name}' ({first.from_hours:g} h .. "
                f"{first.to_hours:g} h) must start after the baseline window ends "
                f"(baseline_to_hours = {self.windows.baseline_to_hours:g})")
        for a, b in zip(points, points[1:]):
            if b.from_hours <= a.to_hours:
                raise ValueError(
                    f"timepoints: the windows of '{a.name}' ({a.from_hours:g} .. {a.to_hours:g} h)"
                    f" and '{b.name}' ({b.from_hours:g} .. {b.to_hours:g} h) overlap; narrow "
                    f"tolerance_hours so that each value belongs to one timepoint")
        return self

    @property
    def index_drug(self) -> str:
        """The index drug as every output names it (the vocabulary's drug name)."""
        return self.cohort.index_drug

    @property
    def fits_mixed_model(self) -> bool:
        """Whether the repeated-measures model is fitted ([analysis] mixed_model)."""
        if self.analysis.mixed_model is None:
            return len(self.timepoints) >= 2
        return self.analysis.mixed_model


def _section_keys(model: type[BaseModel]) -> list[str]:
    return [k for k in model.model_fields if k not in ("source", "text")]


_SECTIONS: dict[str, type[BaseModel]] = {
    "study": StudySection, "cohort": CohortSection, "windows": WindowsSection,
    "timepoints": TimepointSection, "markers": MarkersSection, "cotherapies": CotherapiesSection,
    "outcomes": OutcomesSection, "analysis": AnalysisSection,
    "recognition": RecognitionSection, "published": PublishedSection,
}
#: Sections written as arrays of tables in TOML.
_ARRAYS = {"timepoints"}


def _heading(section: str) -> str:
    return f"[[{section}]]" if section in _ARRAYS else f"[{section}]"


def _format_error(source: str, err: dict) -> str:
    loc = [str(p) for p in err.get("loc", ())]
    message = err.get("msg", "invalid value")
    message = message.removeprefix("Value error, ")
    kind = err.get("type")
    where = source
    if not loc:  # a whole-file rule: the message starts with the section it concerns
        named = re.match(r"^([a-z0-9_]+): (.*)$", message, re.S)
        if named and named.group(1) in _SECTIONS:
            return f"{source}: {_heading(named.group(1))}: {named.group(2)}"
    if loc:
        section = loc[0]
        rest = loc[1:]
        if section in _ARRAYS and rest and rest[0].isdigit():
            where += f": {_heading(section)} entry {int(rest[0]) + 1}"
            rest = rest[1:]
            if rest:
                where += f" {'.'.join(rest)}"
        elif section in _SECTIONS:
            where += f": {_heading(section)}"
            if rest:
                where += f" {'.'.join(rest)}"
            else:
                named = re.match(r"^([a-z0-9_]+): (.*)$", message, re.S)
                if named:
                    where += f" {named.group(1)}"
                    message = named.group(2)
        else:
            where += f": {'.'.join(loc)}"
        if kind == "extra_forbidden":
            if section in _SECTIONS and rest:
                model = _SECTIONS[section]
                if section == "published" and rest[0] == "rows":
                    model, section = PublishedRow, "published.rows"
                allowed = _section_keys(model)
                message = f"unknown key; allowed keys in {_heading(section)}: {', '.join(allowed)}"
            else:
                message = (f"unknown section; allowed sections: "
                           f"{', '.join(_heading(s) for s in _SECTIONS)}")
        elif kind == "missing":
            message = "required key is missing"
        elif "input" in err and kind not in ("value_error",):
            message += f" (got {err['input']!r})"
    return f"{where}: {message}"


def parse_study(data: dict, *, source: str = "<study>", text: str | None = None
                ) -> StudyDefinition:
    """Validate a study given as plain data (the parsed TOML; ``text``: the file it came from)."""
    try:
        return StudyDefinition.model_validate({**data, "source": source, "text": text})
    except ValidationError as exc:
        errors = exc.errors()
        lines = [_format_error(source, e) for e in errors]
        raise StudyDefinitionError("\n".join(lines)) from None


def shipped_studies() -> list[str]:
    """Names of the studies shipped with the package."""
    folder = resources.files(SHIPPED_STUDIES_PACKAGE).joinpath(SHIPPED_STUDIES_FOLDER)
    return sorted(p.name.removesuffix(".toml") for p in folder.iterdir()
                  if p.name.endswith(".toml"))


def load_study(path_or_name: str | os.PathLike | StudyDefinition) -> StudyDefinition:
    """Load a study file, or a shipped study by name ('rajasekaran2014').

    Raises StudyDefinitionError with one readable message naming the file, section and key.
    """
    if isinstance(path_or_name, StudyDefinition):
        return path_or_name
    text_name = str(path_or_name)
    path = Path(path_or_name)
    if path.is_file():
        source = text_name
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise StudyDefinitionError(f"{source}: cannot read the study file ({exc}).") from None
    elif re.fullmatch(r"[a-z][a-z0-9_]*", text_name) and text_name in shipped_studies():
        source = f"{SHIPPED_STUDIES_FOLDER}/{text_name}.toml"
        text = (resources.files(SHIPPED_STUDIES_PACKAGE).joinpath(SHIPPED_STUDIES_FOLDER)
                .joinpath(f"{text_name}.toml").read_text(encoding="utf-8"))
    else:
        raise StudyDefinitionError(
            f"{text_name}: no such study file, and not the name of a shipped study; give a path "
            f"to a TOML study file or one of: {', '.join(shipped_studies())}.")
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise StudyDefinitionError(f"{source}: not valid TOML: {exc}.") from None
    return parse_study(data, source=source, text=text)


def _parse_timepoints(items: list[dict]) -> list[TimepointSection]:
    return [TimepointSection.model_validate(item) for item in items]


def resolved_toml(definition: StudyDefinition) -> str:
    """The definition as TOML with every key of every section, defaults filled in ('study
    check'); a key that is not set (None) is a comment, since TOML has no null."""
    import tomli_w

    chunks = [f"# {definition.source or 'study'}: the resolved definition (every default filled "
              f"in; keys docs/study-definition.md)."]
    def without_none(value):
        if isinstance(value, dict):
            return {k: without_none(v) for k, v in value.items() if v is not None}
        if isinstance(value, list):
            return [without_none(v) for v in value]
        return value

    w = definition.windows
    shorthand = [t.model_dump() for t in _parse_timepoints(_timepoints_from_windows(
        {"windows": {"day7_target_hours": w.day7_target_hours,
                     "day7_tolerance_hours": w.day7_tolerance_hours}}))]
    listed = definition.timepoints and [t.model_dump() for t in definition.timepoints] != shorthand
    for section, values in definition.model_dump(mode="python").items():
        if isinstance(values, list):  # an array of tables: [[timepoints]]
            if section == "timepoints" and not listed:
                continue  # the one timepoint of [windows] day7_target_hours, written there
            for item in values:
                chunks.append(f"[[{section}]]\n" + tomli_w.dumps(without_none(item)).rstrip("\n"))
            continue
        if not isinstance(values, dict):
            continue
        if section == "windows" and listed:  # [[timepoints]] replace the day-7 keys
            values = {k: v for k, v in values.items() if not k.startswith("day7_")}
        unset = [f"# {key} = (not set)" for key, value in values.items() if value is None]
        text = tomli_w.dumps({section: without_none(values)})
        lines = text.rstrip("\n").splitlines()
        if not lines or lines[0] != f"[{section}]":
            lines.insert(0, f"[{section}]")
        chunks.append("\n".join([lines[0], *unset, *lines[1:]]))
    return "\n\n".join(chunks) + "\n"
