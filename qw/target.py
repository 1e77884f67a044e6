"""Turn ``"pkg.mod:fn"`` or ``"pkg.mod.fn"`` into the callable it names."""

from __future__ import annotations

import importlib
from typing import Any, Callable, Union

from .exceptions import TargetError

Target = Callable[[str, dict[str, Any]], Any]
TargetSpec = Union[str, Target]


def resolve(spec: TargetSpec) -> Target:
    """Return the target callable; raise :class:`TargetError` saying what is missing."""
    if callable(spec):
        return spec
    if not isinstance(spec, str) or not spec.strip():
        raise TargetError(f"target must be a callable or 'module:function', got {spec!r}")
    if ":" in spec:
        module_name, _, attr_path = spec.partition(":")
    else:
        module_name, _, attr_path = spec.rpartition(".")
    if not module_name or not attr_path:
        raise TargetError(f"target {spec!r} is not of the form 'module:function'")
    try:
        obj: Any = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        raise TargetError(f"cannot import target {spec!r}: no module named {exc.name!r}") from None
    except Exception as exc:  # the module itself raised while importing
        raise TargetError(
            f"cannot import target {spec!r}: {type(exc).__name__}: {exc}"
        ) from None
    for attr in attr_path.split("."):
        try:
            obj = getattr(obj, attr)
        except AttributeError:
            raise TargetError(f"target {spec!r}: {module_name!r} has no attribute {attr_path!r}") from None
    if not callable(obj):
        raise TargetError(f"target {spec!r} is not callable")
    return obj
