"""Silence the libraries' deprecation noise in the project's own commands.

Rasa 3.6 and what it imports (SQLAlchemy 1.4's "MovedIn20Warning", pkg_resources,
TensorFlow, jax) print about fifteen lines of deprecation warnings on every start; they
say nothing a merchant or a designer can act on and hide the project's own messages.
``install()`` runs first thing in ``xiaoer`` (cli.py) and in the servers
(xiaoer/servers/*): the environment variables some of the libraries read when they are
imported (hence before any of them is), and a ``warnings.showwarning`` that drops the
deprecation categories: a filter alone is not enough, Sanic puts ``once`` for
DeprecationWarning in front of every filter when it is imported. Values already set are
kept (``PYTHONWARNINGS=default`` shows everything again).

Plain ``rasa`` commands outside ``make`` get the same from ``scripts/env.sh``
(``source scripts/env.sh``: its ``scripts/site/sitecustomize.py`` calls ``install``;
docs/testing.md).
"""

from __future__ import annotations

import os
import warnings
from typing import Any

ENV = {
    "RASA_TELEMETRY_ENABLED": "false",
    "SQLALCHEMY_SILENCE_UBER_WARNING": "1",
    "TF_CPP_MIN_LOG_LEVEL": "2",
}
# what scripts/env.sh exports; the servers ``xiaoer up`` starts get "ignore" (stack.RASA_ENV)
QUIET_WARNINGS = ("ignore::DeprecationWarning,ignore::PendingDeprecationWarning", "ignore")


QUIET = (DeprecationWarning, PendingDeprecationWarning, FutureWarning)


def install() -> None:
    for key, value in ENV.items():
        os.environ.setdefault(key, value)
    if os.environ.get("PYTHONWARNINGS", QUIET_WARNINGS[0]) not in QUIET_WARNINGS:
        return  # the user asked for their own warning settings
    for category in QUIET:
        warnings.filterwarnings("ignore", category=category)
    show = warnings.showwarning
    if getattr(show, "xiaoer_quiet", False):
        return

    def showwarning(message: Any, category: type[Warning], *args: Any, **kwargs: Any) -> None:
        if not issubclass(category, QUIET):
            show(message, category, *args, **kwargs)

    showwarning.xiaoer_quiet = True  # type: ignore[attr-defined]
    warnings.showwarning = showwarning
