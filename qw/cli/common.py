"""What both CLIs share: connection options, error reporting, exit codes."""

from __future__ import annotations

import sys
from typing import Any, Callable, NoReturn, Optional

from docopt import docopt

from ..durable import DEFAULT_WAIT_TIMEOUT_MS
from ..exceptions import QwError
from ..options import integer, number  # noqa: F401 - the CLIs' number parsing, shared with the table

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_INTERRUPTED = 130

CONNECTION_OPTIONS = """\
  --host=<host>            Redis host; default: localhost.
  --port=<port>            Redis port; default: 6379.
  --db=<db>                Redis database number; default: 0.
  --url=<url>              Redis URL: redis://, rediss:// (TLS), unix://,
                           redis+sentinel://host:port[,host:port...]/<service>[/<db>]
                           or redis+cluster://host:port[,host:port...]. Default:
                           $QW_REDIS_URL, unless --host, --port or --db is given.
  --namespace=<prefix>     Prefix for every key, such as '{app}:' [default: ].
  --embedded=<dir>         Use the embedded Redis kept in <dir>, starting it if needed
                           (pip install 'qw[embedded]').
  --wait-replicas=<n>      Durable mode: each queued job (and each worker's
                           acknowledgement) is confirmed by <n> replicas with
                           WAIT; a job short of them is an error. Default: 0, off.
  --wait-timeout=<ms>      How long one WAIT may take; default: 1000.
"""


def parse(doc: str, argv: Optional[list[str]], version: str) -> dict[str, Any]:
    """docopt with our version string."""
    return docopt(doc, argv=argv, version=version)


def connection_kwargs(args: dict[str, Any]) -> dict[str, Any]:
    """Client/Manager keyword arguments from the shared options.

    Precedence: --embedded, --url, then --host/--port/--db when any is given
    (they beat $QW_REDIS_URL: what is typed wins over the environment), then
    $QW_REDIS_URL, then localhost:6379/0.
    """
    host = args["--host"] or "localhost"
    port = integer(args["--port"] or "6379", "--port", minimum=1)
    db = integer(args["--db"] or "0", "--db", minimum=0)
    url = args["--url"] or None
    if not url and any(args[o] is not None for o in ("--host", "--port", "--db")):
        url = f"redis://{'[' + host + ']' if ':' in host else host}:{port}/{db}"
    return {
        "host": host,
        "port": port,
        "db": db,
        "url": url,
        "namespace": args["--namespace"] or "",
        "embedded": args["--embedded"] or None,
        "wait_replicas": integer(args.get("--wait-replicas") or "0", "--wait-replicas", minimum=0),
        "wait_timeout_ms": integer(args.get("--wait-timeout") or str(DEFAULT_WAIT_TIMEOUT_MS), "--wait-timeout",
                                   minimum=1),
    }


def run(prog: str, main: Callable[[], int]) -> NoReturn:
    """Run ``main``; a :class:`QwError` becomes one line on stderr and exit code 1."""
    try:
        code = main()
    except QwError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        code = EXIT_ERROR
    except KeyboardInterrupt:
        code = EXIT_INTERRUPTED
    except BrokenPipeError:  # output piped into `head`
        code = EXIT_OK
    sys.exit(code)


def columns(rows: list[list[str]]) -> list[str]:
    """Rows of cells as lines of left-aligned columns two spaces apart (the first row a header)."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in rows]
