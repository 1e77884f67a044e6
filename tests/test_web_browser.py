"""The dashboard in a real headless Chromium (Debian's, driven by Selenium through chromedriver).

One browser for the session; a real ``qw-client web``, real managers and a
real Redis. Without Chromium these tests skip locally with the reason, and
fail under CI (``$CI`` set), where .ci/run installs it.
"""

from __future__ import annotations

import http.server
import os
import shutil
import threading
import time
from typing import Callable, Iterator

import pytest
from selenium import webdriver  # the test extra
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from web_support import TOKEN, WebServer, failed_by_hand, serving

from qw import Client, Manager

from conftest import RedisServer, free_port, wait_for

CHROMIUM = ("chromium", "chromium-browser", "google-chrome")
SCREENSHOT = os.environ.get("QW_WEB_SCREENSHOT")  # a path: save the overview there (for the README)


def _find(names: tuple[str, ...]) -> str:
    return next((path for path in (shutil.which(n) for n in names) if path), "")


@pytest.fixture(scope="session")
def browser() -> Iterator[webdriver.Chrome]:
    binary, driver = _find(CHROMIUM), _find(("chromedriver",))
    if not binary or not driver:
        why = "Chromium and chromedriver are needed: apt-get install chromium chromium-driver"
        if os.environ.get("CI"):
            pytest.fail(why)
        pytest.skip(why)
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--window-size=1280,900", "--no-first-run"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    chrome = webdriver.Chrome(options=options, service=Service(executable_path=driver))
    chrome.implicitly_wait(0)
    yield chrome
    chrome.quit()


@pytest.fixture(scope="module")
def web(redis_server: RedisServer) -> Iterator[WebServer]:
    yield from serving(redis_server.url)


def _text(chrome: webdriver.Chrome, css: str) -> str:
    # Read in one step in the page: the live refresh may swap the element between a find and a read.
    found = chrome.execute_script("const e = document.querySelector(arguments[0]); return e && e.innerText;", css)
    assert found is not None, f"no {css} on {chrome.current_url}"
    return found.strip()


def _arrived(chrome: webdriver.Chrome, css: str, timeout: float = 15) -> str:
    """The text of ``css`` once the page a click posted to has loaded (a manager may take seconds)."""
    wait_for(lambda: chrome.find_elements(By.CSS_SELECTOR, css), timeout=timeout, what=f"{css} to appear")
    return _text(chrome, css)


def _sign_in(chrome: webdriver.Chrome, web: WebServer, path: str = "/") -> None:
    chrome.get(web.url + path)
    if "/login" in chrome.current_url:
        chrome.find_element(By.ID, "token").send_keys(TOKEN)
        chrome.find_element(By.ID, "sign-in").click()
        wait_for(lambda: "/login" not in chrome.current_url, what="the sign-in to go through")


def _console_errors(chrome: webdriver.Chrome) -> list[str]:
    return [entry["message"] for entry in chrome.get_log("browser") if entry["level"] == "SEVERE"]


def _failed_job(client: Client, start_manager: Callable[..., Manager], data: dict) -> str:
    """A job that really failed in a worker (a traceback and all); the manager is gone afterwards."""
    manager = start_manager("targets:fail", num_workers=1, name="failer", max_attempts=1)
    job_id = client.queue_job(data)
    wait_for(lambda: client.redis.llen(client.keys.all_failed) == 1, what="the job to fail")
    manager.request_stop()
    manager.join(15)
    return job_id


