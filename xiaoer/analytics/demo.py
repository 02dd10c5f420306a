"""``xiaoer demo-traffic --days 30``: a month of simulated customers, through the real
assistant, so that a new user sees meaningful dashboards.

It starts its own action server and Rasa server (free ports, the project's
endpoints.yml, so the conversations land in the data folder's tracker store and event
broker) with the demo clock (:func:`xiaoer.core.clock.install_demo_clock`): before each
simulated message it moves the servers' clock to the moment the message pretends to be
sent, so the events carry timestamps spread over the days. Customers write through the
REST channel and through the Douyin channel (the local Douyin simulator: signed webhooks,
the send API); handoffs are answered by simulated agents through the console's own
handoff desk (Rasa's HTTP API: pause, agent messages, hand-back, which asks for the
rating); customers answer the rating question. Nothing is written into the analytics
tables: at the end the lead-capture and analytics followers read the event stream, as
the worker does. docs/analytics.md says how long a month takes.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import secrets
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import requests
import yaml

from xiaoer.core.clock import BEIJING, DEMO_CLOCK_ENV, now_beijing, set_demo_time
from xiaoer.core.config import PROJECT_ROOT, get_settings

# (weight, scenario name): the month's mix
SCENARIOS: list[tuple[int, str]] = [
    (14, "price"),
    (10, "order_status"),
    (9, "faq"),
    (7, "size"),
    (6, "stock"),
    (6, "human"),
    (3, "complaint"),
    (6, "fallback"),
    (4, "wholesale"),
    (3, "contact"),
    (2, "return"),
    (3, "case_progress"),
    (4, "greet_only"),
]
HOUR_WEIGHTS = {8: 2, 9: 5, 10: 7, 11: 7, 12: 5, 13: 5, 14: 6, 15: 6, 16: 6, 17: 5,
                18: 5, 19: 7, 20: 9, 21: 9, 22: 6, 23: 3, 0: 1, 7: 1}  # fmt: skip
AGENTS = [("demo-xiaomei", "小美"), ("demo-ajie", "阿杰"), ("demo-lili", "丽丽")]
GIBBERISH = ["asdfgh", "嗯嗯嗯那个那个", "？？？", "你们家的那个东西呢", "666", "hhhh", "。。。"]
COMMENTS = ["等太久了", "客服回复太慢", "问题没解决", "答非所问", "退款太麻烦了"]


@dataclass
class Customer:
    id: str
    channel: str  # rest | douyin
    seen: bool = False


class Player:
    """Plays conversations against the running servers, moving the demo clock."""

    def __init__(self, rasa_url: str, token: str, clock: Path, sim: Any, rng: random.Random):
        self.rasa_url = rasa_url
        self.token = token
        self.clock = clock
        self.sim = sim
        self.rng = rng
        self.now = 0.0
        self.turns = 0
        self.http = requests.Session()

    def at(self, moment: float) -> None:
        self.now = moment
        set_demo_time(self.clock, moment)

    def later(self, low: float, high: float) -> None:
        self.at(self.now + self.rng.uniform(low, high))

    def say(self, who: Customer, text: str) -> str:
        """The customer writes; the bot's reply text."""
        self.turns += 1
        if who.channel == "douyin":
            before = len(self.sim.replies(who.id))
            self.sim.say(who.id, text)
            got = self.sim.wait_quiet(who.id, before, settle=0.4, timeout=30)
            reply = "\n".join(r.text for r in got)
        else:
            r = self.http.post(
                f"{self.rasa_url}/webhooks/rest/webhook",
                json={"sender": who.id, "message": text},
                timeout=60,
            )
            r.raise_for_status()
            reply = "\n".join(m.get("text") or "" for m in r.json())
        self.later(8, 45)  # the customer reads and types
        return reply

    def sender_id(self, who: Customer) -> str:
        return who.id if who.channel == "douyin" else f"rest:{who.id}"

    def rate(self, who: Customer, reply: str, low: bool = False) -> None:
        """Answer the rating question if the bot asked it (sometimes not at all)."""
        if "打个分" not in reply and "1-5" not in reply:
            return
        roll = self.rng.random()
        if roll < 0.25:
            return  # ignores the question
        if low:
            stars = self.rng.choice([1, 2, 2, 3])
        else:
            stars = self.rng.choices([5, 4, 3, 2], weights=[6, 3, 1, 0.4])[0]
        if who.channel == "douyin":
            answer = str(stars)  # the numbered option
        elif roll < 0.3:
            answer = '/rate_service{"csat_rating":"skip"}'
        else:
            answer = f'/rate_service{{"csat_rating":"{stars}"}}'
        reply = self.say(who, answer)
        if "哪里" in reply or "问题出在" in reply:
            self.say(who, self.rng.choice(COMMENTS) if self.rng.random() < 0.7 else "跳过")


