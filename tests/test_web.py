"""The dashboard's rules over plain HTTP, against a real ``qw-client web`` and a real Redis.

Safe by default: loopback only unless a token is set, GET never changes
anything, every change is a same-origin POST with the CSRF token, a wrong
token is refused, read-only means read-only, Redis's text is escaped, bad
parameters are a 400, an unreachable Redis is a 503 that recovers.
"""

from __future__ import annotations

import re
from typing import Iterator

import pytest
from web_support import TOKEN, WebServer, failed_by_hand, serving, snapshot

from qw import Client
from qw.web.guard import is_loopback
from qw.web.serve import parse_bind

from conftest import RedisServer, run_cli, wait_for

PAGES = ["/", "/?hours=24", "/queues", "/queues/shared", "/queues/scheduled", "/queues/named/emails", "/queues/manager/m1", "/workers",
         "/jobs", "/jobs?state=failed&all=1", "/jobs?task=x&error=bad&all=1", "/jobs/j1", "/failed",
         "/failed?type=ValueError", "/login"]


@pytest.fixture(scope="module")
def web(redis_server: RedisServer) -> Iterator[WebServer]:
    yield from serving(redis_server.url)


@pytest.fixture(scope="module")
def open_web(redis_server: RedisServer) -> Iterator[WebServer]:
    yield from serving(redis_server.url, None)


@pytest.fixture(scope="module")
def read_only_web(redis_server: RedisServer) -> Iterator[WebServer]:
    yield from serving(redis_server.url, TOKEN, "--read-only")


def test_it_listens_on_loopback_unless_told(redis_server: RedisServer) -> None:
    from docopt import docopt

    from qw.cli import client as cli

    default = docopt(cli.__doc__, ["web"])["--bind"]
    assert parse_bind(default) == ("127.0.0.1", 5010) and is_loopback(parse_bind(default)[0])
    refused = run_cli("qw-client", f"--url={redis_server.url}", "web", "--bind=0.0.0.0:0")
    assert refused.returncode == 1
    assert refused.stderr.strip().count("\n") == 0 and "QW_WEB_TOKEN" in refused.stderr
    bad = run_cli("qw-client", f"--url={redis_server.url}", "web", "--bind=127.0.0.1:http")
    assert bad.returncode == 1 and "not a port number" in bad.stderr and "Traceback" not in bad.stderr


def test_a_page_needs_the_token_and_a_wrong_one_is_refused(web: WebServer, client: Client) -> None:
    assert web.request("GET", "/").status == 303  # to the login form
    assert web.request("GET", "/", {"Authorization": "Bearer wrong-token-of-length"}).status == 303
    wrong = web.request("POST", "/login", form={"token": "not-the-token", "next": "/"})
    assert wrong.status == 403 and "Wrong token" in wrong.text and not wrong.header("set-cookie")
    right = web.request("POST", "/login", form={"token": TOKEN, "next": "/failed"})
    assert right.status == 303 and right.header("location") == "/failed"
    cookie = right.header("set-cookie")
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie.replace("Strict", "strict")
    assert TOKEN not in cookie  # the cookie is a MAC, not the token
    session = cookie.split(";")[0]
    assert web.request("GET", "/", {"Cookie": session}).status == 200
    assert web.request("GET", "/", {"Cookie": "qw_session=forged"}).status == 303
    # Back to a page of ours only.
    away = web.request("POST", "/login", form={"token": TOKEN, "next": "//evil.example/"})
    assert away.header("location") == "/"


def test_no_get_changes_anything(web: WebServer, client: Client) -> None:
    failed_by_hand(client, "j1", {"x": 1}, "ValueError: bad")
    client.queue_job({"x": 2}, job_id="j2")
    before = snapshot(client)
    for path in PAGES + ["/failed/retry?id=j1&all=1", "/failed/delete?id=j1", "/failed/purge",
                         "/managers/m1/stop", "/logout"]:
        answer = web.signed_in("GET", path)
        assert answer.status in (200, 303, 405), (path, answer.status)
    assert snapshot(client) == before


def test_a_post_without_the_csrf_token_is_refused(web: WebServer, client: Client) -> None:
    failed_by_hand(client, "j1", {"x": 1}, "ValueError: bad")
    for form in ({"id": "j1"}, {"id": "j1", "csrf": "0" * 64}):
        answer = web.signed_in("POST", "/failed/retry", form)
        assert answer.status == 403 and "CSRF" in answer.text
    assert client.redis.lrange(client.keys.all_failed, 0, -1) == [b"j1"]
    answer = web.signed_in("POST", "/failed/retry", {"id": "j1", "csrf": web.csrf()})
    assert answer.status == 200 and "j1: queued" in answer.text
    assert client.get_all_queued_jobs() == ["j1"] and client.redis.llen(client.keys.all_failed) == 0


