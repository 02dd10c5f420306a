"""Alembic migrations of the project database (run them with ``xiaoer migrate``).

``env.py`` and ``script.py.mako`` are Alembic's; ``versions/`` holds the revisions;
:mod:`.baseline` is the create-or-adopt logic of the first revision (0001), which also
brings in an earlier release's ``douyin.db`` and ``shop.db``."""
