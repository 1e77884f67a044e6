"""Hypothesis drives queue, claim, run, acknowledge, fail, crash, recovery and
cancel against the real Redis; after every step each accepted job is in
exactly one place (a queue, one in-progress list, the scheduled set, the
failed list) or done or cancelled, no id appears twice, and the state each
job's record says (qw:state) agrees with the place it is in."""

import contextlib
from typing import Optional

import redis
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from qw import Client, QwError
from qw.claim import FAILED, RETRYING, Claimer, Job, promote_due
from qw.recovery import requeue

WORKERS = ["m:1", "m:2", "n:1"]
PREFETCHING = "p:1"  # claims batches (claim_many): several jobs in hand at once
MAX_ATTEMPTS = 3


class Queue(RuleBasedStateMachine):
    def __init__(self, client: Client) -> None:
        super().__init__()
        self.client = client
        client.redis.flushall()
        for worker in WORKERS:
            client.register_worker(worker.split(":")[0], worker)
        client.register_worker("p", PREFETCHING)
        # Their managers are registered, as a running manager is (cancel finds a running job's worker there).
        client.redis.sadd(client.keys.all_managers, "m", "n", "p")
        self.claimers = {w: Claimer(client.redis, client.scripts, client.keys, w.split(":")[0], w)
                         for w in [*WORKERS, PREFETCHING]}
        self.held: list[Job] = []  # claimed by p:1, not run yet
        self.finished: list[Job] = []  # run by p:1, not acknowledged yet
        self.running: dict[str, Optional[Job]] = {w: None for w in WORKERS}
        self.stale: list[tuple[str, Job]] = []
        self.accepted: set[str] = set()
        self.done: set[str] = set()
        self.kept: set[str] = set()  # queued with a record (result_ttl): kept once done
        self.cancelled: set[str] = set()
        self.dependencies: dict[str, tuple[list[str], str]] = {}  # job -> (its dependencies, on failure)

    @rule(to=st.sampled_from([None, "m", "n", "p", "m:1", "n:1", "p:1"]), batch=st.integers(1, 3),
          keep=st.booleans(), priority=st.sampled_from([None, -5, 3]))
    def queue(self, to: Optional[str], batch: int, keep: bool, priority: Optional[int]) -> None:
        worker = to if to and ":" in to else None
        manager = to if to and ":" not in to else None
        ids = self.client.queue_jobs([{"n": i} for i in range(batch)], manager=manager, worker=worker,
                                     result_ttl=600 if keep else None, priority=None if worker else priority)
        self.accepted.update(ids)
        if keep:
            self.kept.update(ids)

    @rule(pick=st.integers(0, 10_000))
    def cancel(self, pick: int) -> None:
        # Any job: a queued, scheduled or retrying one is taken out; a running
        # one is only marked (no manager runs here to stop it); a settled one stays.
        candidates = sorted(self.accepted - self.cancelled - self.done)
        if not candidates:
            return
        job_id = candidates[pick % len(candidates)]
        state = self.client.job(job_id).state
        cancelled = self.client.cancel(job_id)
        assert cancelled == (state not in ("failed", "cancelled", "done"))
        if state in ("queued", "retrying", "waiting"):
            self.cancelled.add(job_id)

    @rule(worker=st.sampled_from(WORKERS))
    def claim(self, worker: str) -> None:
        if self.running[worker] is None:
            self.running[worker] = self.claimers[worker].claim()

    @rule(worker=st.sampled_from(WORKERS))
    def claim_after_acknowledging(self, worker: str) -> None:
        job = self.running[worker]
        if job is not None:
            self.running[worker] = self.claimers[worker].claim(ack=job)
            self.done.add(job.id)

    @rule(worker=st.sampled_from(WORKERS))
    def acknowledge(self, worker: str) -> None:
        job = self.running[worker]
        if job is not None:
            assert self.claimers[worker].ack(job)
            self.done.add(job.id)
            self.running[worker] = None

    @rule(worker=st.sampled_from(WORKERS), retry=st.booleans())
    def fail(self, worker: str, retry: bool) -> None:
        job = self.running[worker]
        if job is not None:
            result = self.claimers[worker].fail(job, "boom", retry_at=0.0 if retry else None,
                                                max_attempts=MAX_ATTEMPTS)
            assert result == (RETRYING if retry and job.attempt < MAX_ATTEMPTS else FAILED)
            self.running[worker] = None

    @rule(worker=st.sampled_from(WORKERS), keep_own=st.booleans(), died=st.booleans())
    def crash(self, worker: str, keep_own: bool, died: bool) -> None:
        # At any step: before, during or after its job; a death uses an attempt, a stop gives it back.
        job = self.running[worker]
        if job is not None:
            self.stale.append((worker, job))
        self.running[worker] = None
        manager = worker.split(":")[0]
        requeue(self.client, manager, worker, keep_own=keep_own, cause="killed" if died else "",
                max_attempts=MAX_ATTEMPTS)

    @rule(want=st.integers(0, 4))
    def claim_batch(self, want: int) -> None:
        # A prefetching worker claims only with nothing in hand; it acknowledges what it finished.
        if not self.held:
            acks, self.finished = self.finished, []
            self.held = self.claimers[PREFETCHING].claim_many(acks, want)
            self.done.update(job.id for job in acks)

    @rule()
    def run_one_of_the_batch(self) -> None:
        if self.held:
            self.finished.append(self.held.pop(0))

    @rule()
    def acknowledge_the_finished(self) -> None:
        acks, self.finished = self.finished, []
        claimer = self.claimers[PREFETCHING]
        refused = claimer.refused
        claimer.claim_many(acks, 0)
        assert claimer.refused == refused  # none of them was stale
        self.done.update(job.id for job in acks)

    @rule(retry=st.booleans())
    def fail_one_of_the_batch(self, retry: bool) -> None:
        if self.held:
            job = self.held.pop(0)
            result = self.claimers[PREFETCHING].fail(job, "boom", retry_at=0.0 if retry else None,
                                                     max_attempts=MAX_ATTEMPTS)
            assert result == (RETRYING if retry and job.attempt < MAX_ATTEMPTS else FAILED)

    @rule(keep_own=st.booleans(), died=st.booleans())
    def crash_while_prefetching(self, keep_own: bool, died: bool) -> None:
        # Held and finished-but-unacknowledged jobs all go back (at least once).
        self.stale.extend((PREFETCHING, job) for job in self.held + self.finished)
        self.held, self.finished = [], []
        requeue(self.client, "p", PREFETCHING, keep_own=keep_own, cause="killed" if died else "",
                max_attempts=MAX_ATTEMPTS)

    @precondition(lambda self: self.stale)
    @rule()
    def stale_settlement_is_refused(self) -> None:
        worker, job = self.stale.pop()
        assert not self.claimers[worker].ack(job)
        assert self.claimers[worker].fail(job, "late", retry_at=None) == -1

    @rule()
    def promote(self) -> None:
        scheduled = self.client.redis.zrange("all:scheduled", 0, -1)
        if scheduled:
            self.client.redis.zadd("all:scheduled", {i: 0 for i in scheduled})
        promote_due(self.client.redis, self.client.scripts, self.client.keys)

    @rule(picks=st.lists(st.integers(0, 10_000), min_size=1, max_size=3), to=st.sampled_from([None, "m"]),
          on_failure=st.sampled_from(["fail", "run"]))
    def queue_dependent(self, picks: list[int], to: Optional[str], on_failure: str) -> None:
        # Dependencies among the jobs that keep a record (a done plain job leaves none to depend on).
        candidates = sorted(self.kept)
        if not candidates:
            return
        deps = sorted({candidates[p % len(candidates)] for p in picks})
        job_id = self.client.queue_job({"waits": True}, manager=to, depends_on=deps,
                                       on_dependency_failure=on_failure, result_ttl=600)
        self.accepted.add(job_id)
        self.kept.add(job_id)
        self.dependencies[job_id] = (deps, on_failure)
        if self.client.job(job_id).state == "failed":
            return

    @rule(pick=st.integers(0, 10_000), priority=st.sampled_from([0, -9, 9]))
    def reprioritise(self, pick: int, priority: int) -> None:
        candidates = sorted(self.accepted - self.cancelled - self.done)
        if candidates:
            job_id = candidates[pick % len(candidates)]
            with contextlib.suppress(QwError):  # one queued to a worker keeps arrival order
                self.client.set_priority(job_id, priority)

    @rule()
    def retry_failed(self) -> None:
        self.client.retry_all_failed()

    @invariant()
    def every_job_is_in_exactly_one_place(self) -> None:
        r = self.client.redis
        queues = ["all:jobs", "m:jobs", "n:jobs", "p:jobs"]
        # A queue's list holds its priority marker while its priority set holds jobs.
        for queue in queues:
            marked = r.lrange(queue, 0, -1).count(f"\0qw:prio:{queue}".encode())
            assert marked == (1 if r.zcard(f"{queue}:prio") else 0), queue
        prioritised = [[m[17:] for m in r.zrange(f"{q}:prio", 0, -1)] for q in queues]
        lists = [[i for i in r.lrange(q, 0, -1) if not i.startswith(b"\0qw:prio:")] for q in queues]
        places = [[*lists[0], *prioritised[0]], [*lists[1], *prioritised[1]], [*lists[2], *prioritised[2]],
                  r.zrange("all:scheduled", 0, -1), r.lrange("all:failed", 0, -1), r.zrange("all:waiting", 0, -1)]
        places += [[*lists[3], *prioritised[3]]]  # places[6]
        places += [r.lrange(f"{w}:jobs", 0, -1) for w in [*WORKERS, PREFETCHING]]
        seen = [i.decode() for place in places for i in place]
        assert len(seen) == len(set(seen)), "an id is in two places"
        assert set(seen) == self.accepted - self.done - self.cancelled, "a job is lost, or one came back"
        for job_id in self.done:
            state = r.hget(f"job:{job_id}", "qw:state")
            assert (state == b"done") if job_id in self.kept else not r.exists(f"job:{job_id}")
        for job_id in self.cancelled:
            assert r.hget(f"job:{job_id}", "qw:state") == b"cancelled"
        self.dependencies_hold()
        for job_id in seen:
            assert r.exists(f"job:{job_id}")
        self.states_agree_with_places(places)
        for worker, job in self.running.items():
            if job is not None:
                assert r.lindex(f"{worker}:jobs", -1).decode() == job.id
        in_hand = {i.decode() for i in r.lrange(f"{PREFETCHING}:jobs", 0, -1)}
        for job in self.held + self.finished:
            assert job.id in in_hand and r.hget(f"job:{job.id}", "qw:running") == str(job.token).encode()


    def dependencies_hold(self) -> None:
        # No job runs (or ran) before its dependencies were done; none waits on one that failed for good.
        r = self.client.redis
        for job_id, (deps, on_failure) in self.dependencies.items():
            state = _state(r, job_id)
            dep_states = [_state(r, d) for d in deps]
            if state == "waiting":
                assert any(s != "done" for s in dep_states), (job_id, dep_states)
                if on_failure == "fail":
                    assert not any(s in ("failed", "cancelled") for s in dep_states), (job_id, dep_states)
            elif state in ("running", "done") and on_failure == "fail":
                assert all(s == "done" for s in dep_states), (job_id, state, dep_states)

    def states_agree_with_places(self, places: list[list[bytes]]) -> None:
        r = self.client.redis
        queues, scheduled, failed = places[:3] + places[6:7], places[3], places[4]
        expect = {i: {"queued", None} for q in queues for i in q}
        expect.update({i: {"waiting"} for i in places[5]})
        expect.update({i: {"retrying"} for i in scheduled})
        expect.update({i: {"failed"} for i in failed})
        for worker in [*WORKERS, PREFETCHING]:
            for i in r.lrange(f"{worker}:jobs", 0, -1):
                claimed = r.hexists(b"job:" + i, "qw:running")
                expect[i] = {"running"} if claimed else {"queued", None}
        for job_id, states in expect.items():
            state = _state(r, job_id.decode()) or None
            assert state in states, (job_id, state, states)


def test_every_job_is_always_in_exactly_one_place(client: Client) -> None:
    run_state_machine_as_test(
        lambda: Queue(client),
        settings=settings(max_examples=150, stateful_step_count=40, deadline=None),
    )


def _state(r: redis.Redis, job_id: str) -> str:
    """The state a job's hash says, as qw's readers tell it: running while claimed, else qw:state."""
    state, running = r.hmget(f"job:{job_id}", "qw:state", "qw:running")
    return "running" if running else (state or b"").decode()