def test_a_post_from_another_origin_is_refused_even_with_the_token(web: WebServer, client: Client) -> None:
    failed_by_hand(client, "j1", {"x": 1}, "ValueError: bad")
    csrf = web.csrf()
    for headers in ({"Sec-Fetch-Site": "cross-site"}, {"Origin": "http://evil.example"}):
        answer = web.signed_in("POST", "/failed/delete", {"id": "j1", "csrf": csrf}, headers)
        assert answer.status == 403 and "another site" in answer.text
    assert client.redis.exists(client.keys.job("j1"))


def test_delete_and_group_actions(web: WebServer, client: Client) -> None:
    for i in range(3):
        failed_by_hand(client, f"v{i}", {"i": i}, f"ValueError: bad {i}")
    failed_by_hand(client, "k0", {}, "KeyError: 'x'")
    csrf = web.csrf()
    page = web.signed_in("GET", "/failed").text
    assert 'data-type="ValueError"' in page and 'data-type="KeyError"' in page
    answer = web.signed_in("POST", "/failed/delete", {"id": ["v0"], "csrf": csrf})
    assert "v0: deleted" in answer.text and not client.redis.exists(client.keys.job("v0"))
    answer = web.signed_in("POST", "/failed/retry", {"group": "ValueError", "csrf": csrf})
    assert sorted(client.get_all_queued_jobs()) == ["v1", "v2"]
    assert [f.id for f in client.get_failed_jobs()] == ["k0"]
    web.signed_in("POST", "/failed/purge", {"csrf": csrf})
    assert client.get_failed_jobs() == [] and not client.redis.exists(client.keys.job("k0"))


def test_redis_text_is_shown_escaped(web: WebServer, client: Client) -> None:
    payload = "<script>alert('x')</script>"
    failed_by_hand(client, "xss", {"name": payload}, f"ValueError: {payload}<img src=x onerror=alert(1)>",
                   traceback=f"Traceback:\n  {payload}\n")
    for path in ("/jobs/xss", "/failed", "/jobs?error=script&all=1"):
        text = web.signed_in("GET", path).text
        assert "<script>alert" not in text and "<img src=x" not in text, path
        assert "&lt;script&gt;alert(" in text, path


def test_without_a_token_it_is_read_only_and_says_so(open_web: WebServer, client: Client) -> None:
    failed_by_hand(client, "j1", {"x": 1}, "ValueError: bad")
    page = open_web.request("GET", "/failed")
    assert page.status == 200 and "read-only: no token is set" in page.text
    assert 'action="/failed/retry"' not in page.text and 'name="csrf"' not in page.text
    answer = open_web.request("POST", "/failed/retry", form={"id": "j1", "csrf": "x"})
    assert answer.status == 403 and client.redis.llen(client.keys.all_failed) == 1


def test_read_only_refuses_every_action_even_signed_in(read_only_web: WebServer, client: Client) -> None:
    failed_by_hand(client, "j1", {"x": 1}, "ValueError: bad")
    page = read_only_web.signed_in("GET", "/jobs/j1")
    assert "read-only: started with --read-only" in page.text and 'id="retry"' not in page.text
    csrf = re.search(r'name="csrf" value="([0-9a-f]*)"', read_only_web.signed_in("GET", "/").text)
    for path in ("/failed/retry", "/failed/purge", "/managers/m1/stop"):
        answer = read_only_web.signed_in("POST", path, {"id": "j1", "csrf": csrf.group(1) if csrf else ""})
        assert answer.status == 403, path
    assert client.redis.llen(client.keys.all_failed) == 1


def test_headers_and_host_allowlist(web: WebServer, client: Client) -> None:
    answer = web.signed_in("GET", "/")
    csp = answer.header("content-security-policy")
    assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp and "unsafe-inline" not in csp
    assert answer.header("x-content-type-options") == "nosniff"
    assert answer.header("cache-control") == "no-store"
    rebound = web.signed_in("GET", "/", headers={"Host": "evil.example:5010"})
    assert rebound.status == 400 and "Host" in rebound.text
    assert "<script>" not in answer.text.replace('<script src="/static/live.js" defer></script>', "")


