"""qw's web dashboard: see and steer queues, jobs and managers from a browser.

``qw-client web`` serves it; :func:`create_app` gives the ASGI app to mount
in a Starlette or FastAPI project of your own. It needs the ``web`` extra
(``pip install 'qw[web]'``): Starlette, Jinja2 and uvicorn.
"""

from __future__ import annotations

from ..exceptions import ConfigError

try:
    import jinja2  # noqa: F401
    import starlette  # noqa: F401
except ImportError as exc:  # without the extra, say how to get it rather than a traceback
    raise ConfigError(f"the web dashboard needs the web extra: pip install 'qw[web]' ({exc})") from None

from .app import create_app

__all__ = ["create_app"]
