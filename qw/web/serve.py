"""``qw-client web``: check the address and the token, then serve the dashboard with uvicorn.

The socket is bound here, before uvicorn starts, so a taken port or a bad
address is one line and exit 1. A non-loopback address without a token is
refused: the dashboard would be open to the network.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Optional

from ..client import Client
from ..exceptions import ConfigError
from .guard import is_loopback

DEFAULT_PORT = 5010
TOKEN_ENV = "QW_WEB_TOKEN"
TOKEN_MIN = 12  # characters: a token shorter than this is refused as too easy to guess


def parse_bind(text: str) -> tuple[str, int]:
    """``host[:port]``, ``[v6]:port`` or ``:port`` as (host, port); the port defaults to 5010."""
    text = text.strip()
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port_text = rest[1:] if rest.startswith(":") else ""
    elif text.count(":") == 1:
        host, port_text = text.split(":")
    else:
        host, port_text = text, ""
    host = host or "127.0.0.1"
    if not port_text:
        return host, DEFAULT_PORT
    if not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise ConfigError(f"--bind: {port_text!r} is not a port number (0 to 65535)")
    return host, int(port_text)


def read_token(token_file: Optional[str]) -> Optional[str]:
    """The token from ``--token-file`` (its first line) or else ``$QW_WEB_TOKEN``; None if neither."""
    if token_file:
        try:
            token = Path(token_file).read_text(encoding="utf-8").strip().splitlines()
        except OSError as exc:
            raise ConfigError(f"--token-file: cannot read {token_file}: {exc.strerror}") from None
        token_text = token[0].strip() if token else ""
        if not token_text:
            raise ConfigError(f"--token-file: {token_file} is empty")
    else:
        token_text = os.environ.get(TOKEN_ENV, "").strip()
        if not token_text:
            return None
    if len(token_text) < TOKEN_MIN:
        raise ConfigError(f"the token must be at least {TOKEN_MIN} characters long "
                          f"(try: python3 -c 'import secrets; print(secrets.token_urlsafe())')")
    return token_text


def check_bind(host: str, token: Optional[str]) -> None:
    """Refuse to serve beyond this machine without a token."""
    if not is_loopback(host) and token is None:
        raise ConfigError(f"refusing to serve on {host} without a token: set ${TOKEN_ENV} or --token-file "
                          f"(or bind 127.0.0.1)")


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening socket on ``host:port``; a ConfigError in one line when it cannot be had."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise ConfigError(f"--bind: cannot resolve {host}: {exc}") from None
    family, kind, proto, _name, address = infos[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
        sock.listen(128)
    except OSError as exc:
        sock.close()
        raise ConfigError(f"--bind: cannot listen on {host}:{port}: {exc.strerror}") from None
    return sock


def serve(client: Client, bind: str, token_file: Optional[str], read_only: bool, hosts: str) -> int:
    """Serve the dashboard until interrupted; return the exit code."""
    host, port = parse_bind(bind)
    token = read_token(token_file)
    check_bind(host, token)
    allowed = [h.strip() for h in hosts.split(",") if h.strip()]
    if not is_loopback(host) and host not in ("0.0.0.0", "::"):
        allowed.append(host)
    from . import create_app  # a ConfigError saying how to install the extra, if it is missing

    try:
        import uvicorn
    except ImportError:
        raise ConfigError("the web dashboard needs the web extra: pip install 'qw[web]' (no uvicorn)") \
            from None

    app = create_app(client, token=token, read_only=read_only, allowed_hosts=tuple(allowed))
    sock = bind_socket(host, port)
    shown = f"[{host}]" if ":" in host else host
    mode = "read-only" if read_only or token is None else "token required"
    names = ", ".join(sorted(app.guard.allowed_hosts))
    print(f"qw dashboard on http://{shown}:{sock.getsockname()[1]}/ ({mode}; answers Host {names}); "
          f"Ctrl-C stops it", flush=True)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False, server_header=False,
                                           lifespan="off"))
    server.run(sockets=[sock])
    return 0
