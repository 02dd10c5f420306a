"""Migrations of the project database (xiaoer/core/migrate.py, xiaoer/core/migrations/).

From empty to the newest revision on SQLite and PostgreSQL; from a data folder made by the
previous release (tests/data/release_0_1, recorded by its make.py with that release's
code) to the newest revision with every row still readable through the stores' public
APIs; a second run changes nothing; concurrent first use; PostgreSQL refuses to run on a
database that was not migrated.
"""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
import time
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import func, inspect, select

from xiaoer.core import migrate
from xiaoer.core.db import Database, DatabaseError, create_database, get_database, sqlite_url

ROOT = Path(__file__).resolve().parents[2]
RELEASE_0_1 = ROOT / "tests" / "data" / "release_0_1"


def _schema_diff(db: Database) -> list[Any]:
    """What differs between the database and the stores' tables (Alembic's comparison)."""
    md = migrate.load_metadata()
    with db.engine.connect() as conn:
        context = MigrationContext.configure(
            conn,
            opts={
                "compare_type": True,
                "include_object": lambda o, name, kind, reflected, other: not (
                    kind == "table" and reflected and other is None
                ),
            },
        )
        return list(compare_metadata(context, md))


def _counts(db: Database) -> dict[str, int]:
    md = migrate.load_metadata()
    with db.connect() as conn:
        return {
            name: int(conn.execute(select(func.count()).select_from(table)).scalar() or 0)
            for name, table in md.tables.items()
        }


def test_empty_to_newest_and_again(empty_db: Database) -> None:
    assert migrate.current(empty_db) is None
    assert migrate.check(empty_db) is False
    assert migrate.upgrade(empty_db) == ["0001"]
    assert migrate.current(empty_db) == migrate.head() == "0001"
    assert migrate.check(empty_db) is True
    # the migrations alone build exactly the tables the stores declare
    assert _schema_diff(empty_db) == []
    tables = set(inspect(empty_db.engine).get_table_names())
    assert set(migrate.load_metadata().tables) <= tables
    # a second run is a no-op
    assert migrate.upgrade(empty_db) == []
    assert set(inspect(empty_db.engine).get_table_names()) == tables


def test_baseline_is_generated_from_the_stores_tables() -> None:
    """The baseline revision is what scripts/make-baseline.py renders from the stores'
    tables (a store that changed its tables: re-run the script)."""
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "make-baseline.py"), "--check"],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_postgresql_not_migrated_is_refused_with_the_command(
    empty_db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    if empty_db.dialect != "postgresql":
        pytest.skip("SQLite migrates itself on first use (next test)")
    with pytest.raises(DatabaseError, match="xiaoer migrate"):
        get_database(empty_db.url)
    migrate.upgrade(empty_db)
    assert get_database(empty_db.url).dialect == "postgresql"


def test_sqlite_migrates_itself_on_first_use(tmp_path: Path) -> None:
    db = get_database(sqlite_url(tmp_path / "x.db"))
    assert migrate.current(db) == migrate.head()
    assert "notifications" in inspect(db.engine).get_table_names()


def test_processes_starting_together_migrate_once(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path / "xiaoer.db")
    code = (
        "from xiaoer.core.db import get_database; from xiaoer.notifications.outbox import get_outbox;"
        "get_database(); print(get_outbox().add('B1', 'order_shipped', 'O1', 'ok').id)"
    )
    env = {"PYTHONPATH": str(ROOT), "XIAOER_DATABASE_URL": url, "PATH": "/usr/bin:/bin"}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        for _ in range(4)
    ]
    results = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0] * 4, [r[1][-2000:] for r in results]
    assert sorted(int(out) for out, _ in results) == [1, 2, 3, 4]
    db = create_database(url)
    assert migrate.current(db) == migrate.head()


