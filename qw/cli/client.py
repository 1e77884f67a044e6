"""qw-client: queue jobs and look at managers, workers and jobs.

Usage:
  qw-client [--host=<host>] [--port=<port>] [--db=<db>] [options] managers
  qw-client [--host=<host>] [--port=<port>] [--db=<db>] [options] workers [<manager>]
  qw-client [--host=<host>] [--port=<port>] [--db=<db>] [options] jobs [<manager>]
  qw-client [--host=<host>] [--port=<port>] [--db=<db>] [options] job <job_id>...
  qw-client [--host=<host>] [--port=<port>] [--db=<db>] [options] result <job_id>
  qw-client [--host=<host>] [--port=<port>] [--db=<db>] [options] cancel <job_id>...
  qw-client [--host=<host>] [--port=<port>] [--db=<db>] [options] priority <job_id> <priority>
  qw-client [--host=<host>] [--port=<port>] [--db=<db>] [options] (track | untrack) <job_id>...
  qw-client [--host=<host>] [--port=<port>] [--db=<db>] [options] tracked
  qw-client [--host=<host>] [--port=<port>] [--db=<db>] [options] queue string <data> [<manager>]
  qw-client [--host=<host>] [--port=<port>] [--db=<db>] [options] queue file <file> [<manager>]
  qw-client [--host=<host>] [--port=<port>] [--db=<db>] [options] queue task <task> [<args>] [<manager>]
  qw-client [--host=<host>] [--port=<port>] [--db=<db>] [options] recur add <name> (--every=<seconds> | --cron=<expr>) [<data>] [<manager>]
  qw-client [--host=<host>] [--port=<port>] [--db=<db>] [options] recur list
  qw-client [--host=<host>] [--port=<port>] [--db=<db>] [options] recur (remove | pause | resume | run) <name>
  qw-client [--host=<host>] [--port=<port>] [--db=<db>] [options] failed
  qw-client [--host=<host>] [--port=<port>] [--db=<db>] [options] retry (--all | <job_id>...)
  qw-client [--host=<host>] [--port=<port>] [--db=<db>] [options] purge
  qw-client [--host=<host>] [--port=<port>] [--db=<db>] [options] ping [<manager>]
  qw-client [--host=<host>] [--port=<port>] [--db=<db>] [options] stats [<manager>]
  qw-client [--host=<host>] [--port=<port>] [--db=<db>] [options] info [<manager>]
  qw-client [--host=<host>] [--port=<port>] [--db=<db>] [options] tasks [<filter>]
  qw-client [--host=<host>] [--port=<port>] [--db=<db>] [options] top [<manager>]
  qw-client [--host=<host>] [--port=<port>] [--db=<db>] [options] scale <manager> <n>
  qw-client [--host=<host>] [--port=<port>] [--db=<db>] [options] (expand | contract) <manager>
  qw-client [--host=<host>] [--port=<port>] [--db=<db>] [options] (reload | pause | resume | stop) <manager>
  qw-client [--host=<host>] [--port=<port>] [--db=<db>] [options] web [--bind=<address>] [--read-only] [--token-file=<file>] [--allow-host=<names>]
  qw-client (-h | --help | --version)

Commands:
  managers        List registered managers and whether each holds a live lease.
  workers         List the workers of one manager (or of all) and their jobs;
                  flag those whose claims have not reached Redis for 10 s.
  jobs            Show queued, in-progress, scheduled (delayed, or waiting for
                  a retry) and failed jobs (of one manager), orphaned manager
                  queues, and the recurring schedules; with --state, --tag or
                  --task: the jobs that match, most recent first, with their
                  state (at most --limit).
  job             Everything a job's record holds: state, task and arguments
                  or data, result or error, attempts, worker, times, history,
                  tags.
  result          Print the job's result as JSON (waiting up to --wait
                  seconds; default: only look); exit 1 with the error if it
                  failed, was cancelled, has no record or has not finished.
  cancel          Cancel jobs: a queued or scheduled one is removed, a running
                  one is stopped by its manager; neither runs again.
  priority        Give a queued job a new priority (lower runs sooner; 0 is
                  the default): it takes the place of a job queued now with it.
  track           Keep these jobs' records until untracked.
  untrack         Stop tracking; a finished record then expires.
  tracked         List the tracked jobs.
  queue string    Queue one job given as a JSON object; print its id.
  queue file      Queue the JSON object in <file>, or one job per line of a
                  JSON Lines file ('-' reads stdin); print the ids. A bad line
                  queues nothing.
  queue task      Queue a call of <task> (a task name, or an import path
                  'pkg.mod:fn') with the positional arguments in <args>, a
                  JSON array, and the keyword arguments in --kwargs; print
                  its id. With a <manager>, give '[]' for no arguments.
  recur add       Create (or replace) the recurring schedule <name>: every
                  --every seconds on absolute time (shifted by --offset), or
                  on --cron (five fields, or @daily and the like) in --tz. It
                  queues a call of --task (with --args, --kwargs) or the job
                  <data>, one of them, to --queue or <manager>. Every manager
                  fires it; each due time fires once.
  recur list      The schedules: when, what, next and last fire, how the last
                  run ended, fires, skipped overlaps, missed fires.
  recur remove    Delete a schedule (runs already queued stay).
  recur pause     Stop firing a schedule; recur resume fires it again from
                  its next due time.
  recur run       Queue one run of a schedule now, outside its sequence.
  failed          List failed jobs: id, when, attempts, last error.
  retry           Queue failed jobs again, attempts reset.
  purge           Delete every failed job.
  ping            Exit 0 when Redis answers (and <manager>, if named, holds a
                  live lease), else print why and exit 1: a liveness probe.
  stats           Jobs queued, processed, failed, retried, requeued; jobs/s,
                  failure rate, wait and run time percentiles: for the last
                  1, 5, 15 and 60 minutes, the history, and each day; of one
                  task or named queue only with --task or --queue.
  info            Managers, their workers, what each runs and for how long,
                  queue depths, in-progress, scheduled and failed counts, jobs/s,
                  and the table of tasks.
  tasks           Per task: the workers that can run it, its jobs running now
                  and queued; only tasks whose name contains <filter>, if given.
  top             info, redrawn every --interval seconds until Ctrl-C.
  scale           Run <n> workers: start new ones, or let the surplus finish
                  their job and leave.
  expand          One worker more (as signal TTIN does).
  contract        One worker fewer (as TTOU): it finishes its job first.
  reload          Re-read the manager's configuration file, import the target
                  afresh and replace every worker (as HUP); old workers finish
                  their job first.
  pause           Stop claiming jobs; running jobs finish.
  resume          Claim jobs again.
  stop            Stop the manager gracefully (as TERM).
  web             Serve the web dashboard (pip install 'qw[web]'): overview,
                  queues, workers, jobs, failed jobs, recurring schedules;
                  retry, delete, cancel, pause and run schedules, and the
                  manager commands above. Changes need a token, from
                  $QW_WEB_TOKEN or --token-file; without one it is read-only.
  Commands to a manager wait until it confirms (or --wait runs out: exit 1)
  and print what changed.

Options:
{connection}  --queue=<queue>          queue: put the job on this named queue (all: all:jobs);
                           stats: figures of this named queue only.
  --worker=<worker>        queue: put the job on this worker's own list.
  --kwargs=<json>          queue task: the keyword arguments, a JSON object.
  --id=<job_id>            queue string, queue task: the job's id; queuing an id
                           that exists does nothing, so a repeated command is
                           harmless.
  --max-attempts=<n>       queue: runs the job gets before it fails for good.
  --timeout=<seconds>      queue: the job's time limit.
  --delay=<seconds>        queue: run the job that many seconds from now.
  --at=<time>              queue: run the job at this ISO 8601 time with its offset
                           (2026-12-24T09:00:00+01:00, or ...Z); a past time runs now.
  --task=<name>            stats: figures of this task only; jobs: its jobs only;
                           recur add: the task it calls.
  --state=<state>          jobs: jobs in this state (queued, scheduled, waiting,
                           running, retrying, done, failed, cancelled).
  --tag=<tag>              jobs: jobs queued with this tag. queue: tags for the
                           job, comma-separated.
  --result-ttl=<seconds>   queue: keep the job's record this long once done.
  --track                  queue: keep the job's record until untracked.
  --priority=<n>           queue: the job's priority in its queue; lower runs
                           sooner, 0 (the default) in arrival order.
  --args=<json>            recur add: the task's positional arguments, a JSON array.
  --every=<seconds>        recur add: fire every that many seconds.
  --offset=<seconds>       recur add: with --every, fire that many seconds past each
                           multiple of it [default: 0].
  --cron=<expr>            recur add: fire on this cron expression ('30 6 * * 1-5').
  --tz=<zone>              recur add: the time zone of --cron (Europe/Paris); default: UTC.
  --catchup=<policy>       recur add: fires missed while no manager ran: skip, latest
                           or all [default: skip].
  --max-catchup=<n>        recur add: with --catchup=all, at most that many [default: 100].
  --no-overlap             recur add: skip a fire while the last run is unfinished.
  --json                   managers, workers, jobs, failed, stats, info, tasks: print JSON.
  --limit=<n>              jobs: ids shown per list in text output [default: 20].
  --wait=<seconds>         How long a command waits for its manager (default: 10);
                           result: how long to wait for the job (default: 0).
  --interval=<seconds>     top: seconds between redraws [default: 1].
  --bind=<address>         web: host[:port] to listen on; beyond 127.0.0.1 only
                           with a token [default: 127.0.0.1:5010].
  --read-only              web: show everything, change nothing, even with a token.
  --token-file=<file>      web: read the token from the first line of <file>
                           rather than $QW_WEB_TOKEN.
  --allow-host=<names>     web: Host names to answer besides localhost, comma-separated
                           (what the browser's address bar shows) [default: ].
  -h --help                Show this text.
  --version                Show the version.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any, Optional

from .. import when
from ..call import Call
from ..client import Client, FailedJob
from ..exceptions import ConfigError, QwError
from ..job import parse_object
from ..keeping import check_priority
from ..recurrence import Recurrence
from ..version import __version__
from . import records as record_commands
from .common import CONNECTION_OPTIONS, EXIT_ERROR, EXIT_OK, connection_kwargs, integer, number, parse, run
from .input import parse_arguments, parse_jobs, read_text
from .schedules_table import format_schedules, moment
from .tasks_table import format_tasks
from .watch import dumps, format_info, format_stats, info_report, top

COMMANDS = ("scale", "expand", "contract", "reload", "pause", "resume", "stop")

__doc__ = __doc__.replace("{connection}", CONNECTION_OPTIONS)


def main(argv: Optional[list[str]] = None) -> None:
    """Entry point of ``qw-client``."""
    run("qw-client", lambda: _main(argv))


def _main(argv: Optional[list[str]]) -> int:
    args = parse(__doc__, argv, f"qw-client {__version__}")
    limit = integer(args["--limit"], "--limit", minimum=0)
    if args["recur"]:
        return recur(args)
    if args["queue"]:
        # Check the input before touching Redis: bad data never half-queues.
        if args["task"]:
            call = task_call(args)
            print(Client(**connection_kwargs(args)).queue_call(call))
            return EXIT_OK
        if args["--kwargs"] is not None:
            raise ConfigError("--kwargs is for 'queue task'")
        if args["string"]:
            jobs = [parse_object(args["<data>"])]
        else:
            jobs = parse_jobs(read_text(args["<file>"]), args["<file>"])
        return queue(Client(**connection_kwargs(args)), jobs, args)
    client = Client(**connection_kwargs(args))
    if args["web"]:
        # No ping: the dashboard starts while Redis is down and says so on every page.
        from ..web.serve import serve

        return serve(client, args["--bind"], args["--token-file"], args["--read-only"], args["--allow-host"])
    client.ping()
    if args["retry"]:
        return retry(client, args)
    if args["purge"]:
        print(f"purged {client.purge_failed()} failed job(s)")
        return EXIT_OK
    if args["ping"]:
        return ping(client, args["<manager>"])
    if args["job"]:
        return record_commands.show_jobs(client, args["<job_id>"], args["--json"])
    if args["result"]:
        return record_commands.show_result(client, args["<job_id>"][0], args["--wait"])
    if args["cancel"]:
        return record_commands.cancel(client, args["<job_id>"])
    if args["priority"]:
        return record_commands.reprioritise(client, args["<job_id>"][0], priority_of(args["<priority>"], "<priority>"))
    if args["track"] or args["untrack"]:
        return record_commands.track(client, args["<job_id>"], on=bool(args["track"]))
    if args["tracked"]:
        return record_commands.show_tracked(client, args["--json"])
    if args["jobs"] and (args["--state"] or args["--tag"] or args["--task"]):
        return record_commands.search(client, args["--state"], args["--tag"], args["--task"], limit,
                                      args["--json"])
    manager = args["<manager>"]
    command = next((c for c in COMMANDS if args[c]), None)
    if command:
        return control(client, manager, command, args)
    if args["top"]:
        interval = number(args["--interval"], "--interval")
        if interval <= 0:
            raise ConfigError("--interval must be positive")
        return top(client, manager, interval)
    if args["stats"]:
        report = client.get_stats(manager, task=args["--task"], queue=args["--queue"])
        print(dumps(report) if args["--json"] else format_stats(report))
        return EXIT_OK
    if args["tasks"]:
        table = client.get_tasks(name_filter=args["<filter>"] or "")
        print(dumps(table) if args["--json"] else format_tasks(table, args["<filter>"] or ""))
        return EXIT_OK
    if args["info"]:
        report = info_report(client, manager)
        print(dumps(report) if args["--json"] else format_info(report))
        return EXIT_OK
    if args["managers"]:
        report: Any = managers_report(client)
        text = format_managers
    elif args["workers"]:
        report = workers_report(client, manager)
        text = format_workers
    elif args["failed"]:
        report = [failed_entry(f, full=args["--json"]) for f in client.get_failed_jobs()]
        text = format_failed
    else:
        report = jobs_report(client, manager)
        text = lambda r: format_jobs(r, limit)  # noqa: E731
    print(json.dumps(report, indent=2, ensure_ascii=False) if args["--json"] else text(report))
    return EXIT_OK


def queue(client: Client, jobs: list[dict[str, Any]], args: dict[str, Any]) -> int:
    options = {"queue": args["--queue"], **limits(args)}
    if args["--id"]:
        if len(jobs) != 1:
            raise ConfigError("--id names one job: use it with 'queue string' or a one-job file")
        ids = [client.queue_job(jobs[0], args["<manager>"], args["--worker"], job_id=args["--id"], **options)]
    else:
        ids = client.queue_jobs(jobs, manager=args["<manager>"], worker=args["--worker"], **options)
    for job_id in ids:
        print(job_id)
    return EXIT_OK


def recur(args: dict[str, Any]) -> int:
    """``recur add | list | remove | pause | resume | run``; ``add`` checks everything before Redis."""
    name = args["<name>"]
    if args["add"]:
        options = recur_options(args)
        client = Client(**connection_kwargs(args))
        print(f"schedule {name}: {client.recur(name, **options)}")
        return EXIT_OK
    client = Client(**connection_kwargs(args))
    if args["list"]:
        rows = client.recurring()
        print(dumps(rows) if args["--json"] else format_schedules(rows))
    elif args["remove"]:
        if not client.unrecur(name):
            raise ConfigError(f"no recurring schedule called {name!r}")
        print(f"schedule {name}: removed")
    elif args["pause"]:
        client.pause_recurring(name)
        print(f"schedule {name}: paused")
    elif args["resume"]:
        client.resume_recurring(name)
        print(f"schedule {name}: resumed")
    else:
        print(client.run_recurring_now(name))
    return EXIT_OK


def recur_options(args: dict[str, Any]) -> dict[str, Any]:
    """``recur add``'s options as ``Client.recur``'s keyword arguments, checked (no Redis needed)."""
    data, manager = args["<data>"], args["<manager>"]
    task = args["--task"]
    if task is not None and data is not None and manager is None:
        data, manager = None, data  # recur add <name> --task=... <manager>
    if (task is None) == (data is None):
        raise ConfigError("recur add needs --task=<name> or <data>, one of them")
    if task is None and (args["--args"] is not None or args["--kwargs"] is not None):
        raise ConfigError("--args and --kwargs go with --task")
    options: dict[str, Any] = {"queue": args["--queue"], "manager": manager, "catchup": args["--catchup"],
                               "max_catchup": integer(args["--max-catchup"], "--max-catchup", 1),
                               "no_overlap": bool(args["--no-overlap"]), **limits(args)}
    if options.pop("delay") is not None or options.pop("at") is not None:
        raise ConfigError("--delay and --at are for queue commands")
    for name in ("result_ttl", "tags", "track", "priority"):  # the queue commands' options, not recur's
        if options.pop(name) not in (None, False):
            raise ConfigError(f"--{name.replace('_', '-')} is for queue commands")
    if args["--every"] is not None:
        options.update(every=number(args["--every"], "--every"), offset=number(args["--offset"], "--offset"))
        if args["--tz"] is not None:
            raise ConfigError("--tz goes with --cron: --every runs on absolute time")
    else:
        if args["--offset"] not in (None, "0"):
            raise ConfigError("--offset goes with --every")
        options.update(cron=args["--cron"], tz=args["--tz"])
    # The schedule first (the most likely mistake), then what it queues: all
    # before Redis is reached.
    Recurrence(every=options.get("every"), offset=options.get("offset", 0), cron=options.get("cron"),
               tz=options.get("tz"), catchup=options["catchup"], max_catchup=options["max_catchup"])
    if task is not None:
        positional, keywords = parse_arguments(args["--args"], args["--kwargs"])
        options.update(task=task, args=positional, kwargs=keywords)
    else:
        options["data"] = parse_object(data)
    return options


def task_call(args: dict[str, Any]) -> Call:
    """The call ``queue task`` queues, checked (arguments, names, options) before Redis is reached."""
    positional, keywords = parse_arguments(args["<args>"], args["--kwargs"])
    return Call(args["<task>"], positional, keywords, queue=args["--queue"], manager=args["<manager>"],
                worker=args["--worker"], job_id=args["--id"], **limits(args))


def priority_of(text: str, option: str) -> int:
    """A priority given on the command line: a whole number in qw's range, else a one-line error."""
    try:
        value = int(text)
    except ValueError:
        raise ConfigError(f"{option} must be a whole number, got {text!r}") from None
    return check_priority(value)


