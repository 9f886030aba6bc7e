"""One model registry: architecture name -> builder.

``create_model(name, num_classes=...)`` is how training, export and tests build networks; the name is
what a model's :class:`~emolive.models.info.ModelInfo` records as ``arch``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from torch import nn

_BUILDERS: dict[str, Callable[..., nn.Module]] = {}


class UnknownArchitecture(KeyError):
    """``create_model`` was asked for a name no builder is registered under (``name`` says which)."""

    def __init__(self, name: str) -> None:
        super().__init__(f"unknown model '{name}'; choose one of: {', '.join(sorted(_BUILDERS))}")
        self.name = name


def register_model(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
    """Decorator: register a builder under its function name."""
    if fn.__name__ in _BUILDERS:
        raise ValueError(f"model '{fn.__name__}' is registered twice")
    _BUILDERS[fn.__name__] = fn
    return fn


def list_models() -> list[str]:
    _load_builtin()
    return sorted(_BUILDERS)


def create_model(name: str, *, num_classes: int = 7, **kwargs: Any) -> nn.Module:
    """Build the registered architecture ``name`` with ``num_classes`` outputs."""
    _load_builtin()
    if name not in _BUILDERS:
        raise UnknownArchitecture(name)
    return _BUILDERS[name](num_classes=num_classes, **kwargs)


def _load_builtin() -> None:
    from . import zoo  # noqa: F401  (registers the built-in builders on import)
