"""Turn ``"pkg.mod:fn"`` or ``"pkg.mod.fn"`` into the callable it names."""

from __future__ import annotations

import importlib
import os
import sys
import sysconfig
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


class CodeTracker:
    """Remembers which modules importing the target brought in, to import them afresh on reload.

    Only the application's own source modules are dropped and imported
    again: modules from the standard library or installed packages (and
    C extensions, which cannot be loaded twice) stay as they are.
    """

    def __init__(self) -> None:
        self._theirs: set[str] = set()

    def resolve(self, spec: TargetSpec) -> Target:
        """:func:`resolve`, noting the modules the import added."""
        return self.track(resolve, spec)

    def track(self, load: Callable[..., Any], *args: Any) -> Any:
        """Call ``load(*args)`` (an import of application code), noting the modules it added."""
        before = set(sys.modules)
        loaded = load(*args)
        self._theirs |= {name for name in set(sys.modules) - before if _is_app_source(sys.modules[name])}
        return loaded

    def reload(self, spec: TargetSpec) -> Target:
        """Import the target's code again; on failure the modules in use are kept."""
        return self.reload_with(resolve, spec)

    def reload_with(self, load: Callable[..., Any], *args: Any) -> Any:
        """Import the application's code again through ``load(*args)``; on failure the modules in use
        are kept."""
        saved = {name: sys.modules.pop(name) for name in self._theirs if name in sys.modules}
        importlib.invalidate_caches()
        try:
            loaded = self.track(load, *args)
        except BaseException:
            for name in [n for n in self._theirs if n not in saved]:
                sys.modules.pop(name, None)
            sys.modules.update(saved)
            raise
        return loaded


def _is_app_source(module: Any) -> bool:
    path = getattr(module, "__file__", None)
    if not path or not path.endswith(".py") or module.__name__.split(".")[0] == "qw":
        return False
    path = os.path.realpath(path)
    return not any(path.startswith(root + os.sep) for root in _library_roots())


def _library_roots() -> set[str]:
    roots = {sysconfig.get_paths()[name] for name in ("stdlib", "platstdlib", "purelib", "platlib")}
    roots |= {p for p in sys.path if os.path.basename(p) in ("site-packages", "dist-packages")}
    return {os.path.realpath(root) for root in roots if root}