def _agent_ids() -> list[tuple[int, str]]:
    from xiaoer.agents import get_agent_store

    store = get_agent_store()
    found: list[tuple[int, str]] = []
    for username, name in AGENTS:
        agent = store.by_username(username)
        if agent is None:
            # the simulated agents get a random password nobody knows (never shown)
            agent = store.create(username, secrets.token_urlsafe(24) + "aA1!", display_name=name)
        found.append((agent.id, agent.display_name))
    return found


def _agent_answers(player: Player, who: Customer, agents: list[tuple[int, str]]) -> str:
    """A simulated agent takes the handoff, answers, and hands back (which asks for the
    rating); returns what the customer read last."""
    from xiaoer.handoff.desk import HandoffDesk
    from xiaoer.handoff.store import get_handoff_store

    request = get_handoff_store().active_for(player.sender_id(who))
    if request is None:
        return ""
    agent_id, name = player.rng.choice(agents)
    desk = HandoffDesk(player.rasa_url, player.token)

    async def work() -> None:
        player.later(40, 900)  # waiting for an agent
        await desk.take(request, agent_id)
        current = desk.store.get(request.id) or request
        await desk.reply(current, agent_id, name, f"您好，我是客服{name}，您的问题我来处理～")
        player.later(30, 240)
        await desk.reply(current, agent_id, name, "已经帮您核实处理好了，还有其他问题吗？")
        player.later(60, 600)
        await desk.hand_back(current, "已处理（模拟客服）")

    before = len(player.sim.replies(who.id)) if who.channel == "douyin" else 0
    asyncio.run(work())
    if who.channel == "douyin":
        got = player.sim.wait_quiet(who.id, before, settle=0.6, timeout=20)
        return "\n".join(r.text for r in got)
    messages = requests.get(
        f"{player.rasa_url}/conversations/{player.sender_id(who)}/tracker",
        params={"token": player.token},
        timeout=20,
    ).json()["events"]
    bots = [e.get("text") or "" for e in messages if e.get("event") == "bot"]
    return "\n".join(bots[-2:])