def limits(args: dict[str, Any]) -> dict[str, Any]:
    """``--max-attempts``, ``--timeout``, the record options, ``--priority``, ``--delay`` and ``--at``
    as queue_job's keyword arguments."""
    return {
        "max_attempts": None if args["--max-attempts"] is None else integer(args["--max-attempts"], "--max-attempts", 1),
        "timeout": None if args["--timeout"] is None else number(args["--timeout"], "--timeout"),
        "result_ttl": None if args["--result-ttl"] is None else integer(args["--result-ttl"], "--result-ttl", 0),
        "tags": [t for t in args["--tag"].split(",") if t] if args["--tag"] else None,
        "track": bool(args["--track"]),
        "priority": None if args["--priority"] is None else priority_of(args["--priority"], "--priority"),
        "delay": None if args["--delay"] is None else number(args["--delay"], "--delay"),
        "at": None if args["--at"] is None else when.parse_at(args["--at"]),
    }


def control(client: Client, manager: str, command: str, args: dict[str, Any]) -> int:
    options = {"n": integer(args["<n>"], "<n>", minimum=1)} if command == "scale" else {}
    wait = number(args["--wait"], "--wait") if args["--wait"] is not None else 10.0
    answer = client.control(manager, command, timeout=wait, **options)
    if not answer.get("ok"):
        raise QwError(f"manager {manager}: {answer.get('message')}")
    print(f"manager {manager}: {answer.get('message')}")
    return EXIT_OK


