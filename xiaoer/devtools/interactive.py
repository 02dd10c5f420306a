"""``rasa interactive`` with the project's export defaults (``xiaoer interactive`` runs
it; xiaoer/devtools/designer.py explains the rest).

Rasa's "Export & Quit" asks where to write, proposing ``data/stories.yml``,
``data/nlu.yml`` and ``domain.yml``; ``rasa interactive`` has no option for the first two.
Here they propose the project's layout instead; the domain's proposal is the ``--domain``
given (a temporary copy, so ``domain.yml`` is never rewritten).

    python -m xiaoer.devtools.interactive --model M --endpoints E --port P --domain COPY
"""

from __future__ import annotations

import sys

from xiaoer.devtools.designer import NLU_EXPORT, STORY_EXPORT


def set_export_defaults(argv: list[str] | None = None) -> dict[str, str]:
    """The export proposals of "Export & Quit": the project's layout. With the command
    line, the port its help message names for the story graph (Rasa prints 5006 whatever
    ``--port`` says)."""
    from rasa.core.training import interactive

    interactive.PATHS.update(stories=STORY_EXPORT, nlu=NLU_EXPORT)
    if argv and "--port" in argv[:-1]:
        interactive.DEFAULT_SERVER_PORT = int(argv[argv.index("--port") + 1])
    return interactive.PATHS


def listen_locally() -> None:
    """Rasa's interactive server (its HTTP API without a token) and its story graph listen
    on every interface ("0.0.0.0", not an option): here on 127.0.0.1 only."""
    from sanic import Sanic

    run = Sanic.run

    def local_run(self: Sanic, *args: object, **kwargs: object) -> None:
        kwargs["host"] = "127.0.0.1"
        run(self, *args, **kwargs)  # type: ignore[arg-type]

    Sanic.run = local_run  # type: ignore[method-assign]


def main(argv: list[str] | None = None) -> int:
    from rasa.__main__ import main as rasa_main

    args = sys.argv[1:] if argv is None else argv
    set_export_defaults(args)
    listen_locally()
    sys.argv = ["rasa", "interactive", *args]
    try:
        rasa_main()
    except SystemExit as exc:
        return int(exc.code or 0) if not isinstance(exc.code, str) else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