def play_conversation(
    player: Player, who: Customer, scenario: str, agents: list[tuple[int, str]]
) -> None:
    rng = player.rng
    say = lambda text: player.say(who, text)  # noqa: E731
    if who.channel == "douyin" and (scenario == "greet_only" or rng.random() < 0.3):
        player.sim.enter(who.id)  # opens the chat: the proactive greeting
        time.sleep(0.6)
        player.later(20, 120)
        if scenario == "greet_only":
            return
    elif scenario == "greet_only":
        scenario = "price"
    if rng.random() < 0.3:
        say(rng.choice(["你好", "在吗", "亲 在不在呀", "哈喽客服"]))
    end = ""
    if scenario == "price":
        say(
            rng.choice(
                ["纯棉短袖T恤多少钱", "马克杯多少钱", "T恤多少钱 包邮吗", "那个保温杯什么价"]
            )
        )
        if rng.random() < 0.4:
            say(rng.choice(["有优惠券吗", "能便宜点吗"]))
        end = say(rng.choice(["好的谢谢", "谢谢亲", "拜拜", "那我先撤了"]))
    elif scenario == "order_status":
        order = rng.choice(["6938271045123400002", "6938271045123400001", "6938271045123400006"])
        say(
            rng.choice(
                [f"帮我查下订单 {order}", f"{order} 到哪了", f"我的快递怎么样了 订单{order}"]
            )
        )
        end = say(rng.choice(["好的谢谢", "感谢", "拜拜"]))
    elif scenario == "faq":
        say(
            rng.choice(
                ["支持七天无理由吗", "新疆包邮吗", "几点有人工", "发票能开吗", "用的哪家快递"]
            )
        )
        if rng.random() < 0.5:
            say(rng.choice(["香港能发吗", "退货邮费谁承担"]))
        end = say(rng.choice(["好的谢谢", "谢谢", "拜拜"]))
    elif scenario == "size":
        say(rng.choice(["T恤 165 55kg穿什么码", "T恤 175 70kg穿哪个码", "尺码准不准"]))
        end = say(rng.choice(["好的谢谢", "拜拜"]))
    elif scenario == "stock":
        say(rng.choice(["T恤黑色M有货吗", "还有货没", "马克杯还有吗"]))
        end = say(rng.choice(["谢谢", "那我先撤了"]))
    elif scenario in ("human", "complaint"):
        if scenario == "complaint":
            say(rng.choice(["你们家服务真烂", "我要投诉你们", "发错货了还不处理 我要去12315"]))
        say("转人工")
        end = _agent_answers(player, who, agents)  # when the bot queued it
        player.rate(who, end, low=scenario == "complaint")
        return
    elif scenario == "fallback":
        say(rng.choice(GIBBERISH))
        if rng.random() < 0.5:
            say(rng.choice(GIBBERISH))
        return  # leaves without an answer
    elif scenario == "wholesale":
        say(f"我要批发，手机1{rng.randint(30, 89)}{rng.randint(10000000, 99999999)}")
        end = say("谢谢")
    elif scenario == "contact":
        say("纯棉短袖T恤多少钱")
        say(
            f"好的 我手机 1{rng.randint(30, 89)} {rng.randint(1000, 9999)} {rng.randint(1000, 9999)}"
        )
        end = say("拜拜")
    elif scenario == "return":
        say("我想退货")
        say("6938271045123400007")
        say("0000")
        say(rng.choice(["不想要了", "尺码不合适", "颜色和图片不一样"]))
        end = say("确认")
        end = say("好的谢谢") or end
    elif scenario == "case_progress":
        say("AS20261101 退款怎么样了")
        end = say("好的 拜拜")
    player.rate(who, end)


class Followers:
    """The worker's two event followers (lead capture, analytics), in a thread while the
    simulation plays, so that little is left to read at the end."""

    def __init__(self, broker: Path | str | None) -> None:
        self.broker = broker
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, name="demo-followers", daemon=True)
        self.rows = [0, 0]

    def _poll(self) -> None:
        from xiaoer.analytics.jobs import AnalyticsFollower
        from xiaoer.worker.events import EventFollower

        if self.broker is None:
            return
        self.rows[0] += EventFollower(self.broker).poll(max_rows=2000)
        self.rows[1] += AnalyticsFollower(self.broker).poll(max_rows=5000)

    def _run(self) -> None:
        while not self.done.wait(2.0):
            self._poll()

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.done.set()
        if self.thread.is_alive():
            self.thread.join()

    def catch_up(self) -> tuple[int, int]:
        from xiaoer.analytics.jobs import AnalyticsFollower
        from xiaoer.worker.events import EventFollower

        if self.broker is not None:
            self.rows[0] += EventFollower(self.broker).poll()
            self.rows[1] += AnalyticsFollower(self.broker).poll()
        return self.rows[0], self.rows[1]


