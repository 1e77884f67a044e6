"""The actions (POST): retry and delete failed jobs, cancel jobs, and the control commands of a manager.

Each takes the checked form and returns a :class:`Done` page saying what
became of each job or what the manager answered. None queues a job of its
own or names code to run: a retry re-queues a failed job as it was, and a
manager's commands are the fixed set of :data:`qw.control.OPERATIONS`.
:mod:`qw.web.app` has already checked the session, the origin and the
CSRF token, and that the dashboard is not read-only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Sequence

from ..client import Client
from ..control import OPERATIONS, ControlError
from ..exceptions import QwError
from . import failures, params

CONTROL_WAIT = 5.0  # seconds a command waits for its manager's answer
SCALE_MAX = 1_000


@dataclass
class Done:
    """What an action did: a title, one line per thing it touched, and where to go back to."""

    title: str
    lines: list[str] = field(default_factory=list)
    back: str = "/"
    ok: bool = True


Form = Mapping[str, Sequence[str]]


def _chosen(client: Client, form: Form) -> tuple[list[str], str]:
    """The failed ids a form names: ``id`` fields, a whole ``group`` (error type), or ``all``."""
    if form.get("all", [""])[0] == "1":
        return [job["id"] for job in failures.read(client)["jobs"]], "all failed jobs"
    group = form.get("group", [""])[0]
    if group:
        return failures.ids_of_group(client, group), f"failed jobs of type {group}"
    ids = params.job_ids(form.get("id", []))
    if not ids:
        raise params.BadRequest("no job chosen: tick at least one")
    return ids, f"{len(ids)} chosen job(s)"


def retry(client: Client, form: Form) -> Done:
    """Queue the chosen failed jobs again, attempts reset."""
    ids, what = _chosen(client, form)
    outcome = client.retry_failed(ids)
    return Done(f"Retry {what}", [f"{job_id}: {result}" for job_id, result in outcome.items()] or ["none"],
                _back(form, "/failed"), all(r == "queued" for r in outcome.values()))


def delete(client: Client, form: Form) -> Done:
    """Delete the chosen failed jobs, id and hash."""
    ids, what = _chosen(client, form)
    outcome = client.delete_failed(ids)
    return Done(f"Delete {what}", [f"{job_id}: {result}" for job_id, result in outcome.items()] or ["none"],
                _back(form, "/failed"), all(r == "deleted" for r in outcome.values()))


def purge(client: Client, form: Form) -> Done:
    """Delete every failed job."""
    return Done("Purge the failed list", [f"deleted {client.purge_failed()} failed job(s)"], "/failed")


def cancel(client: Client, form: Form) -> Done:
    """Cancel the chosen jobs: queued, scheduled or waiting ones at once, a running one at its next check."""
    ids = params.job_ids(form.get("id", []))
    if not ids:
        raise params.BadRequest("no job chosen")
    lines, ok = [], True
    for job_id in ids:
        try:
            done = client.cancel(job_id)
        except QwError as exc:  # no record of it
            done, lines = False, lines + [f"{job_id}: {exc}"]
            ok = False
            continue
        ok = ok and done
        lines.append(f"{job_id}: {'cancelled' if done else 'already settled'}")
    return Done("Cancel", lines, _back(form, "/jobs"), ok)


SCHEDULE_COMMANDS = ("pause", "resume", "run")


def schedule(client: Client, form: Form, name: str, command: str) -> Done:
    """Pause or resume a recurring schedule, or queue one run of it now (what it queues is its own)."""
    if command not in SCHEDULE_COMMANDS:
        raise params.BadRequest(f"unknown command {command[:20]!r}: one of {', '.join(SCHEDULE_COMMANDS)}")
    if command == "pause":
        client.pause_recurring(name)
        line = f"schedule {name} paused"
    elif command == "resume":
        client.resume_recurring(name)
        line = f"schedule {name} resumed"
    else:
        line = f"schedule {name}: queued run {client.run_recurring_now(name)}"
    return Done(f"{command} {name}", [line], "/recurring")


def control(client: Client, form: Form, manager: str, command: str) -> Done:
    """One of the manager commands, with its answer; ``scale`` takes ``n`` from the form."""
    manager = params.manager_name(manager)
    if command not in OPERATIONS:
        raise params.BadRequest(f"unknown command {command[:20]!r}: one of {', '.join(OPERATIONS)}")
    args = {}
    if command == "scale":
        args["n"] = params.integer({"n": form.get("n", [""])[0]}, "n", 0, 1, SCALE_MAX)
        if not args["n"]:
            raise params.BadRequest("scale needs a number of workers, n")
    try:
        answer = client.control(manager, command, timeout=CONTROL_WAIT, **args)
    except ControlError as exc:
        return Done(f"{command} {manager}", [str(exc)], "/workers", ok=False)
    return Done(f"{command} {manager}", [str(answer.get("message", ""))], "/workers", bool(answer.get("ok")))


def _back(form: Form, default: str) -> str:
    # Only a path of our own: never an address elsewhere.
    back = form.get("back", [""])[0]
    return back if back.startswith("/") and not back.startswith("//") and "\\" not in back else default
