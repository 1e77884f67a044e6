"""Queuing jobs for later: the producer's side of delayed jobs (``delay=``, ``at=``).

A delayed job is written whole, with its routing (``qw:origin``: a named
queue, a manager's or a worker's list, or ``all:jobs``) and options, and
its id goes into ``all:scheduled`` scored by its due time on Redis's clock,
in one atomic step (``schedule-4.lua``); its state is ``scheduled``. A
manager's scheduler moves it to its queue when due (:mod:`qw.promotion`).
A batch is one script call per run of same-shaped jobs, pipelined: one
round trip.
"""

from __future__ import annotations

import time
from typing import Any, Iterable, Mapping, Optional

import redis

from . import durable
from . import job as jobcodec
from .call import Call
from .connection import translated
from .keeping import check_priority
from .queuing import (
    STATS_TTLS,
    Encoded,
    Producer,
    _runs,
    check_batch_size,
    job_options,
    new_id,
    raise_refused,
)
from .scripts import evalsha_each
from .when import Due


def schedule_job(producer: Producer, job_data: Mapping[str, Any], due: Due, manager: Optional[str],
                 worker: Optional[str], job_id: Optional[str], max_attempts: Optional[int],
                 timeout: Optional[float], queue: Optional[str] = None,
                 record: Optional[dict[str, str]] = None, priority: Optional[int] = None) -> str:
    """Queue one data job for ``due``; its id (``record``: the fields that ask for a record, first;
    ``priority``: its place in its queue once due)."""
    fields = {**(record or {}), **jobcodec.encode(job_data), **_priority(producer, priority)}
    job_id = job_id or new_id()
    jobs = _with_routing(producer, [(job_id, fields)], manager, worker, queue, max_attempts, timeout)
    _send(producer, jobs, due)
    return job_id


def schedule_jobs(producer: Producer, jobs: Iterable[Mapping[str, Any]], due: Due, manager: Optional[str],
                  worker: Optional[str], batch_size: int, max_attempts: Optional[int],
                  timeout: Optional[float], queue: Optional[str] = None,
                  record: Optional[dict[str, str]] = None, priority: Optional[int] = None) -> list[str]:
    """Queue many data jobs for ``due``, one round trip per batch; their ids in order."""
    check_batch_size(batch_size)
    rank = _priority(producer, priority)
    # Bad data anywhere queues nothing: all are encoded first.
    encoded = [(new_id(), {**(record or {}), **jobcodec.encode(data), **rank}) for data in jobs]
    encoded = _with_routing(producer, encoded, manager, worker, queue, max_attempts, timeout)
    for start in range(0, len(encoded), batch_size):
        _send(producer, encoded[start : start + batch_size], due)
    return [job_id for job_id, _fields in encoded]


def schedule_call(producer: Producer, call: Call) -> str:
    """Queue one task call for its due time (``call.due``); its id."""
    job_id = call.job_id or new_id()
    jobs = _with_routing(producer, [(job_id, {**call.meta(), **_priority(producer, call.priority)})],
                         call.manager, call.worker, call.queue,
                         call.max_attempts, call.timeout)
    assert call.due is not None
    _send(producer, jobs, call.due)
    return job_id


def _priority(producer: Producer, priority: Optional[int]) -> dict[str, str]:
    # Read by the promotion, which puts the job in its queue's priority set.
    return {"qw:priority": str(check_priority(priority))} if priority else {}


def _with_routing(producer: Producer, jobs: list[Encoded], manager: Optional[str], worker: Optional[str],
                  queue: Optional[str], max_attempts: Optional[int],
                  timeout: Optional[float]) -> list[Encoded]:
    # The fields queuing now would write: where it goes (qw:origin, which
    # the promotion reads), when it was queued, its own limits.
    origin = producer.target(manager, worker, queue)[0]
    options = job_options(max_attempts, timeout)
    queued_at = repr(time.time())
    for _job_id, fields in jobs:
        fields["qw:queued_at"] = queued_at
        fields["qw:origin"] = origin
        fields.update(options)
    return jobs


def _send(producer: Producer, jobs: list[Encoded], due: Due) -> None:
    keys = producer.keys
    minute, day = producer._stats_keys()
    script = producer.scripts.schedule
    call_keys = [keys.all_scheduled, keys.all_scheduled_wake, minute, day]
    mode, value = due
    calls = [[keys.job_prefix, mode, repr(value), *STATS_TTLS, width, *args] for width, args in _runs(jobs)]
    confirmed: Optional[int] = None  # durable mode: the fewest replicas that confirmed a round
    with translated(producer.config):
        for attempt in (1, 2):
            pending = [(call_keys, args) for args in calls]
            if producer.durability:
                replies, got = durable.run_confirmed(producer.redis, producer._direct(), script, pending,
                                                     producer.durability)
                confirmed = got if confirmed is None else min(confirmed, got)
            else:
                replies = evalsha_each(producer.redis, script, pending)
            lost = redis.exceptions.NoScriptError
            missing = [args for args, reply in zip(calls, replies) if isinstance(reply, lost)]
            errors = [r for r in replies if isinstance(r, Exception) and not isinstance(r, lost)]
            if errors:
                raise_refused(errors[0], producer.config)
                raise errors[0]
            if not missing or attempt == 2:
                break
            # Redis lost its script cache: load it and send those calls again
            # (jobs of theirs already written are skipped).
            producer.redis.script_load(script.script)
            calls = missing
    if producer.durability and confirmed is not None and confirmed < producer.durability.replicas:
        raise durable.shortfall(producer.durability, confirmed, "a scheduled job")
