"""The time model's named settings, importable without the engine: days per month of every age
in months, and the evaluation grid's smallest step (``docs/time-model.md``).
:mod:`hyperinflam.features.grid` builds the grid from them; the compiled screen
(:mod:`hyperinflam.screening.plans`) checks a step with them before it runs.

Clinical reference §12.14 and §11.1 (age in months = days / 30.4375 at the evaluation time).
"""

from __future__ import annotations

from hyperinflam.errors import FeatureError

#: Days per month used for every age in months (clinical reference §11.1, §12.14).
DAYS_PER_MONTH = 30.4375
#: Smallest grid step accepted (hours).
MIN_STEP_HOURS = 1


def grid_step_seconds(step_hours: float) -> int:
    """A grid step in whole seconds; at least MIN_STEP_HOURS (FeatureError names the fix)."""
    if step_hours is None or not step_hours >= MIN_STEP_HOURS:
        raise FeatureError(
            f"step_hours must be at least {MIN_STEP_HOURS} hour (got {step_hours}); for example "
            f"24 for one evaluation per day."
        )
    return int(round(step_hours * 3600))