def ping(client: Client, manager: Optional[str]) -> int:
    if manager is not None:
        holder = client.get_manager_holder(manager)
        if holder is None:
            raise QwError(f"manager {manager!r} holds no live lease")
        print(f"ok: manager {manager} alive, held by {holder}")
    else:
        print(f"ok: Redis at {client.config.address()} answers")
    return EXIT_OK


def retry(client: Client, args: dict[str, Any]) -> int:
    outcome = client.retry_all_failed() if args["--all"] else client.retry_failed(args["<job_id>"])
    for job_id, what in outcome.items():
        print(f"{job_id}  {what}")
    if not outcome:
        print("no failed jobs")
    return EXIT_OK if all(what == "queued" for what in outcome.values()) else EXIT_ERROR


# -- reports: plain data, printed as JSON or as text ----------------------------


def managers_report(client: Client) -> list[dict[str, Any]]:
    rows = []
    for name in client.get_all_managers():
        holder = client.get_manager_holder(name)
        rows.append({"name": name, "alive": holder is not None, "holder": holder,
                     "workers": len(client.get_manager_workers(name))})
    return rows


UNHEALTHY_AFTER = 10.0  # seconds without a good Redis call, outside its job, before a worker looks stuck


def workers_report(client: Client, manager: Optional[str]) -> list[dict[str, Any]]:
    managers = [manager] if manager else client.get_all_managers()
    rows = []
    for m in managers:
        health = client.get_manager_health(m)
        for w in client.get_manager_workers(m):
            row: dict[str, Any] = {"manager": m, "worker": w, "jobs": client.get_worker_pending_jobs(w)}
            seen = health.get(w)
            if seen:
                # Time in the current job does not count: a busy worker does
                # not talk to Redis until its job ends.
                silent = seen["since_last_claim"] - (seen["busy_for"] or 0.0)
                row.update(pid=seen["pid"], busy_for=seen["busy_for"], healthy=silent < UNHEALTHY_AFTER,
                           redis_silent_for=round(max(0.0, silent), 1))
            rows.append(row)
    return rows


