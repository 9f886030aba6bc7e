"""The user-facing exception hierarchy.

Every error a user can cause (a bad path, a broken model file, an absent camera) is an
:class:`EmoliveError`. Its message is one line that says what failed, why, and what to do; the CLI
prints it without a traceback and exits non-zero.
"""

from __future__ import annotations


class EmoliveError(Exception):
    """Base class of the errors emolive reports to users."""

    exit_code: int = 2


class InputError(EmoliveError):
    """An input path, image or video cannot be used."""


class OutputError(EmoliveError):
    """An output path cannot be written."""


class ModelError(EmoliveError):
    """A model file is missing, broken, or does not match what emolive expects."""


class SourceError(EmoliveError):
    """A camera or stream cannot be opened or stopped delivering frames."""


class DataError(EmoliveError):
    """A dataset path or file is missing or has the wrong format."""


class DependencyError(EmoliveError):
    """An optional dependency needed for this command is not installed."""


class EngineUnavailableError(EmoliveError):
    """The requested inference engine cannot run on this machine."""


def require(module: str, extra: str, purpose: str):
    """Import an optional module or raise a one-line DependencyError naming the extra to install."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise DependencyError(
            f"{purpose} needs the Python package '{module}' ({exc}); install it with: pip install 'emolive[{extra}]'"
        ) from None
