"""The exceptions hyperinflam raises for a problem the user can fix, in one module.

Each message names what is wrong (file, line, column, key, option) and the fix; the command line
prints it as one message, never a traceback. Every layer imports its error from here, so a layer
never imports a higher one to catch what that one raises.
"""

from __future__ import annotations


class SourceError(Exception):
    """Input that cannot be read at all (missing file or column, wrong connection string).

    The message names the file (or table), the line or column when known, and the fix. The CLI
    prints it without a traceback.
    """


class EngineError(RuntimeError):
    """An engine that cannot be opened as asked; the message says why and what to do."""


class VocabularyError(ValueError):
    """A vocabulary or site file is malformed; the message names the file, line and fix."""


class FeatureError(ValueError):
    """A feature request that cannot be built; the message names the spec and the fix."""


class ScreenError(ValueError):
    """A screening request that cannot be built; the message names the criterion and the fix."""


class StudyDefinitionError(ValueError):
    """A study file cannot be read or is invalid; the message names file, section and key."""


class StateError(ValueError):
    """A user-facing problem with the state database (unknown user, weak password...)."""


class NetworkError(ValueError):
    """A study run or a network site package that cannot be used (hyperinflam.study.network):
    the message names the site or the folder, the file, what is wrong and the fix."""
