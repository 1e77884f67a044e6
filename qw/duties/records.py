"""Keep the indexes of job records small: drop ids whose record has expired, in bounded batches.

``all:finished`` (capped at :data:`FINISHED_CAP`) and each tag's
``all:tag:<tag>`` list ids of records that expire on their own; this duty
walks the oldest ids of a few indexes each time it runs (every manager
does, each a bounded batch: the work is idempotent), so an index holds ids
of expired records for about as long as it takes to walk 1,000 a second.
"""

from __future__ import annotations

import logging
from typing import Optional

from ..client import Client
from . import Duty

log = logging.getLogger("qw.manager")

FINISHED_CAP = 100_000  # ids all:finished keeps at most (the newest)
BATCH = 1000  # oldest ids looked at per index per run: 1,000 a second keeps up with a busy queue
TAGS_PER_RUN = 5  # tag indexes cleaned per run, the least recently used first
EVERY = 1.0  # seconds between runs


class CleanRecordIndexes(Duty):
    name = "clean_record_indexes"

    def __init__(self, client: Client) -> None:
        self.client = client
        self._next_tag = 0

    @property
    def every(self) -> Optional[float]:
        return EVERY

    def run(self) -> None:
        keys, script = self.client.keys, self.client.scripts.clean_index
        prefix = keys.job_prefix
        finished = keys.all_finished
        dropped = int(script(keys=[finished, finished], args=[prefix, BATCH, "", FINISHED_CAP]))
        # Round robin over the tags, oldest first, a few per run.
        first = self._next_tag
        tags = [t.decode() if isinstance(t, bytes) else t
                for t in self.client.redis.zrange(keys.all_tags, first, first + TAGS_PER_RUN - 1)]
        self._next_tag = 0 if len(tags) < TAGS_PER_RUN else self._next_tag + TAGS_PER_RUN
        for tag in tags:
            dropped += int(script(keys=[keys.tag(tag), keys.all_tags], args=[prefix, BATCH, tag, ""]))
        if dropped:
            log.debug("dropped %d id(s) of expired records from the record indexes", dropped)