def test_login_then_depth_traceback_escaping_and_retry(browser: webdriver.Chrome, web: WebServer, client: Client,
                                                       start_manager: Callable[..., Manager], records) -> None:
    job_id = _failed_job(client, start_manager, {"x": "<script>alert(1)</script>", "dir": str(records.dir)})
    client.queue_jobs([{"n": i} for i in range(7)])
    browser.delete_all_cookies()
    browser.get(web.url + "/")
    assert "/login" in browser.current_url
    browser.find_element(By.ID, "token").send_keys("wrong-token-entirely")
    browser.find_element(By.ID, "sign-in").click()
    assert _arrived(browser, "#message") == "Wrong token."
    browser.find_element(By.ID, "token").send_keys(TOKEN)
    browser.find_element(By.ID, "sign-in").click()
    assert _arrived(browser, "#count-queued") == "7"
    browser.get_log("browser")  # the refused sign-in logged its 403: drop it
    assert _text(browser, '[data-queue="all:jobs"]') == "7"
    assert _text(browser, "#count-failed") == "1"
    browser.get(f"{web.url}/jobs/{job_id}")
    assert "ValueError: bad value" in _text(browser, "#traceback")
    assert "Traceback (most recent call last)" in _text(browser, "#traceback")
    assert "<script>alert(1)</script>" in _text(browser, "#data")  # shown as text, not run
    browser.find_element(By.ID, "retry").click()
    assert f"{job_id}: queued" in _arrived(browser, "#outcome")
    assert job_id in client.get_all_queued_jobs() and client.redis.llen(client.keys.all_failed) == 0
    client.redis.delete(client.keys.all_jobs)  # leave only the retried job for the manager to run
    client.redis.lpush(client.keys.all_jobs, job_id)
    start_manager("targets:record", num_workers=1, name="runner")
    wait_for(lambda: records.done(job_id) == 1, what="the retried job to run")
    assert _console_errors(browser) == []


def test_live_refresh_without_reload(browser: webdriver.Chrome, web: WebServer, client: Client) -> None:
    _sign_in(browser, web, "/?poll=1")
    browser.get(web.url + "/?poll=1")
    assert _text(browser, "#count-queued") == "0"
    browser.execute_script("window.qwNotReloaded = true")
    client.queue_jobs([{"n": i} for i in range(3)])
    wait_for(lambda: _text(browser, "#count-queued") == "3", timeout=10, what="the count to refresh")
    assert browser.execute_script("return window.qwNotReloaded === true")
    browser.find_element(By.ID, "live-toggle").click()
    assert _text(browser, "#live-state") == "paused"
    client.queue_job({"n": "more"})
    time.sleep(2.5)
    assert _text(browser, "#count-queued") == "3"
    assert _console_errors(browser) == []


def test_scaling_a_manager_from_the_workers_page(browser: webdriver.Chrome, web: WebServer, client: Client,
                                                 start_manager: Callable[..., Manager], records) -> None:
    start_manager(num_workers=1, name="m1")
    wait_for(lambda: len(client.get_manager_workers("m1")) == 1, what="one worker")
    _sign_in(browser, web, "/workers")

    def controls() -> list:
        browser.get(web.url + "/workers?poll=0")  # its controls show once the manager's lease is live
        return browser.find_elements(By.CSS_SELECTOR, '#manager-m1 input[name="n"]')
    wait_for(controls, what="the manager's controls")
    field = browser.find_element(By.CSS_SELECTOR, '#manager-m1 input[name="n"]')
    field.clear()
    field.send_keys("3")
    browser.find_element(By.CSS_SELECTOR, "#manager-m1 button.scale").click()
    assert "3" in _arrived(browser, "#outcome")
    wait_for(lambda: len(client.get_manager_workers("m1")) == 3, what="three workers")

    def rows() -> int:
        browser.get(web.url + "/workers?poll=0")
        return len(browser.find_elements(By.CSS_SELECTOR, "#manager-m1 tr.worker"))
    wait_for(lambda: rows() == 3, what="three worker rows")
    if SCREENSHOT:  # the README's picture: a real manager after real jobs
        client.queue_jobs([{"dir": str(records.dir), "sleep": 0.05} for _ in range(60)])
        client.queue_jobs([{"dir": str(records.dir), "sleep": 30} for _ in range(2)])
        wait_for(lambda: records.total_done() >= 60, timeout=30, what="the jobs to run")
        time.sleep(2)  # a tick of the manager: its counts reach the stats
        browser.get(web.url + "/?poll=0")
        browser.save_screenshot(SCREENSHOT)


