"""Queuing task calls: what ``Client.queue_call`` and ``queue_calls`` do.

A :class:`~qw.call.Call` arrives with its arguments already encoded
(``call.meta()``: ``qw:task``, ``qw:args``, ``qw:kwargs``); this module
adds qw's usual fields and sends it the way :class:`~qw.queuing.Producer`
sends a data job, through the producer's own parts: the same scripts, the
same per-thread connection and wake hints, one round trip per job or per
batch. A task job's hash holds no data fields.

Where a call goes: ``call.worker`` (its in-progress list; the worker must be
registered), else ``call.manager`` (``<manager>:jobs``), else
``call.queue`` (``all:queue:<name>``; None or ``all``: ``all:jobs``). A
job queued to a named queue wakes an idle worker serving it at once (one
listed in ``all:queue:<name>:idle``).
"""

from __future__ import annotations

import time
from typing import Any, Iterable, Optional

from .call import ARGS_FIELD, TASK_FIELD, Call, CallBatch
from .depending import send_waiting, with_qw_fields
from .queuing import DEFAULT_BATCH, Encoded, Producer, Target, check_batch_size, job_options, new_id, new_ids
from .scripts import NOT_WAITED

#: One round trip's jobs: runs of consecutive jobs with one destination, in order.
Batch = list[tuple[Target, list[Encoded]]]


def queue_call(producer: Producer, call: Call) -> str:
    """Queue one call in one atomic step and return its job id.

    ``call.job_id`` is honoured: a job with that id that exists already is
    not queued again (the id is returned either way).
    """
    return queue_and_wait(producer, call, None)[0]


def queue_and_wait(producer: Producer, call: Call, block: Optional[float]) -> tuple[str, Any]:
    """:func:`queue_call`, and with ``block`` the first wait for it (BLPOP on its
    ``all:settled:<id>``, ``block`` seconds) in the same round trip.

    Returns the id and that BLPOP's reply (None: it ran out), or
    :data:`~qw.scripts.NOT_WAITED` when it was not sent or not read.
    """
    _check(call)
    target = producer.target(call.manager, call.worker, call.queue, call.priority)
    job_id = call.job_id or new_id()
    if call.depends_on:
        fields = with_qw_fields(call.meta(), job_options(call.max_attempts, call.timeout), target)
        send_waiting(producer, job_id, fields, target, call.depends_on, call.on_dependency_failure,
                     call.collect)
        return job_id, NOT_WAITED
    # call.meta() is a fresh dict of the fields made when the call was built.
    keys, args = producer.enqueue_args(job_id, call.meta(), job_options(call.max_attempts, call.timeout),
                                       target)
    wait = None if block is None else (producer.keys.settled(job_id), block)
    return job_id, producer.send(keys, args, wait)


def queue_calls(producer: Producer, calls: Iterable[Call], batch_size: int = DEFAULT_BATCH) -> list[str]:
    """Queue many calls, one round trip per batch of ``batch_size``; return their ids in order.

    Calls may go to different lists: each run of consecutive calls with one
    destination is one script call, all of a batch's pipelined together.
    Every call is checked (destination, options) before the first is sent,
    so bad input queues nothing. A call to a worker that is not registered
    raises :class:`~qw.exceptions.UnknownWorker` and is not queued; the
    other runs of its batch are (a pipeline runs every call it holds), and
    later batches are not sent.
    """
    check_batch_size(batch_size)
    if not isinstance(calls, CallBatch):
        calls = list(calls)
        if any(getattr(call, "depends_on", ()) for call in calls):  # each is one script of its own
            return [queue_call(producer, call) for call in calls]
    if isinstance(calls, CallBatch):
        ids, batches = _encode_batch(producer, calls, batch_size)
    else:
        ids, batches = _encode(producer, list(calls), batch_size)
    for batch in batches:
        producer.send_batch(batch)
    return ids


def _encode(producer: Producer, calls: list[Call], batch_size: int) -> tuple[list[str], list[Batch]]:
    """The job ids, and the jobs cut into batches, each grouped by destination, in order.

    Built straight into their batches, with no per-job object beyond the
    id and fields that are sent: a map() of many jobs holds them all at
    once, and every object that lives that long is one more for Python's
    cyclic garbage collector to walk.
    """
    queued_at = repr(time.time())
    # A map() has one destination and one set of limits: work them out once.
    routes: dict[tuple[Any, ...], tuple[Target, dict[str, str]]] = {}
    fresh = iter(new_ids(len(calls)))
    ids: list[str] = []
    batches: list[Batch] = []
    for call in calls:
        _check(call)
        where = (call.manager, call.worker, call.queue, call.priority, call.max_attempts, call.timeout)
        route = routes.get(where)
        if route is None:
            route = routes[where] = (producer.target(*where[:4]), job_options(*where[4:]))
        target, options = route
        fields = call.meta()
        fields["qw:queued_at"] = queued_at
        fields["qw:origin"] = target[0]
        if options:
            fields.update(options)
        job_id = call.job_id or next(fresh)
        if len(ids) % batch_size == 0:
            batches.append([])
        batch = batches[-1]
        if not batch or batch[-1][0] != target:
            batch.append((target, []))
        batch[-1][1].append((job_id, fields))
        ids.append(job_id)
    return ids, batches


def _encode_batch(producer: Producer, calls: CallBatch, batch_size: int) -> tuple[list[str], list[Batch]]:
    """:func:`_encode` for a :class:`CallBatch`: one destination and one set of fields but the
    arguments, so each job costs one small dict."""
    target = producer.target(calls.manager, calls.worker, calls.queue, calls.priority)
    common = {**calls.record(), TASK_FIELD: calls.task, "qw:queued_at": repr(time.time()),
              "qw:origin": target[0],
              **job_options(calls.max_attempts, calls.timeout)}
    ids = new_ids(len(calls))
    jobs = [(job_id, {**common, ARGS_FIELD: args}) for job_id, args in zip(ids, calls.args)]
    batches: list[Batch] = [[(target, jobs[start : start + batch_size])]
                            for start in range(0, len(jobs), batch_size)]
    return ids, batches


def _check(call: object) -> None:
    if not isinstance(call, Call):
        raise TypeError(f"expected a qw.call.Call (as Task.message builds), got {call!r}")