def test_bad_parameters_are_a_400_and_numbers_are_clamped(web: WebServer, client: Client) -> None:
    for path in ("/failed?page=abc", "/jobs?state=nonsense", "/queues/named/bad%20name",
                 "/queues/manager/all", "/queues/worker/m1", "/queues/nonsense/x", "/jobs?task=" + "x" * 500):
        answer = web.signed_in("GET", path)
        assert answer.status == 400 and "bad request" in answer.text, path
    for path in ("/failed?size=100000&page=-5", "/?poll=100000", "/queues/shared?page=999999"):
        assert web.signed_in("GET", path).status == 200, path
    assert 'data-poll="60"' in web.signed_in("GET", "/?poll=100000").text
    failed_by_hand(client, "j1", {}, "ValueError: bad")
    csrf = web.csrf()
    answer = web.signed_in("POST", "/managers/m1/format-disk", {"csrf": csrf})
    assert answer.status == 400 and "unknown command" in answer.text


def test_pages_show_what_redis_holds(web: WebServer, client: Client) -> None:
    ids = client.queue_jobs([{"n": i} for i in range(120)])
    client.queue_job({"n": "named"}, queue="emails")

    overview = web.signed_in("GET", "/").text
    assert re.search(r'data-queue="all:jobs">120<', overview)
    first = web.signed_in("GET", "/queues/shared").text
    assert ids[0] in first and ids[49] in first and ids[50] not in first and "page 1 of 3" in first
    third = web.signed_in("GET", "/queues/shared?page=3").text
    assert ids[119] in third and ids[0] not in third
    assert "1</span> job(s)" in web.signed_in("GET", "/queues/named/emails").text
    found = web.signed_in("GET", f"/jobs?id={ids[3]}")
    assert found.status == 303 and found.header("location") == f"/jobs/{ids[3]}"
    assert '"n": 3' in web.signed_in("GET", f"/jobs/{ids[3]}").text.replace("&#34;", '"')
    assert "No record of this job" in web.signed_in("GET", "/jobs/nope").text


def test_an_unreachable_redis_is_one_line_and_recovers(private_redis: RedisServer) -> None:
    server = WebServer(private_redis.url)
    try:
        assert server.signed_in("GET", "/").status == 200
        private_redis.kill()
        down = server.signed_in("GET", "/")
        assert down.status == 503 and "cannot reach Redis" in down.text and "Traceback" not in down.text
        private_redis.start()
        wait_for(lambda: server.signed_in("GET", "/").status == 200, timeout=10, what="the dashboard to recover")
    finally:
        server.stop()


def test_a_manager_scales_from_the_dashboard(web: WebServer, client: Client, start_manager) -> None:
    start_manager(num_workers=1, name="m1")
    wait_for(lambda: len(client.get_manager_workers("m1")) == 1, what="one worker")
    answer = web.signed_in("POST", "/managers/m1/scale", {"n": "3", "csrf": web.csrf("/workers")})
    assert answer.status == 200, answer.text
    wait_for(lambda: len(client.get_manager_workers("m1")) == 3, what="three workers")
    wait_for(lambda: web.signed_in("GET", "/workers").text.count('class="worker"') == 3, what="three rows")



