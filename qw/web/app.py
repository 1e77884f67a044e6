"""The ASGI app: routes, access checks around every page and action, rendering, errors.

:func:`create_app` builds a Starlette app over a :class:`~qw.client.Client`
that a user may mount in a project of their own. Every request passes the
:class:`Shield` (Host allowlist, security headers), then :meth:`Dashboard.page`
(GET: signed in?) or :meth:`Dashboard.act` (POST: same origin, signed in,
not read-only, CSRF token). Views and actions run in a thread, since
redis-py blocks; an unreachable Redis is a 503 page in one line, a bad
parameter a 400, never a traceback.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any, Awaitable, Callable, Mapping, Optional
from urllib.parse import parse_qs, quote

import redis
from jinja2 import Environment, FileSystemLoader, StrictUndefined
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..client import Client
from ..exceptions import ConnectionFailed, QwError
from . import actions, filters, params, views
from .guard import COOKIE, CSRF_FIELD, SECURITY_HEADERS, Guard

HERE = Path(__file__).parent
BODY_MAX = 64 * 1024  # bytes of a form; a longer one is refused
WRONG_TOKEN_DELAY = 0.5  # seconds before a wrong sign-in is answered

View = Callable[[Client, Mapping[str, str], Mapping[str, str]], Any]


class Shield:
    """ASGI middleware: refuse a Host off the allowlist; add the security headers to every answer."""

    def __init__(self, app: ASGIApp, guard: Guard) -> None:
        self.app = app
        self.guard = guard

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        host = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"host"), "")
        if not self.guard.host_allowed(host):
            await PlainTextResponse("unknown Host header: start qw-client web with --allow-host for it",
                                    status_code=400)(scope, receive, self._with_headers(send))
            return
        await self.app(scope, receive, self._with_headers(send))

    @staticmethod
    def _with_headers(send: Send) -> Send:
        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", [])
                           if k.decode("latin-1").lower() not in dict(SECURITY_HEADERS)]
                headers += [(k.encode(), v.encode()) for k, v in SECURITY_HEADERS]
                message = {**message, "headers": headers}
            await send(message)
        return sending


class Dashboard:
    """The routes and their checks, over one client and one :class:`Guard`."""

    def __init__(self, client: Client, guard: Guard) -> None:
        self.client = client
        self.guard = guard
        self.templates = Environment(loader=FileSystemLoader(str(HERE / "templates")), autoescape=True,
                                     undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
        filters.install(self.templates)

    def routes(self) -> list[Any]:
        page, act = self._page, self._act
        return [
            Route("/", page(views.overview)),
            Route("/queues", page(views.queues)),
            Route("/queues/shared", page(views.queue)),
            Route("/queues/scheduled", page(views.scheduled)),
            Route("/queues/{kind:str}/{name:str}", page(views.queue)),
            Route("/workers", page(views.workers)),
            Route("/recurring", page(views.recurring)),
            Route("/recurring/{name:str}/{command:str}",
                  act(lambda c, f, p: actions.schedule(c, f, p["name"], p["command"])), methods=["POST"]),
            Route("/jobs", page(views.search)),
            Route("/jobs/{job_id:path}", page(views.job)),
            Route("/failed", page(views.failed)),
            Route("/failed/retry", act(lambda c, f, p: actions.retry(c, f)), methods=["POST"]),
            Route("/failed/delete", act(lambda c, f, p: actions.delete(c, f)), methods=["POST"]),
            Route("/failed/purge", act(lambda c, f, p: actions.purge(c, f)), methods=["POST"]),
            Route("/cancel", act(lambda c, f, p: actions.cancel(c, f)), methods=["POST"]),
            Route("/managers/{manager:str}/{command:str}",
                  act(lambda c, f, p: actions.control(c, f, p["manager"], p["command"])), methods=["POST"]),
            Route("/login", self._login_form, methods=["GET"]),
            Route("/login", self._login, methods=["POST"]),
            Route("/logout", self._logout, methods=["POST"]),
            Mount("/static", StaticFiles(directory=str(HERE / "static")), name="static"),
        ]

    # -- pages and actions ------------------------------------------------

    def _page(self, view: View) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            if not self._signed_in(request):
                return RedirectResponse(f"{_base(request)}/login?next={quote(_here(request), safe='')}", 303)
            query = dict(request.query_params)
            work = lambda: view(self.client, query, request.path_params)  # noqa: E731
            return await run_in_threadpool(self._run, request, work)
        return endpoint

    def _act(self, action: Callable[[Client, dict[str, list[str]], Mapping[str, str]], actions.Done]
             ) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            if not self.guard.same_origin(request.headers, request.url.scheme):
                return self._refuse(request, 403, "refused: this request comes from another site")
            if not self._signed_in(request):
                return self._refuse(request, 403, "refused: sign in first")
            if not self.guard.can_change:
                return self._refuse(request, 403, f"refused: {self.guard.why_read_only}")
            form = await _form(request)
            if form is None:
                return self._refuse(request, 413, "refused: the form is too large")
            if not self.guard.csrf_ok(form.get(CSRF_FIELD, [""])[0]):
                return self._refuse(request, 403, "refused: the form's CSRF token is missing or wrong; "
                                                  "reload the page and try again")
            return await run_in_threadpool(self._run, request,
                                           lambda: action(self.client, form, request.path_params))
        return endpoint

    def _run(self, request: Request, work: Callable[[], Any]) -> Response:
        """Run a view or an action; render its page, or the one-line error it ended with."""
        started = time.perf_counter()
        try:
            result = work()
        except params.BadRequest as exc:
            return self._refuse(request, 400, f"bad request: {exc}")
        except ConnectionFailed as exc:
            return self._refuse(request, 503, str(exc))
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            return self._refuse(request, 503, f"cannot reach Redis at {self.client.config.address()}: {exc}")
        except QwError as exc:
            return self._refuse(request, 400, f"bad request: {exc}")
        except redis.RedisError as exc:  # an error reply: a key of an unexpected type, a script refused
            return self._refuse(request, 502, f"Redis at {self.client.config.address()} answered: {exc}")
        if isinstance(result, views.Redirect):
            return RedirectResponse(_base(request) + result.path, 303)
        if isinstance(result, actions.Done):
            page = views.Page("done.html", {"done": result})
            return self._render(request, page, 200 if result.ok else 409, started)
        return self._render(request, result, 200, started)

    def _render(self, request: Request, page: views.Page, status: int, started: float) -> Response:
        context = self._context(request)
        context.update(page.data)
        context["render_ms"] = (time.perf_counter() - started) * 1000
        html = self.templates.get_template(page.template).render(context)
        return HTMLResponse(html, status_code=status)

    def _refuse(self, request: Request, status: int, message: str) -> Response:
        context = self._context(request)
        context.update(message=message, status=status, render_ms=0.0)
        return HTMLResponse(self.templates.get_template("error.html").render(context), status_code=status)

    def _context(self, request: Request) -> dict[str, Any]:
        try:
            poll = params.poll(dict(request.query_params))
        except params.BadRequest:
            poll = params.POLL_DEFAULT
        signed_in = self._signed_in(request)
        base = _base(request)
        return {"base": base, "here": _here(request), "path": request.url.path[len(base):] or "/",
                "poll": poll, "can_change": self.guard.can_change and signed_in,
                "why_read_only": self.guard.why_read_only, "token_set": self.guard.token is not None,
                "signed_in": signed_in, "now": time.time(),
                # Only where a form may change something; never on a read-only dashboard.
                "csrf": self.guard.csrf() if signed_in and self.guard.can_change else "",
                "redis": self.client.config.address()}

    def _signed_in(self, request: Request) -> bool:
        return self.guard.signed_in(request.headers, request.cookies)

    # -- signing in ---------------------------------------------------------

    async def _login_form(self, request: Request) -> Response:
        context = self._context(request)
        context.update(next=_next(request.query_params.get("next", "")), failed=False, render_ms=0.0)
        return HTMLResponse(self.templates.get_template("login.html").render(context))

    async def _login(self, request: Request) -> Response:
        if not self.guard.same_origin(request.headers, request.url.scheme):
            return self._refuse(request, 403, "refused: this request comes from another site")
        form = await _form(request)
        if form is None:
            return self._refuse(request, 413, "refused: the form is too large")
        target = _next(form.get("next", [""])[0])
        if not self.guard.password_ok(form.get("token", [""])[0]):
            await asyncio.sleep(WRONG_TOKEN_DELAY)  # guessing costs time; others are served meanwhile
            context = self._context(request)
            context.update(next=target, failed=True, render_ms=0.0)
            return HTMLResponse(self.templates.get_template("login.html").render(context), status_code=403)
        response = RedirectResponse(_base(request) + target, 303)
        response.set_cookie(COOKIE, self.guard.session(), httponly=True, samesite="strict",
                            secure=request.url.scheme == "https", path=_base(request) or "/")
        return response

    async def _logout(self, request: Request) -> Response:
        if not self.guard.same_origin(request.headers, request.url.scheme):
            return self._refuse(request, 403, "refused: this request comes from another site")
        response = RedirectResponse(f"{_base(request)}/login", 303)
        response.delete_cookie(COOKIE, path=_base(request) or "/")
        return response


def create_app(client: Client, token: Optional[str] = None, read_only: bool = False, prefix: str = "",
               allowed_hosts: tuple[str, ...] = ()) -> Shield:
    """The dashboard as an ASGI app over ``client``.

    ``token``: the secret every page and action then needs (without one the
    dashboard is read-only); ``read_only``: show, never change; ``prefix``:
    the path it is served under (``"/qw"``); ``allowed_hosts``: Host names
    it answers besides the loopback ones (``"*"``: any, behind a proxy
    that checks them).
    """
    guard = Guard.make(token, read_only, allowed_hosts)
    dashboard = Dashboard(client, guard)
    routes = dashboard.routes()
    if prefix:
        routes = [Mount("/" + prefix.strip("/"), routes=routes)]
    app = Starlette(routes=routes)
    return Shield(app, guard)


async def _form(request: Request) -> Optional[dict[str, list[str]]]:
    """The urlencoded form of a POST, or None when it is larger than :data:`BODY_MAX`."""
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > BODY_MAX:
            return None
    return parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)


def _base(request: Request) -> str:
    return str(request.scope.get("root_path", "")).rstrip("/")


def _here(request: Request) -> str:
    path = request.url.path[len(_base(request)):] or "/"
    return path + (f"?{request.url.query}" if request.url.query else "")


def _next(target: str) -> str:
    # Back to a page of ours only, never to another site.
    return target if target.startswith("/") and not target.startswith("//") and "\\" not in target else "/"
