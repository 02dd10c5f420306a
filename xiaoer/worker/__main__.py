"""``python -m xiaoer.worker`` (= ``xiaoer worker``): run every background job.

Several workers may run at once (on one machine or several sharing the project database):
each exclusive job runs in one of them at a time (leases, :mod:`xiaoer.worker.leases`).
Stops cleanly on SIGTERM / SIGINT. Checks the project database and the event broker
before it logs ``worker ready`` (a failure: one logged line, exit code 3).
"""

from __future__ import annotations

from xiaoer.core import quiet

quiet.install()  # before Rasa, TensorFlow or SQLAlchemy is imported

import argparse  # noqa: E402
import asyncio  # noqa: E402
import logging  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    from xiaoer.core.config import export_endpoint_defaults

    export_endpoint_defaults()  # endpoints.yml reads them
    parser = argparse.ArgumentParser(
        prog="xiaoer worker", description="Run Xiaoer's background jobs."
    )
    parser.add_argument(
        "--endpoints",
        type=Path,
        default=None,
        help="endpoints.yml whose SQL event broker is followed (default: the project's)",
    )
    parser.add_argument(
        "--rasa-url",
        default=None,
        help="the Rasa server's HTTP API (default: $XIAOER_RASA_URL, else console.rasa_url)",
    )
    parser.add_argument(
        "--only", nargs="*", default=None, metavar="JOB", help="run only these jobs (names)"
    )
    parser.add_argument("--list", action="store_true", help="list the jobs and exit")
    args = parser.parse_args(argv)

    from xiaoer.core.rasa_api import RASA_URL_ENV
    from xiaoer.core.security import log_level, process_start
    from xiaoer.worker.events import ENDPOINTS_ENV

    logging.basicConfig(level=log_level(), format="%(asctime)s %(name)s %(levelname)s %(message)s")
    process_start()  # private umask, log masking
    # the jobs read where things are from the environment (also in their threads)
    if args.endpoints is not None:
        os.environ[ENDPOINTS_ENV] = str(args.endpoints.resolve())
    if args.rasa_url:
        os.environ[RASA_URL_ENV] = args.rasa_url

    from xiaoer.worker.registry import load_jobs
    from xiaoer.worker.runner import Runner, serve

    jobs = load_jobs()
    if args.only is not None:
        unknown = sorted(set(args.only) - {job.name for job in jobs})
        if unknown:
            print(f"error: unknown job(s): {', '.join(unknown)}", file=sys.stderr)
            return 2
        jobs = [job for job in jobs if job.name in args.only]
    if args.list:
        for job in jobs:
            print(f"{job.name:28} every {job.every:g}s{'' if job.exclusive else ' (every worker)'}")
        return 0
    from xiaoer.core import startup
    from xiaoer.core.config import PROJECT_ROOT
    from xiaoer.worker.events import endpoints_file

    log = logging.getLogger("xiaoer.worker")
    try:  # before saying ready: the project database and the event broker it follows
        project = startup.check_project_db()
        stores = startup.check_endpoint_stores(
            endpoints_file(), ("event_broker",), base=PROJECT_ROOT
        )
    except startup.StartupError as exc:
        return startup.fail(exc, log)
    log.info(
        "worker ready: %d job(s), project database %s, event broker %s",
        len(jobs), project, stores[0].where if stores else "none (leads are not captured)",
    )  # fmt: skip
    asyncio.run(serve(Runner(jobs)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