class _Evil(http.server.BaseHTTPRequestHandler):
    target = ""
    timeout = 5  # seconds an idle connection is kept

    def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
        page = (f'<form method="post" action="{self.target}/failed/purge"><input name="csrf" value="guess">'
                f'<button id="go" type="submit">win a prize</button></form>').encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(page)))
        self.end_headers()
        self.wfile.write(page)

    def log_message(self, *args: object) -> None:
        pass


def test_a_form_on_another_origin_cannot_change_anything(browser: webdriver.Chrome, web: WebServer,
                                                         client: Client) -> None:
    client.redis.lpush(client.keys.all_failed, "kept")
    _sign_in(browser, web, "/failed")
    _Evil.target = web.url
    # Threads: a connection the browser opens ahead and leaves idle must not hold up the others.
    evil = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), _Evil)
    evil.daemon_threads = True
    thread = threading.Thread(target=evil.serve_forever, daemon=True)
    thread.start()
    try:
        browser.get(f"http://localhost:{evil.server_address[1]}/")
        browser.find_element(By.ID, "go").click()
        assert "refused: this request comes from another site" in _arrived(browser, "#message")
    finally:
        evil.shutdown()
        evil.server_close()
    assert client.redis.lrange(client.keys.all_failed, 0, -1) == [b"kept"]


def test_each_page_shows_what_redis_holds_and_logs_no_console_error(browser: webdriver.Chrome, web: WebServer,
                                                                    client: Client) -> None:
    client.queue_jobs([{"n": i} for i in range(3)])
    client.queue_job({"x": 1}, job_id="j1", queue="emails")
    for i in range(2):
        failed_by_hand(client, f"f{i}", {"i": i}, "KeyError: 'user'")
    client.redis.zadd(client.keys.all_scheduled, {"later": time.time() + 3600})
    _sign_in(browser, web, "/")
    browser.get_log("browser")  # drop what came before
    expected = {"/?poll=0": {"#count-queued": "3", "#count-failed": "2", "#count-scheduled": "1"},
                "/queues?poll=0": {'[data-queue="all:jobs"]': "3", "#scheduled": "1"},
                "/queues/shared?poll=0": {"#depth": "3"},
                "/queues/named/emails?poll=0": {"#depth": "1"},
                "/queues/scheduled?poll=0": {"#count": "1"},
                "/failed?poll=0": {"#failed-total": "2", '[data-type="KeyError"] td.num': "2"},
                "/jobs/j1?poll=0": {"#state": "queued"},
                "/jobs?state=failed&poll=0": {"#looked": "2 match(es) among 2 job(s) looked at."},
                "/workers?poll=0": {}}
    for path, shown in expected.items():
        browser.get(web.url + path)
        for css, text in shown.items():
            assert _text(browser, css) == text, (path, css)
    assert _console_errors(browser) == []


def test_the_live_page_says_when_redis_is_gone_and_recovers(browser: webdriver.Chrome,
                                                            private_redis: RedisServer) -> None:
    server = WebServer(private_redis.url)
    try:
        browser.get(server.url + "/login?next=%2F%3Fpoll%3D1")
        browser.find_element(By.ID, "token").send_keys(TOKEN)
        browser.find_element(By.ID, "sign-in").click()
        assert _arrived(browser, "#count-queued") == "0"
        private_redis.kill()
        wait_for(lambda: "cannot reach Redis" in _text(browser, "#live-state"), what="the page to say so")
        private_redis.start()
        Client(url=private_redis.url).queue_job({"n": 1})
        wait_for(lambda: _text(browser, "#count-queued") == "1", what="the page to recover")
        assert _text(browser, "#live-state") == "refreshing every 1 s"
    finally:
        server.stop()
