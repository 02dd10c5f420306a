"""Agent accounts: hashed passwords, roles, groups, shifts, the last admin kept."""

from __future__ import annotations

import sqlite3

import pytest

from xiaoer.agents import Agent, AgentError, get_agent_store


def test_agent_is_created_with_a_hashed_password(data_dir):
    store = get_agent_store()
    agent = store.create("xiaowang", "good-pass-123", display_name="小王", groups=["售后"])
    assert agent == Agent(agent.id, "xiaowang", "小王", "agent", ["售后"], True, True)
    stored = (
        sqlite3.connect(data_dir / "xiaoer.db")
        .execute("SELECT password_hash FROM agents WHERE id = ?", (agent.id,))
        .fetchone()[0]
    )
    assert "good-pass-123" not in stored and stored.startswith("$argon2")
    assert store.authenticate("xiaowang", "good-pass-123") == agent
    assert store.authenticate("xiaowang", "wrong-pass-123") is None
    assert store.authenticate("nobody", "good-pass-123") is None
    assert store.list_agents() == [agent] and store.get(agent.id) == agent


@pytest.mark.parametrize(
    "username,password,role,message",
    [
        ("ab", "good-pass-123", "agent", "用户名"),
        ("xiaowang", "short1", "agent", "至少"),
        ("xiaowang", "onlyletterspassword", "agent", "字母和数字"),
        ("xiaowang", "good-pass-123", "boss", "角色"),
    ],
)
def test_bad_accounts_are_refused_with_a_reason(data_dir, username, password, role, message):
    with pytest.raises(AgentError, match=message):
        get_agent_store().create(username, password, role=role)
    assert get_agent_store().list_agents() == []


def test_duplicate_username_is_refused(data_dir):
    get_agent_store().create("xiaowang", "good-pass-123")
    with pytest.raises(AgentError, match="已存在"):
        get_agent_store().create("xiaowang", "other-pass-123")


def test_inactive_agent_cannot_log_in_and_the_last_admin_stays(data_dir):
    store = get_agent_store()
    admin = store.create("boss", "good-pass-123", role="admin")
    agent = store.create("xiaowang", "good-pass-123", groups=["售前"])
    store.update(agent.id, active=False)
    assert store.authenticate("xiaowang", "good-pass-123") is None
    with pytest.raises(AgentError, match="管理员"):
        store.update(admin.id, role="agent")
    with pytest.raises(AgentError, match="管理员"):
        store.update(admin.id, active=False)


def test_shift_and_groups_select_agents(data_dir):
    store = get_agent_store()
    a = store.create("presale", "good-pass-123", groups=["售前"])
    b = store.create("aftersale", "good-pass-123", groups=["售后", "投诉"])
    store.update(b.id, on_shift=False)
    assert [x.id for x in store.on_shift("售前")] == [a.id]
    assert store.on_shift("售后") == []
    store.set_password(a.id, "new-pass-4567")
    assert store.authenticate("presale", "new-pass-4567") is not None


def test_first_admin_comes_from_the_command_line(data_dir, monkeypatch, capsys):
    from xiaoer.cli import main

    monkeypatch.delenv("XIAOER_ADMIN_PASSWORD", raising=False)
    monkeypatch.setattr("sys.stdin.isatty", lambda: False)
    assert main(["create-admin", "boss"]) == 2  # no password, no terminal: nothing created
    assert get_agent_store().list_agents() == []
    monkeypatch.setenv("XIAOER_ADMIN_PASSWORD", "weak")
    assert main(["create-admin", "boss"]) == 1 and "至少" in capsys.readouterr().out
    monkeypatch.setenv("XIAOER_ADMIN_PASSWORD", "boss-pass-2026")
    assert main(["create-admin", "boss", "--display-name", "王主管", "--groups", "投诉"]) == 0
    (admin,) = get_agent_store().list_agents()
    assert (admin.username, admin.role, admin.display_name, admin.groups) == (
        "boss", "admin", "王主管", ["投诉"],
    )  # fmt: skip
    assert "boss-pass-2026" not in capsys.readouterr().out