def plan(days: int, end: date, per_day: int, rng: random.Random) -> list[tuple[float, str]]:
    """(moment, scenario) of every conversation, oldest first."""
    names = [name for _, name in SCENARIOS]
    weights = [w for w, _ in SCENARIOS]
    hours = list(HOUR_WEIGHTS)
    out: list[tuple[float, str]] = []
    for offset in range(days - 1, -1, -1):
        day = end - timedelta(days=offset)
        busy = 1.3 if day.weekday() >= 5 else 1.0
        count = max(1, round(per_day * busy * rng.uniform(0.7, 1.3)))
        for _ in range(count):
            hour = rng.choices(hours, weights=[HOUR_WEIGHTS[h] for h in hours])[0]
            moment = datetime(day.year, day.month, day.day, hour, tzinfo=BEIJING)
            moment += timedelta(seconds=rng.uniform(0, 3300))
            out.append((moment.timestamp(), rng.choices(names, weights=weights)[0]))
    out.sort()
    # every kind of conversation at least once (every chart of the dashboard has data)
    spread = rng.sample(range(len(out)), min(len(out), len(names)))
    for index, name in zip(sorted(spread), rng.sample(names, len(spread)), strict=True):
        out[index] = (out[index][0], name)
    return out


def demo_settings(workdir: Path) -> Path:
    """The merchant's xiaoer.yml with what a simulation needs: one address may open many
    handoffs (every simulated customer comes from 127.0.0.1), greetings at any hour."""
    from xiaoer.devtools.stack import TEST_REST_SETTINGS, write_settings

    base = Path(os.environ["XIAOER_CONFIG"]) if os.environ.get("XIAOER_CONFIG") else None
    raw = yaml.safe_load((base or PROJECT_ROOT / "xiaoer.yml").read_text(encoding="utf-8"))
    douyin = dict(raw.get("douyin") or {})
    greeting = dict(douyin.get("greeting") or {})
    greeting["quiet_hours"] = {"start": "00:00", "end": "00:00"}
    greeting["cooldown_minutes"] = 0
    douyin.update(greeting=greeting, reorder_window_seconds=0.05)
    return write_settings(workdir, base, {"rest": TEST_REST_SETTINGS, "douyin": douyin})


def latest_model() -> Path:
    models = sorted((PROJECT_ROOT / "models").glob("*.tar.gz"), key=lambda p: p.stat().st_mtime)
    if not models:
        raise SystemExit("error: no model in models/: train one first (xiaoer train)")
    return models[-1]


