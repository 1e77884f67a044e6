"""Database connections in workers: none inherited across the fork, none kept past its usefulness.

Registered as worker hooks (:mod:`qw.hooks`) when the app is ready:

- at worker start, every connection the manager process had open is
  dropped without a word to the server (a close would send the server a
  goodbye on a socket the parent still uses): the objects are kept
  referenced, so no finaliser talks on them either, and Django opens fresh
  ones on first use;
- before and after every job, ``django.db.close_old_connections()``: a
  connection past ``CONN_MAX_AGE``, or one that saw an error (the server
  restarted, "gone away"), is closed, so the next query opens a new one.
"""

from __future__ import annotations

from typing import Any

from ... import hooks

_inherited: list[Any] = []  # the parent's connections: referenced forever, so never finalised here


def forget_inherited() -> None:
    """Drop every open connection this process inherited, without network I/O."""
    from django.db import connections

    try:
        wrappers = connections.all(initialized_only=True)  # Django 4.1+: only those this process made
    except TypeError:
        wrappers = connections.all()
    for conn in wrappers:
        raw = conn.connection
        if raw is None:
            continue
        _inherited.append(raw)
        conn.connection = None  # Django's close() now has nothing to close; the next query connects
        conn.in_atomic_block = False
        conn.savepoint_ids = []
        conn.needs_rollback = False
        conn.run_on_commit = []
        conn.closed_in_transaction = False


def close_old() -> None:
    """``django.db.close_old_connections()``: what Django itself runs around each request."""
    from django.db import close_old_connections

    close_old_connections()


def install() -> None:
    """Register the hooks (once: registering a function again does nothing)."""
    hooks.on_worker_start(forget_inherited)
    hooks.before_job(close_old)
    hooks.after_job(close_old)