def jobs_report(client: Client, manager: Optional[str]) -> dict[str, Any]:
    managers = [manager] if manager else client.get_all_managers()
    report: dict[str, Any] = {}
    if not manager:
        report["all:jobs"] = client.get_all_queued_jobs()
    report["manager_queues"] = {m: client.get_manager_queued_jobs(m) for m in managers}
    report["in_progress"] = {w["worker"]: w["jobs"] for w in workers_report(client, manager)}
    report["scheduled"] = [{"id": job_id, "due_at": due} for job_id, due in client.get_scheduled_jobs()]
    failed = client.get_failed_jobs()
    if manager:
        # Failed by one of its workers, or taken from its queue or one of its
        # workers' lists (<manager>:jobs, <manager>:<n>:jobs).
        ours = client.keys.namespace + f"{manager}:"
        failed = [f for f in failed if f.worker.startswith(f"{manager}:") or f.origin.startswith(ours)]
        report["scheduled"] = [e for e in report["scheduled"] if _origin_of(client, e["id"]).startswith(ours)]
    _states(client, report["scheduled"])
    report["failed"] = [failed_entry(f, full=False) for f in failed]
    report["schedules"] = [s for s in client.recurring() if not manager or s["manager"] == manager]
    if not manager:
        report["orphaned"] = {m: client.get_manager_queued_jobs(m) for m in client.get_orphaned_managers()}
    return report


