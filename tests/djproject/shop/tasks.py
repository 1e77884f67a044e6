import os

import qw
from djproject.shop.models import Order


@qw.task(name="shop.ship")
def ship(order_id):
    """Mark the order shipped by this worker; its id."""
    order = Order.objects.get(pk=order_id)
    order.shipped_by = os.getpid()
    order.save()
    return order.pk


@qw.task(name="shop.count")
def count():
    return Order.objects.count()


@qw.task(name="shop.fresh")
def fresh():
    """Whether the job began with no database connection open (the worker closes it around each job)."""
    from django.db import connection

    began_closed = connection.connection is None
    Order.objects.count()  # opens one
    return began_closed


@qw.task(name="shop.flaky", max_attempts=3)
def flaky(fail_times):
    """Ask for a retry ``fail_times`` times, then return how many runs it took (counted in this process)."""
    flaky.runs = getattr(flaky, "runs", 0) + 1
    if flaky.runs <= fail_times:
        raise qw.Retry(0)
    return flaky.runs


@qw.task(name="shop.broken")
def broken():
    raise ValueError("out of stock")


@qw.on_worker_start
def started():
    path = os.environ.get("QW_TEST_HOOKS")
    if path:
        with open(path, "a") as f:
            f.write(f"start {os.getpid()}\n")


@qw.on_worker_stop
def stopped():
    path = os.environ.get("QW_TEST_HOOKS")
    if path:
        with open(path, "a") as f:
            f.write(f"stop {os.getpid()}\n")


if os.environ.get("QW_TEST_TOUCH_DB"):  # the manager process holds a connection when its workers fork
    from django.db import connection

    connection.ensure_connection()


@qw.on_worker_start
def inherited():
    """Record whether the connection the manager held reached this worker (it must not)."""
    path = os.environ.get("QW_TEST_HOOKS")
    if path:
        from django.db import connection

        with open(path, "a") as f:
            f.write(f"inherited {connection.connection is not None}\n")