# --- from the previous release ------------------------------------------------------------
@pytest.fixture()
def release_0_1(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, data_dir: Path) -> Path:
    """A data folder as the previous release left it (xiaoer.db, douyin.db, shop.db)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    for name in ("xiaoer", "douyin", "shop"):
        with closing(sqlite3.connect(data_dir / f"{name}.db")) as conn:
            conn.executescript((RELEASE_0_1 / f"{name}.sql").read_text(encoding="utf-8"))
    monkeypatch.delenv("XIAOER_DATABASE_URL", raising=False)
    return data_dir


def test_previous_release_upgrades_in_place_and_loses_nothing(release_0_1: Path) -> None:
    data = release_0_1
    with closing(sqlite3.connect(data / "xiaoer.db")) as conn:
        before = {
            name: conn.execute(f'SELECT COUNT(*) FROM "{name}"').fetchone()[0]  # noqa: S608
            for (name,) in conn.execute(
                "SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%'"
            )
        }
    db = get_database()  # the data folder's xiaoer.db, migrated on first use
    assert db.sqlite_path == (data / "xiaoer.db").resolve()
    assert migrate.current(db) == migrate.head()

    # every row of the previous release is still there
    counts = _counts(db)
    for name, rows in before.items():
        if name in counts:
            assert counts[name] >= rows, name

    # ... and readable through the stores' public APIs
    from xiaoer.agents.store import get_agent_store
    from xiaoer.conversations.inbox import get_rest_inbox
    from xiaoer.core.settings import get_settings_store
    from xiaoer.handoff.store import get_handoff_store
    from xiaoer.leads.crm import get_crm_outbox
    from xiaoer.leads.store import get_lead_store
    from xiaoer.notifications.outbox import get_outbox
    from xiaoer.shop.urges import get_urge_store

    handoff = get_handoff_store().get(1)
    assert handoff is not None
    assert (handoff.sender_id, handoff.status) == ("buyer-zhang", "active")
    assert handoff.summary["order_id"] == "DY20260518001"
    assert get_agent_store().authenticate("xiaomei", "Xiaoer-agent-2026") is not None
    assert "差评" in get_settings_store().overrides(fresh=True)["keywords"]

    lead = get_lead_store().lead_for("buyer-zhao")
    assert lead is not None
    assert "13812345678" in lead.phones
    assert "客户要100件，报价中" in [n.text for n in get_lead_store().notes(lead.id)]
    assert [r.event for r in get_crm_outbox().rows()] == ["lead.created"]

    pending = get_outbox().pending()
    assert [(n.buyer_id, n.text) for n in pending] == [("B1002", "您的退款已到账 ¥129.00")]
    urges = get_urge_store().for_order("DY20260518001")
    assert [(u.sender_id, u.buyer_id) for u in urges] == [("buyer-zhang", "B1001")]
    inbox = get_rest_inbox().since("buyer-zhang")
    assert [m["text"] for m in inbox] == ["客服小美为您服务，请稍等。", "已为您催促仓库发货。"]

    from xiaoer.worker.events import EventFollower

    follower = EventFollower(data / "events.db", handlers=[])
    assert follower.last_id == 42

    # the Douyin channel's state and the demo shop come along
    from xiaoer.douyin.store import get_douyin_store

    douyin = get_douyin_store()
    assert [o.preview for o in douyin.outbox_pending("ou_buyer_zhang")] == ["您的订单已发货"]
    token = douyin.token("awx-test")
    assert token is not None and token.access_token == "act.demo-access"

    from xiaoer.shop.factory import get_backend

    order = asyncio.run(get_backend().get_order("6938271045123400001"))
    assert order is not None and order.recipient is not None
    assert order.recipient.address == "浙江省杭州市西湖区文三路90号"  # changed by the buyer

    # the old files are kept, renamed: their rows live in the project database now
    for name in ("douyin.db", "shop.db"):
        assert not (data / name).exists()
        assert (data / f"{name}.migrated").exists()

    # a second migrate changes nothing
    assert migrate.upgrade(db) == []
    assert _counts(db) == counts


def test_previous_release_tables_get_their_later_columns(release_0_1: Path) -> None:
    """A table made before a column was added (the old ad-hoc ALTERs) gets it, rows kept."""
    with closing(sqlite3.connect(release_0_1 / "xiaoer.db")) as conn:
        conn.execute("ALTER TABLE urge_requests DROP COLUMN buyer_id")
        conn.execute("DROP INDEX urges_by_order")
        conn.commit()
    from xiaoer.shop.urges import get_urge_store

    urges = get_urge_store().for_order("DY20260517002")
    assert [(u.sender_id, u.buyer_id) for u in urges] == [("buyer-li", "")]
    assert get_urge_store().record("buyer-li", "DY20260517002", 51.0, buyer_id="B1002") == 1
    db = get_database()
    assert "urges_by_order" in {i["name"] for i in inspect(db.engine).get_indexes("urge_requests")}


def test_migrate_command(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from xiaoer import cli

    assert cli.main(["migrate", "--check"]) == 1  # a new data folder: not migrated yet
    assert cli.main(["migrate"]) == 0
    assert "0001 applied" in capsys.readouterr().out
    assert cli.main(["migrate"]) == 0
    assert "up to date" in capsys.readouterr().out
    assert cli.main(["migrate", "--check"]) == 0
    assert cli.main(["migrate", "--current"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == migrate.head()
    with pytest.raises(SystemExit, match="no password"):
        cli.main(["migrate", "--url", "postgresql://xiaoer:secret@127.0.0.1/xiaoer"])


def test_previous_release_folder_into_postgresql(
    empty_db: Database, release_0_1: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A deployment moving to the scale-out profile: `xiaoer migrate --from-sqlite var`
    copies the previous release's data folder into PostgreSQL."""
    if empty_db.dialect != "postgresql":
        pytest.skip("on SQLite the folder's own xiaoer.db is upgraded in place (above)")
    with closing(sqlite3.connect(release_0_1 / "xiaoer.db")) as conn:
        expected = conn.execute("SELECT COUNT(*) FROM notifications").fetchone()[0]
    results = migrate.import_folder(empty_db, release_0_1)
    assert results["xiaoer.db"][0] > 0
    assert migrate.current(empty_db) == migrate.head()
    monkeypatch.setenv("XIAOER_DATABASE_URL", empty_db.url)
    from xiaoer.conversations.inbox import get_rest_inbox
    from xiaoer.notifications.outbox import get_outbox
    from xiaoer.shop.urges import get_urge_store

    outbox = get_outbox()
    assert len(outbox.all()) == expected
    assert [n.text for n in outbox.pending()] == ["您的退款已到账 ¥129.00"]
    # new rows get new ids after the copied ones
    copied_ids = [n.id for n in outbox.all()]
    added = outbox.add("B9", "order_shipped", "O9", "已发货")
    assert added is not None and added.id > max(copied_ids)
    assert [u.buyer_id for u in get_urge_store().for_order("DY20260518001")] == ["B1001"]
    inbox = get_rest_inbox()
    assert [m["text"] for m in inbox.since("buyer-zhang")][0] == "客服小美为您服务，请稍等。"
    from xiaoer.douyin.store import get_douyin_store
    from xiaoer.handoff.store import get_handoff_store
    from xiaoer.leads.store import get_lead_store
    from xiaoer.shop.factory import get_backend

    handoff = get_handoff_store().get(1)
    assert handoff is not None and handoff.summary["order_id"] == "DY20260518001"
    lead = get_lead_store().lead_for("buyer-zhao")
    assert lead is not None and "13812345678" in lead.phones
    douyin = get_douyin_store()
    assert [o.preview for o in douyin.outbox_pending("ou_buyer_zhang")] == ["您的订单已发货"]
    order = asyncio.run(get_backend().get_order("6938271045123400001"))
    assert order is not None and order.recipient is not None
    assert order.recipient.address == "浙江省杭州市西湖区文三路90号"
    assert sorted(p.name for p in release_0_1.glob("*.migrated")) == [
        "douyin.db.migrated",
        "shop.db.migrated",
        "xiaoer.db.migrated",
    ]
    # the files are set aside: importing again finds nothing to add
    assert migrate.import_folder(empty_db, release_0_1) == {}
    assert len(outbox.all()) == expected + 1