SCHEDULED_STATES_READ = 1000  # of the soonest scheduled jobs, the state is read (delayed or retrying)


def _states(client: Client, entries: list[dict[str, Any]]) -> None:
    pipe = client.redis.pipeline(transaction=False)
    for entry in entries[:SCHEDULED_STATES_READ]:
        pipe.hget(client.keys.job(entry["id"]), "qw:state")
    for entry, state in zip(entries, pipe.execute()):
        entry["state"] = state.decode() if state else "retrying"


def _origin_of(client: Client, job_id: str) -> str:
    origin = client.redis.hget(client.keys.job(job_id), "qw:origin")
    return origin.decode("utf-8", "replace") if origin else ""


def failed_entry(job: FailedJob, full: bool) -> dict[str, Any]:
    entry = {"id": job.id, "error": job.error, "worker": job.worker, "failed_at": job.failed_at,
             "attempts": job.attempts}
    if full:
        entry.update(data=job.data, errors=list(job.errors), traceback=job.traceback)
    return entry


def format_managers(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "no managers registered"
    width = max(len(r["name"]) for r in rows)
    lines = []
    for r in rows:
        state = f"alive, held by {r['holder']}" if r["alive"] else "lease expired (manager gone?)"
        lines.append(f"{r['name']:<{width}}  {r['workers']} worker(s)  {state}")
    return "\n".join(lines)


def format_workers(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "no workers registered"
    width = max(len(r["worker"]) for r in rows)
    lines = []
    for r in rows:
        jobs = " ".join(r["jobs"]) if r["jobs"] else "idle"
        state = ""
        if r.get("healthy") is False:
            state = f"  UNHEALTHY: no claim got through for {r['redis_silent_for']:g} s"
        lines.append(f"{r['worker']:<{width}}  {jobs}{state}")
    return "\n".join(lines)


def format_jobs(report: dict[str, Any], limit: int) -> str:
    lines: list[str] = []
    if "all:jobs" in report:
        _section(lines, "queued in all:jobs", report["all:jobs"], limit)
    for manager, ids in report["manager_queues"].items():
        _section(lines, f"queued for manager {manager}", ids, limit)
    busy = {w: ids for w, ids in report["in_progress"].items() if ids}
    lines.append(f"in progress: {sum(len(ids) for ids in busy.values())}")
    for worker, ids in busy.items():
        lines.append(f"  {worker}: {' '.join(ids[:limit])}")
    scheduled = report["scheduled"]
    lines.append(f"scheduled (delayed, or waiting for a retry): {len(scheduled)}")
    lines.extend(f"  {e['id']}  due {moment(e['due_at'])}  {e.get('state', '')}".rstrip() for e in scheduled[:limit])
    failed = report["failed"]
    lines.append(f"failed: {len(failed)}")
    if failed:
        lines.append(format_failed(failed[:limit]))
    if len(failed) > limit:
        lines.append(f"  ... and {len(failed) - limit} more")
    for manager, ids in report.get("orphaned", {}).items():
        _section(lines, f"orphaned: queued for departed manager {manager}", ids, limit)
    if report.get("schedules"):
        lines.append(format_schedules(report["schedules"]))
    return "\n".join(lines)


def format_failed(entries: list[dict[str, Any]]) -> str:
    if not entries:
        return "no failed jobs"
    return "\n".join(
        f"  {e['id']}  {_when(e['failed_at'])}  attempts: {e['attempts']}  {e['error']}" for e in entries
    )


def _section(lines: list[str], title: str, ids: list[str], limit: int) -> None:
    lines.append(f"{title}: {len(ids)}")
    lines.extend(f"  {job_id}" for job_id in ids[:limit])
    if len(ids) > limit:
        lines.append(f"  ... and {len(ids) - limit} more")


def _when(timestamp: Optional[float]) -> str:
    if timestamp is None:
        return "-"
    return datetime.fromtimestamp(timestamp, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


if __name__ == "__main__":
    main()
