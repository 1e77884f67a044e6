"""Helpers for the dashboard's tests: a real ``qw-client web`` process, plain HTTP, failed jobs."""

from __future__ import annotations

import http.client
import json
import re
import subprocess
import time
from dataclasses import dataclass
from typing import Iterator, Optional
from urllib.parse import urlencode

from qw import Client

from conftest import cli_env, free_port, wait_for

TOKEN = "correct-horse-battery-staple"


@dataclass
class Answer:
    status: int
    headers: http.client.HTTPMessage
    text: str

    def header(self, name: str) -> str:
        return self.headers.get(name, "")


class WebServer:
    """``qw-client web`` on a free loopback port, as a subprocess of the test."""

    def __init__(self, redis_url: str, token: Optional[str] = TOKEN, *extra: str) -> None:
        self.port = free_port()
        env = cli_env()
        env.pop("QW_WEB_TOKEN", None)
        if token:
            env["QW_WEB_TOKEN"] = token
        self.process = subprocess.Popen(
            ["qw-client", f"--url={redis_url}", "web", f"--bind=127.0.0.1:{self.port}", *extra],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        wait_for(self._answers, timeout=20, what="qw-client web to answer")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _answers(self) -> bool:
        if self.process.poll() is not None:
            raise AssertionError(f"qw-client web exited: {self.process.stdout.read() if self.process.stdout else ''}")
        try:
            self.request("GET", "/login")
            return True
        except OSError:
            return False

    def request(self, method: str, path: str, headers: Optional[dict[str, str]] = None,
                form: Optional[dict[str, object]] = None) -> Answer:
        """One request, no redirect followed; ``form`` is sent urlencoded (lists as repeated fields)."""
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=15)
        body = None
        sent = {"Host": f"127.0.0.1:{self.port}", **(headers or {})}
        if form is not None:
            body = urlencode(form, doseq=True)
            sent["Content-Type"] = "application/x-www-form-urlencoded"
        try:
            connection.request(method, path, body=body, headers=sent)
            response = connection.getresponse()
            return Answer(response.status, response.headers, response.read().decode("utf-8", "replace"))
        finally:
            connection.close()

    def signed_in(self, method: str, path: str, form: Optional[dict[str, object]] = None,
                  headers: Optional[dict[str, str]] = None) -> Answer:
        """A request carrying the token as a script would (``Authorization: Bearer``)."""
        return self.request(method, path, {"Authorization": f"Bearer {TOKEN}", **(headers or {})}, form)

    def csrf(self, path: str = "/failed") -> str:
        """The CSRF token the forms of a page carry."""
        found = re.search(r'name="csrf" value="([0-9a-f]+)"', self.signed_in("GET", path).text)
        assert found, f"no CSRF token on {path}"
        return found.group(1)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def serving(redis_url: str, token: Optional[str] = TOKEN, *extra: str) -> Iterator[WebServer]:
    """A fixture body: one server for the module, stopped at its end."""
    server = WebServer(redis_url, token, *extra)
    yield server
    server.stop()


def failed_by_hand(client: Client, job_id: str, data: dict[str, object], error: str,
                   traceback: str = "Traceback (most recent call last):\n  ...\nValueError: bad\n") -> None:
    """A job as a worker leaves it when it fails for good: its hash with the reasons, its id in all:failed."""
    fields = {key: json.dumps(value) for key, value in data.items()}
    now = time.time()
    fields.update({"qw:enc": "json", "qw:attempts": "1", "qw:error": error, "qw:traceback": traceback,
                   "qw:failed_at": repr(now), "qw:worker": "m1:1", "qw:origin": client.keys.all_jobs,
                   "qw:errors": json.dumps([{"attempt": 1, "error": error, "at": now, "worker": "m1:1"}])})
    client.redis.hset(client.keys.job(job_id), mapping=fields)
    client.redis.lpush(client.keys.all_failed, job_id)


def snapshot(client: Client) -> dict[bytes, object]:
    """Every key with its type, contents and expiry, to show that nothing changed."""
    r = client.redis
    read = {b"string": r.get, b"hash": r.hgetall, b"list": lambda k: r.lrange(k, 0, -1),
            b"set": r.smembers, b"zset": lambda k: r.zrange(k, 0, -1, withscores=True)}
    found = {}
    for key in sorted(r.keys("*")):
        kind = r.type(key)
        found[key] = (kind, read[kind](key), r.ttl(key) > 0)
    return found
