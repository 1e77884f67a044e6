"""Who may see and change what: the token, the session cookie, CSRF, the Host allowlist, headers.

- With no token configured the dashboard shows everything and changes
  nothing (read-only, and says so); ``read_only`` forces that with a token.
- With a token every page and action needs it: a login form that sets an
  ``HttpOnly``, ``SameSite=Strict`` cookie, or ``Authorization: Bearer``
  for scripts. Secrets are compared with :func:`hmac.compare_digest`.
- The cookie and the CSRF token are HMACs under a key drawn when the
  process starts: neither holds the token, and a restart ends every session.
- A change is a POST from the same origin (``Sec-Fetch-Site``, ``Origin``)
  carrying the CSRF token.
- A Host header off the allowlist is refused, against DNS rebinding.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import secrets
from dataclasses import dataclass, field
from typing import Iterable, Mapping, Optional

COOKIE = "qw_session"
CSRF_FIELD = "csrf"
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")

SECURITY_HEADERS = (
    ("content-security-policy",
     "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
     "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"),
    ("x-content-type-options", "nosniff"),
    ("x-frame-options", "DENY"),
    ("referrer-policy", "same-origin"),
    ("cache-control", "no-store"),
)


def is_loopback(host: str) -> bool:
    """True for a name or address that only this machine reaches."""
    host = host.strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def split_host(header: str) -> str:
    """The host part of a Host header (``[::1]:5010`` -> ``::1``), lower-cased."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[1:].split("]", 1)[0]
    return header.rsplit(":", 1)[0] if header.count(":") == 1 else header


@dataclass
class Guard:
    """The dashboard's rules for one process."""

    token: Optional[str] = None
    read_only: bool = False
    allowed_hosts: frozenset[str] = frozenset(LOOPBACK_NAMES)
    key: bytes = field(default_factory=lambda: secrets.token_bytes(32), repr=False)

    @classmethod
    def make(cls, token: Optional[str], read_only: bool, hosts: Iterable[str] = ()) -> Guard:
        extra = {split_host(h) for h in hosts if h}
        return cls(token or None, read_only, frozenset(LOOPBACK_NAMES) | extra)

    @property
    def can_change(self) -> bool:
        """Actions are shown and accepted: a token is set and not read-only."""
        return self.token is not None and not self.read_only

    @property
    def why_read_only(self) -> str:
        if self.read_only:
            return "read-only: started with --read-only"
        if self.token is None:
            return "read-only: no token is set (QW_WEB_TOKEN or --token-file), so nothing can be changed"
        return ""

    def host_allowed(self, header: str) -> bool:
        return "*" in self.allowed_hosts or split_host(header) in self.allowed_hosts

    def password_ok(self, given: str) -> bool:
        if self.token is None:
            return False
        return hmac.compare_digest(given.encode("utf-8"), self.token.encode("utf-8"))

    def session(self) -> str:
        """The cookie value a login sets: an HMAC of the token under this process's key."""
        return self._mac(b"session:" + (self.token or "").encode("utf-8"))

    def signed_in(self, headers: Mapping[str, str], cookies: Mapping[str, str]) -> bool:
        """True when no token is needed, or the request carries the session cookie or the token."""
        if self.token is None:
            return True
        bearer = headers.get("authorization", "")
        if bearer.lower().startswith("bearer ") and self.password_ok(bearer[7:].strip()):
            return True
        return hmac.compare_digest(cookies.get(COOKIE, "").encode(), self.session().encode())

    def csrf(self) -> str:
        """The token every form that changes something carries."""
        return self._mac(b"csrf:" + self.session().encode())

    def csrf_ok(self, given: str) -> bool:
        return bool(given) and hmac.compare_digest(given.encode("utf-8", "replace"), self.csrf().encode())

    @staticmethod
    def same_origin(headers: Mapping[str, str], scheme: str) -> bool:
        """False when the browser says the request comes from another site or origin."""
        site = headers.get("sec-fetch-site")
        if site is not None and site not in ("same-origin", "none"):
            return False
        origin = headers.get("origin")
        return origin is None or origin == f"{scheme}://{headers.get('host', '')}"

    def _mac(self, message: bytes) -> str:
        return hmac.new(self.key, message, hashlib.sha256).hexdigest()