def run(
    days: int,
    *,
    per_day: int = 10,
    seed: int = 7,
    model: Path | None = None,
    end: date | None = None,
    progress: Callable[[str], None] = print,
) -> dict[str, Any]:
    from xiaoer.analytics.jobs import configured_broker
    from xiaoer.devtools.stack import RASA_ENV, free_port, start_servers, stop
    from xiaoer.douyin.simulator import running_simulator

    started = time.monotonic()
    rng = random.Random(seed)
    data_dir = get_settings().data_dir
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    workdir = data_dir / "demo-traffic"
    workdir.mkdir(exist_ok=True, mode=0o700)
    clock = workdir / "clock"
    end = end or (now_beijing().date() - timedelta(days=1))
    conversations = plan(days, end, per_day, rng)
    set_demo_time(clock, conversations[0][0])
    agents = _agent_ids()
    token = secrets.token_urlsafe(24)
    followers = Followers(configured_broker(PROJECT_ROOT / "endpoints.yml"))
    procs: list[Any] = []
    with running_simulator() as sim:
        actions_port, rasa_port = free_port(), free_port()
        env = {
            **os.environ,
            **RASA_ENV,
            **sim.env(),
            "XIAOER_DATA_DIR": str(data_dir),
            "XIAOER_CONFIG": str(demo_settings(workdir)),
            "XIAOER_ACTIONS_PORT": str(actions_port),
            DEMO_CLOCK_ENV: str(clock),
        }
        try:
            progress(f"starting the assistant (model {(model or latest_model()).name}) …")
            start_servers(
                model or latest_model(),
                rasa_port=rasa_port,
                actions_port=actions_port,
                token=token,
                endpoints=PROJECT_ROOT / "endpoints.yml",
                logs=workdir,
                env=env,
                procs=procs,
            )
            rasa_url = f"http://127.0.0.1:{rasa_port}"
            sim.webhook_url = f"{rasa_url}/webhooks/douyin/webhook"
            player = Player(rasa_url, token, clock, sim, rng)
            followers.start()  # as the worker: leads and analytics while the month plays
            pool: list[Customer] = []
            played_at = time.monotonic()
            for n, (moment, scenario) in enumerate(conversations, 1):
                if pool and rng.random() < 0.25:
                    who = rng.choice(pool)  # a returning customer
                else:
                    channel = "douyin" if rng.random() < 0.4 else "rest"
                    who = Customer(f"demo-{uuid.uuid4().hex[:10]}", channel)
                    pool.append(who)
                player.at(max(moment, player.now + 3600 * 1.5 if who.seen else moment))
                try:
                    play_conversation(player, who, scenario, agents)
                except (requests.RequestException, OSError) as exc:
                    progress(f"  conversation {n} ({scenario}) failed: {exc}")
                who.seen = True
                if n % 25 == 0 or n == len(conversations):
                    progress(
                        f"  {n}/{len(conversations)} conversations "
                        f"({datetime.fromtimestamp(moment, BEIJING):%m-%d}), {player.turns} messages"
                    )
            played = time.monotonic() - played_at
        finally:
            stop(procs)
            followers.stop()
    # what the worker does: leads from the customer messages, then analytics (the rest)
    leads, rows = followers.catch_up()
    _merchant_follows_up(rng)
    took = time.monotonic() - started
    return {
        "days": days,
        "from": (end - timedelta(days=days - 1)).isoformat(),
        "to": end.isoformat(),
        "conversations": len(conversations),
        "messages": player.turns,
        "events_read": max(leads, rows),
        "seconds": round(took, 1),
        "seconds_playing": round(played, 1),
    }


def _merchant_follows_up(rng: random.Random) -> None:
    """The merchant works the month's leads in the console: some contacted, some won."""
    from xiaoer.leads import get_lead_store

    store = get_lead_store()
    for lead in store.list_leads(status="new"):
        if not lead.source_sender_id.startswith(("rest:demo-", "demo-")):
            continue
        roll = rng.random()
        if roll < 0.5:
            store.set_status(lead.id, "contacted", author="demo-traffic")
        if roll < 0.2:
            store.set_status(lead.id, "won", author="demo-traffic")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="xiaoer demo-traffic",
        description="play simulated customers through the real assistant (docs/analytics.md)",
    )
    parser.add_argument("--days", type=int, default=30, help="how many days back (default 30)")
    parser.add_argument("--per-day", type=int, default=10, help="conversations per day (about)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--model", type=Path, help="default: the newest in models/")
    parser.add_argument("--end", help="the last day, YYYY-MM-DD (default: yesterday)")
    args = parser.parse_args(argv)
    if not 1 <= args.days <= 366 or not 1 <= args.per_day <= 200:
        print("error: --days must be 1-366 and --per-day 1-200", file=sys.stderr)
        return 2
    try:
        end = date.fromisoformat(args.end) if args.end else None
    except ValueError:
        print("error: --end must be YYYY-MM-DD", file=sys.stderr)
        return 2
    result = run(args.days, per_day=args.per_day, seed=args.seed, model=args.model, end=end)
    print(
        f"played {result['conversations']} conversations ({result['messages']} customer "
        f"messages) over {result['days']} days ({result['from']} – {result['to']}) in "
        f"{result['seconds']} s (playing {result['seconds_playing']} s, the rest is starting "
        f"the assistant); see the console's 数据分析 page or "
        f"`xiaoer report --from {result['from']} --to {result['to']}`"
    )
    return 0