def test_a_new_revision_is_generated_from_a_changed_store(tmp_path: Path) -> None:
    """`xiaoer migrate --new MESSAGE`: a table a store declares becomes a revision."""
    from sqlalchemy import Column, Integer, Table, Text

    from xiaoer.core.db import metadata

    table = Table(
        "test_new_things",
        metadata,
        Column("id", Integer, primary_key=True),
        Column("name", Text, nullable=False),
    )
    try:
        path = migrate.new_revision("new things", versions=tmp_path)
    finally:
        metadata.remove(table)
    assert path is not None and path.parent == tmp_path
    text = path.read_text(encoding="utf-8")
    assert path.name == f"{int(migrate.head() or 0) + 1:04d}_new_things.py"
    assert f'down_revision = "{migrate.head()}"' in text
    assert '"test_new_things"' in text and "op.create_table" in text


def test_an_earlier_file_is_imported_once_its_tables_are_declared(tmp_path: Path) -> None:
    """A douyin.db/shop.db whose store was converted after the database reached the newest
    revision is still brought in (on the next first use), then set aside."""
    data = tmp_path / "var"
    db = create_database(sqlite_url(data / "xiaoer.db"))
    migrate.upgrade(db)
    with closing(sqlite3.connect(data / "douyin.db")) as conn:  # only declared tables
        conn.execute(
            "CREATE TABLE offered_buttons (sender_id TEXT PRIMARY KEY, buttons_json TEXT NOT NULL,"
            " offered_at REAL NOT NULL)"
        )
        conn.execute(
            "INSERT INTO offered_buttons VALUES ('s1', ?, ?)",
            ('[{"title": "确认取消", "payload": "/affirm"}]', time.time()),
        )
        conn.commit()
    from xiaoer.conversations.buttons import ButtonMemory

    memory = ButtonMemory(data / "xiaoer.db")  # the first use in this process
    assert memory.resolve("s1", "确认取消") == "/affirm"
    assert not (data / "douyin.db").exists() and (data / "douyin.db.migrated").exists()


def test_rows_a_new_unique_index_forbids_stop_the_upgrade_and_lose_nothing(
    release_0_1: Path,
) -> None:
    with closing(sqlite3.connect(release_0_1 / "xiaoer.db")) as conn:
        conn.execute(  # a second open handoff of the same customer
            "INSERT INTO handoff_requests (sender_id, reason, status, created_at)"
            " VALUES ('buyer-zhang', 'customer_asked', 'waiting', '2026-05-20T10:05:00+08:00')"
        )
        conn.commit()
        before = conn.execute("SELECT COUNT(*) FROM handoff_requests").fetchone()[0]
    if not any(ix.unique for ix in migrate.load_metadata().tables["handoff_requests"].indexes):
        pytest.skip("no unique index on open handoffs")
    with pytest.raises(DatabaseError, match="handoff_requests.*sender_id"):
        get_database()
    with closing(sqlite3.connect(release_0_1 / "xiaoer.db")) as conn:
        assert conn.execute("SELECT COUNT(*) FROM handoff_requests").fetchone()[0] == before
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
    assert "alembic_version" not in tables  # rolled back as a whole
    assert (release_0_1 / "douyin.db").exists()