def test_create_app_mounts_under_a_prefix(redis_server: RedisServer, client: Client) -> None:
    import threading

    import uvicorn
    from starlette.applications import Starlette
    from starlette.routing import Mount

    from qw.web import create_app
    from qw.web.serve import bind_socket

    client.queue_jobs([{"n": 1}, {"n": 2}])
    outer = Starlette(routes=[Mount("/ops", app=create_app(Client(url=redis_server.url), token=TOKEN,
                                                              prefix="/qw"))])
    sock = bind_socket("127.0.0.1", 0)
    server = uvicorn.Server(uvicorn.Config(outer, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        web = WebServer.__new__(WebServer)
        web.port = sock.getsockname()[1]
        wait_for(lambda: server.started, what="uvicorn to start")
        assert web.request("GET", "/ops/qw/").header("location") == "/ops/qw/login?next=%2F"
        page = web.signed_in("GET", "/ops/qw/")
        assert page.status == 200 and 'href="/ops/qw/failed"' in page.text
        assert re.search(r'data-queue="all:jobs">2<', page.text)
        assert web.signed_in("GET", "/ops/qw/static/style.css").status == 200
    finally:
        server.should_exit = True
        thread.join(10)


def test_search_reads_small_lists_whole_and_shares_the_rest() -> None:
    from qw.web.jobs import allot

    assert allot([100_000, 3, 0, 50_000], 2_000) == [998, 3, 0, 998]
    assert allot([5, 6], 2_000) == [5, 6]
    assert allot([], 2_000) == []


def test_the_charts_are_svg_of_the_kept_figures(client: Client) -> None:
    from qw.web import charts

    recent = charts.recent(client, hours=6)
    assert len(recent["series"]) == 60 and recent["step"] == 6
    series = [{"start": 0, "settled": 10, "failed": 5}, {"start": 60, "settled": 0, "failed": 0},
              {"start": 120, "settled": 20, "failed": 0}]
    bars = charts.throughput_svg(series, 6)
    assert bars.count("<rect") == 3 and "max 20 per 6 min" in bars
    line = charts.failure_svg(series)
    assert line.count("<circle") == 2 and "50.0 %" in line and "<polyline" in line
    client.queue_jobs([{"n": 1}, {"n": 2}])  # counted as queued in today's figures
    days = charts.days(client)
    assert len(days) == 7 and days[0]["queued"] == 2 and days[1]["queued"] == 0


def test_search_by_tag_where_records_keep_tags(web: WebServer, client: Client) -> None:
    client.queue_job({"n": 1}, job_id="tagged")
    client.queue_job({"n": 2}, job_id="plain")
    client.redis.hset(client.keys.job("tagged"), "qw:tags", '["billing", "eu"]')  # as the results work keeps them
    page = web.signed_in("GET", "/jobs?tag=billing&all=1").text
    assert "/jobs/tagged" in page and "/jobs/plain" not in page and '<span class="tag">eu</span>' in page
    assert '<span class="tag">billing</span>' in web.signed_in("GET", "/jobs/tagged").text


def test_the_token_comes_from_a_file_and_a_short_one_is_refused(redis_server: RedisServer, tmp_path) -> None:
    short = tmp_path / "short"
    short.write_text("abc\n")
    refused = run_cli("qw-client", f"--url={redis_server.url}", "web", f"--token-file={short}")
    assert refused.returncode == 1 and "at least 12 characters" in refused.stderr
    missing = run_cli("qw-client", f"--url={redis_server.url}", "web", f"--token-file={tmp_path / 'none'}")
    assert missing.returncode == 1 and "cannot read" in missing.stderr and "Traceback" not in missing.stderr


def test_a_kept_record_shows_its_state_result_and_history(web: WebServer, client: Client) -> None:
    # The fields docs/records.md describes, as the results work writes them.
    client.redis.hset(client.keys.job("done1"), mapping={
        "qw:enc": "json", "n": "1", "qw:task": "mail.send", "qw:args": '["<b>ada</b>"]', "qw:state": "done",
        "qw:result": '{"sent": true, "id": "<i>x</i>"}', "qw:attempts": "1",
        "qw:history": '[{"event": "queued", "at": 1796190000.5}, {"event": "claimed", "at": 1796190001.0,'
                      ' "worker": "m1:1"}, {"event": "done", "at": 1796190002.0}]'})
    page = web.signed_in("GET", "/jobs/done1").text
    assert '<dd id="state">done' in page and 'id="result"' in page and "&lt;i&gt;x&lt;/i&gt;" in page
    assert "&lt;b&gt;ada&lt;/b&gt;" in page and "<b>ada" not in page
    assert page.count("<tr><td>2026-") == 3 and "worker: m1:1" in page


def test_what_another_program_wrote_does_not_break_a_page(web: WebServer, client: Client) -> None:
    keys = client.keys
    client.redis.sadd(keys.all_managers, "odd")
    client.redis.hset(keys.manager_info("odd"), mapping={"started": "soon", "queues": '["bad name", 3]',
                                                          "tasks": "not json", "running": "<b>2</b>"})
    client.redis.sadd(keys.manager_workers("odd"), "odd:1")
    client.redis.hset(keys.manager_health("odd"), mapping={"odd:1": '{"busy_for": "x", "since_last_claim": []}'})
    client.redis.lpush(keys.worker_jobs("odd:1"), "<script>")
    for path in ("/", "/workers", "/queues", "/jobs?all=1"):
        answer = web.signed_in("GET", path)
        assert answer.status == 200 and "<b>2" not in answer.text and "<script>\n" not in answer.text, path


def test_a_queue_with_priorities_is_listed_in_the_order_jobs_run(web: WebServer, client: Client) -> None:
    plain = [client.queue_job({"n": i}, job_id=f"p{i}") for i in range(3)]
    client.queue_job({"n": "urgent"}, job_id="urgent", priority=-5)
    client.queue_job({"n": "late"}, job_id="late", priority=7)
    assert client.get_all_queued_jobs() == ["urgent", *plain, "late"]  # qw's own order
    overview = web.signed_in("GET", "/").text
    assert re.search(r'data-queue="all:jobs">5<', overview) and re.search(r'id="count-queued">5<', overview)
    listed = re.findall(r'class="id" href="/jobs/([^"]+)"', web.signed_in("GET", "/queues/shared").text)
    assert listed == ["urgent", *plain, "late"] and "qw:prio" not in "".join(listed)
    pages = [re.findall(r'class="id" href="/jobs/([^"]+)"', web.signed_in("GET", f"/queues/shared?size=2&page={n}").text)
             for n in (1, 2, 3)]
    assert pages == [["urgent", "p0"], ["p1", "p2"], ["late"]]


def test_records_of_finished_jobs_are_found_and_a_queued_job_cancelled(web: WebServer, client: Client,
                                                                       start_manager, records) -> None:
    kept = client.queue_job({"dir": str(records.dir)}, result_ttl=300, tags=["nightly"])
    start_manager(num_workers=1, name="m1")
    wait_for(lambda: client.job(kept).state == "done", what="the job to be done")
    found = web.signed_in("GET", "/jobs?state=done&all=1").text
    assert f"/jobs/{kept}" in found and '<span class="tag">nightly</span>' in found
    assert f"/jobs/{kept}" not in web.signed_in("GET", "/jobs?state=cancelled&all=1").text
    page = web.signed_in("GET", f"/jobs/{kept}").text
    assert '<dd id="state">done' in page and 'id="history"' in page and 'id="cancel"' not in page
    waiting = client.queue_job({"n": 1}, queue="nobody-serves-this")
    page = web.signed_in("GET", f"/jobs/{waiting}").text
    assert 'id="cancel"' in page
    answer = web.signed_in("POST", "/cancel", {"id": waiting, "csrf": web.csrf(f"/jobs/{waiting}")})
    assert answer.status == 200 and f"{waiting}: cancelled" in answer.text
    assert client.job(waiting).state == "cancelled"
    assert f"/jobs/{waiting}" in web.signed_in("GET", "/jobs?state=cancelled&all=1").text


def test_the_overview_counts_jobs_waiting_for_others(web: WebServer, client: Client) -> None:
    first = client.queue_job({"n": 1}, queue="nobody-serves-this")
    client.queue_job({"n": 2}, depends_on=[first])
    assert re.search(r'id="count-waiting"><a href="/jobs\?state=waiting">1<', web.signed_in("GET", "/").text)
    assert "1 match(es)" in web.signed_in("GET", "/jobs?state=waiting").text


def test_the_overview_shows_one_task_or_queue_and_refuses_a_bad_one(web: WebServer, client: Client) -> None:
    page = web.signed_in("GET", "/?task=mail.send&hours=6").text
    assert "Last 6 hour(s): task mail.send" in page and "(not kept per task or queue)" in page
    assert "queue emails" in web.signed_in("GET", "/?queue=emails").text
    for bad in ("/?task=a%20b", "/?queue=all", "/?task=x&queue=y"):
        answer = web.signed_in("GET", bad)
        assert answer.status == 400 and "bad request" in answer.text, bad


def test_recurring_schedules_pause_resume_and_run_now(web: WebServer, client: Client) -> None:
    client.recur("nightly", task="reports.build", every=3600, queue="reports")
    page = web.signed_in("GET", "/recurring").text
    assert 'data-name="nightly"' in page and "reports.build" in page
    csrf = web.csrf("/recurring")
    answer = web.signed_in("POST", "/recurring/nightly/pause", {"csrf": csrf})
    assert answer.status == 200 and client.recurring()[0]["paused"]
    assert ">paused<" in web.signed_in("GET", "/recurring").text
    web.signed_in("POST", "/recurring/nightly/resume", {"csrf": csrf})
    assert not client.recurring()[0]["paused"]
    answer = web.signed_in("POST", "/recurring/nightly/run", {"csrf": csrf})
    assert answer.status == 200 and "queued run" in answer.text
    assert client.redis.llen(client.keys.named_queue("reports")) == 1
    assert web.signed_in("POST", "/recurring/nightly/remove", {"csrf": csrf}).status == 400
    assert web.signed_in("POST", "/recurring/nobody/pause", {"csrf": csrf}).status == 400
    assert web.signed_in("POST", "/recurring/nightly/run", {}).status == 403  # no CSRF token
