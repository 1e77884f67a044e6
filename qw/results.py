"""What a worker keeps of a run that returned: how long its record stays, and its result as JSON.

A task job keeps its record for its own ``qw:result_ttl`` (the call's or
the task's, written when it was queued), else the manager's
``--result-ttl``; a plain job only when it was queued with a ``result_ttl``.
A result must be JSON and at most ``--max-result-size`` bytes: anything else
fails the job without retries, with the reason in its record.
"""

from __future__ import annotations

import json
from typing import Any, Mapping, Optional

from .call import TASK_FIELD, why_not_json
from .exceptions import JobDataError
from .keeping import RESULT_TTL_FIELD

_dumps = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode


class ResultError(JobDataError):
    """A run returned what cannot be kept: not JSON, or too large. Its job fails for good."""


def keep_for(meta: Mapping[str, str], task_ttl: Optional[int], default: int) -> int:
    """Seconds the record of this run's job stays once done; 0: it is deleted (nothing kept)."""
    own = meta.get(RESULT_TTL_FIELD)
    if own is not None:
        try:
            return max(0, int(own))
        except ValueError:
            pass  # a plain producer's bad value: as if it said nothing
    if TASK_FIELD not in meta:
        return 0
    return default if task_ttl is None else task_ttl


def encode_result(value: Any, limit: int) -> str:
    """``value`` as JSON ("" for None: nothing to keep); :class:`ResultError` says why it cannot be."""
    if value is None:
        return ""
    try:
        encoded = _dumps(value)
    except (TypeError, ValueError):
        raise ResultError(f"the result is not JSON: {why_not_json(value) or type(value).__name__}") from None
    if len(encoded) * 4 > limit:  # at most 4 bytes a character: count bytes only when it may matter
        size = len(encoded.encode("utf-8"))
        if size > limit:
            raise ResultError(f"the result is {size:,} bytes of JSON, over the limit of {limit:,} "
                              "(qw-manager --max-result-size)")
    return encoded
