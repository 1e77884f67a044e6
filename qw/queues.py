"""Which named queues a manager's workers take jobs from, and in what order.

``qw-manager --queue=emails --queue=sms`` tries ``emails`` first, then
``sms``, on every claim (strict order). With weights, ``--queue=emails:3
--queue=sms:1``, each claim shuffles the queues by weight, Sidekiq-style:
``emails`` comes first three times in four, yet ``sms`` is never starved.

:func:`parse_queues` checks the options; :class:`QueueOrder` gives the
order for one claim. It runs on the worker's hot path, once per claim, so
the orders and their odds are worked out up front: a claim costs one
random number and a binary search.
"""

from __future__ import annotations

import bisect
import itertools
import random
import re
from typing import Any, Callable, Iterable, Optional, Sequence

from .exceptions import ConfigError
from .keys import validate_queue_name

QueueSpec = tuple[str, Optional[int]]

MAX_WEIGHT = 999_999
_WEIGHT = re.compile(r"[1-9][0-9]{0,5}")
# Up to this many weighted queues, every order is listed with its odds (6! =
# 720 entries); beyond, each claim draws the order queue by queue.
MAX_LISTED_QUEUES = 6


def parse_queues(specs: Iterable[str]) -> list[QueueSpec]:
    """``["emails:3", "sms:1"]`` -> ``[("emails", 3), ("sms", 1)]``; ``["emails"]`` -> ``[("emails", None)]``.

    Refused with a one-line :class:`ConfigError`: a name that breaks the
    queue-name rules, a weight that is not a whole number from 1 to
    999999, a queue given twice, weights on some queues but not all.
    """
    parsed: list[QueueSpec] = []
    for spec in specs:
        name, sep, weight = spec.partition(":")
        try:
            validate_queue_name(name)
        except ConfigError as exc:
            raise ConfigError(f"--queue={spec}: {exc}") from None
        if sep and not _WEIGHT.fullmatch(weight):
            raise ConfigError(f"--queue={spec}: the weight must be a whole number from 1 to {MAX_WEIGHT}, "
                              f"got {weight!r}")
        if any(name == seen for seen, _ in parsed):
            raise ConfigError(f"--queue: {name!r} is given twice")
        parsed.append((name, int(weight) if sep else None))
    weighted = [name for name, weight in parsed if weight is not None]
    if weighted and len(weighted) != len(parsed):
        plain = [name for name, weight in parsed if weight is None]
        raise ConfigError(f"--queue: give every queue a weight, or none (weighted: {', '.join(weighted)}; "
                          f"not: {', '.join(plain)})")
    return parsed


class QueueOrder:
    """The order one claim tries the queues in: :meth:`pick`.

    ``queues`` is :func:`parse_queues`'s result. ``key`` turns a queue name
    into what the order holds (``Keys(ns).named_queue``, so a claim gets
    key names with no work per call); default the name itself. ``rng`` is
    a ``random.Random`` (tests pass a seeded one).
    """

    def __init__(self, queues: Sequence[QueueSpec], key: Optional[Callable[[str], Any]] = None,
                 rng: Optional[random.Random] = None) -> None:
        if not queues:
            raise ConfigError("a queue order needs at least one queue")
        weights = [weight for _name, weight in queues]
        if any(w is None for w in weights) and any(w is not None for w in weights):
            raise ConfigError("give every queue a weight, or none")
        self.items: tuple[Any, ...] = tuple(key(name) if key else name for name, _weight in queues)
        self.weights: Optional[tuple[int, ...]] = None
        if weights[0] is not None:
            self.weights = tuple(w for w in weights if w is not None)
        self._random = (rng or random.Random()).random
        self._orders: list[tuple[Any, ...]] = []
        self._odds: list[float] = []  # cumulative, one per entry of _orders
        if self.weights is not None and 1 < len(self.items) <= MAX_LISTED_QUEUES:
            self._list_orders()

    @property
    def weighted(self) -> bool:
        """True when each claim shuffles by weight; False for strict order."""
        return self.weights is not None and len(self.items) > 1

    def pick(self) -> tuple[Any, ...]:
        """The queues, in the order this claim tries them."""
        if not self.weighted:
            return self.items
        if self._orders:
            at = bisect.bisect_right(self._odds, self._random() * self._odds[-1])
            return self._orders[min(at, len(self._orders) - 1)]
        return self._draw()

    def _list_orders(self) -> None:
        # Shuffling a list holding each queue `weight` times and keeping the
        # first of each (Sidekiq) picks the first queue with odds weight/total,
        # the next among the rest likewise: the odds of a whole order are
        # the product of those steps.
        assert self.weights is not None
        total = 0.0
        for order in itertools.permutations(range(len(self.items))):
            left, odds = float(sum(self.weights)), 1.0
            for i in order:
                odds *= self.weights[i] / left
                left -= self.weights[i]
            total += odds
            self._orders.append(tuple(self.items[i] for i in order))
            self._odds.append(total)

    def _draw(self) -> tuple[Any, ...]:
        assert self.weights is not None
        pool = list(range(len(self.items)))
        left = sum(self.weights)
        order = []
        while pool:
            point, at = self._random() * left, 0
            while at < len(pool) - 1 and point >= self.weights[pool[at]]:
                point -= self.weights[pool[at]]
                at += 1
            chosen = pool.pop(at)
            order.append(self.items[chosen])
            left -= self.weights[chosen]
        return tuple(order)
