"""The yardstick of `bench.fleet claims`: procrastinate's no-op jobs on the same PostgreSQL.

Runs in its own environment (.venv-bench/procrastinate, made by `bench.fleet`), never with
openimagine imported:

    python bench/procrastinate_noop.py CONNINFO defer JOBS   # apply the schema, defer JOBS
    python bench/procrastinate_noop.py CONNINFO work         # one worker until the queue is empty
"""

from __future__ import annotations

import logging
import sys

import procrastinate

logging.basicConfig(level=logging.ERROR)  # not its advice on where an app lives


def main() -> None:
    conninfo, command = sys.argv[1], sys.argv[2]
    app = procrastinate.App(connector=procrastinate.PsycopgConnector(conninfo=conninfo))

    @app.task(name="noop")
    def noop() -> None:
        return None

    with app.open():
        if command == "defer":
            app.schema_manager.apply_schema()
            jobs = int(sys.argv[3])
            for start in range(0, jobs, 1000):
                noop.batch_defer(*({} for _ in range(min(1000, jobs - start))))
        else:
            # One job at a time, like one of our workers; exits once nothing is left.
            app.run_worker(wait=False, concurrency=1, install_signal_handlers=False)


if __name__ == "__main__":
    main()
