"""Queuing a job that depends on others: ``depends_on=`` on every queue call.

The job and its registration with each dependency are one script
(``depend-3.lua``): it waits in ``all:waiting`` until every dependency is
done, then enters its queue, in the step that settles the last one
(``qw/lua/lib/flow.lua``). A dependency with no record (never queued, or
its record expired) is refused here, with nothing written.
"""

from __future__ import annotations

import time
from typing import Any, Optional

import redis

from . import durable
from . import job as jobcodec
from .connection import translated
from .exceptions import ConfigError, JobDataError
from .keeping import check_on_failure, dependency_ids  # noqa: F401 - the client's names for them
from .queuing import Producer, Target, new_id, raise_refused


def send_waiting(producer: Producer, job_id: str, fields: dict[str, str], target: Target,
                 depends_on: tuple[str, ...], on_failure: str, collect: str = "") -> str:
    """Queue one job behind ``depends_on``; its state: "waiting", "queued" or "failed".

    ``fields`` are the job hash's fields, a record's first (as the enqueue
    scripts take them); ``target`` where it goes once released; ``collect``
    ("chain", "group" or "") whether it takes its dependencies' results as
    its first argument (``qw.flow``).
    """
    queue, _workers, _idle, _wake, check, rank = target
    if check:
        raise ConfigError("a job with dependencies goes to a queue or a manager, not to one worker")
    keys = producer.keys
    args: list[Any] = [job_id, keys.namespace, rank, check_on_failure(on_failure), collect, len(depends_on),
                       *depends_on]
    for item in fields.items():
        args.extend(item)
    with translated(producer.config):
        try:
            depend_keys = [keys.job(job_id), queue, keys.all_waiting]
            if producer.durability:  # the WAIT goes on the connection of the write
                caller = producer._direct()
                state = caller(producer.scripts.depend, depend_keys, args)
                durable.confirm(caller, producer.durability, f"job {job_id}")
            else:
                state = producer.scripts.depend(keys=depend_keys, args=args)
        except redis.ResponseError as exc:
            raise_refused(exc, producer.config)
            if "QW_NO_DEPENDENCY" in str(exc):
                missing = str(exc).split("QW_NO_DEPENDENCY", 1)[1].strip()
                raise JobDataError(f"dependency {missing} has no record: it was never queued, or its "
                                   "record expired") from None
            raise
    return "exists" if state == 0 else (state.decode() if isinstance(state, bytes) else str(state))


def queue_waiting_job(producer: Producer, job_data: Any, manager: Optional[str], worker: Optional[str],
                      queue: Optional[str], job_id: Optional[str], options: dict[str, str],
                      record: Optional[dict[str, str]], priority: Optional[int],
                      depends_on: tuple[str, ...], on_failure: str) -> str:
    """``Client.queue_job`` with ``depends_on``: the job's id."""
    target = producer.target(manager, worker, queue, priority)
    fields = {**(record or {}), **jobcodec.encode(job_data)}
    job_id = job_id or new_id()
    send_waiting(producer, job_id, with_qw_fields(fields, options, target), target, depends_on, on_failure)
    return job_id


def with_qw_fields(fields: dict[str, str], options: dict[str, str], target: Target) -> dict[str, str]:
    """``fields`` with qw's own (queue time, origin, limits) after them, as the enqueue scripts get them."""
    return {**fields, "qw:queued_at": repr(time.time()), "qw:origin": target[0], **options}
