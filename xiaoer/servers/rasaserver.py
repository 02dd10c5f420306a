"""``rasa run`` without the HTTP API token on the command line.

``python -m xiaoer.servers.rasaserver <rasa run options>`` runs Rasa's own ``rasa run`` in this
process; when ``--enable-api`` is given, the token comes from ``$XIAOER_API_TOKEN`` (or
``var/api_token``) and is handed to Rasa inside the process, so ``ps`` shows no secret.
The process also gets the private umask and the log masking (the channels install it
again after Rasa has configured its logging).
"""

from __future__ import annotations

from xiaoer.core import quiet

quiet.install()  # before Rasa, TensorFlow or SQLAlchemy is imported

import sys  # noqa: E402

from xiaoer.core.security import api_token, process_start  # noqa: E402


def rasa_argv(args: list[str]) -> list[str]:
    if "--auth-token" in args:
        raise SystemExit("error: pass the token through $XIAOER_API_TOKEN, not --auth-token")
    argv = ["rasa", "run", *args]
    if "--enable-api" in args:
        argv += ["--auth-token", api_token()]
    return argv


def main(argv: list[str] | None = None) -> int:
    process_start()
    sys.argv = rasa_argv(sys.argv[1:] if argv is None else argv)
    from rasa.__main__ import main as rasa_main

    rasa_main()
    return 0


if __name__ == "__main__":
    sys.exit(main())
