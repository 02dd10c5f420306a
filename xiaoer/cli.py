"""The `xiaoer` command: the tasks of merchants, designers and integrators in one place."""

from __future__ import annotations

from xiaoer.core import quiet

quiet.install()  # before Rasa, TensorFlow or SQLAlchemy is imported

import argparse  # noqa: E402
import asyncio  # noqa: E402
import hashlib  # noqa: E402
import os  # noqa: E402
import signal  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

from xiaoer.core.config import get_settings  # noqa: E402
from xiaoer.devtools.stack import (  # noqa: E402
    RASA_ENV,
    StartError,
    start_console,
    start_servers,
    start_worker,
    stop,
)


def _env() -> dict[str, str]:
    env = {**os.environ, **{k: v for k, v in RASA_ENV.items() if k not in os.environ}}
    return env


def _rasa() -> str:
    return str(Path(sys.executable).with_name("rasa"))


def cmd_seed(args: argparse.Namespace) -> int:
    from xiaoer.shop.sqlite_backend import seed_demo_shop, shop_location

    settings = get_settings()
    created = seed_demo_shop(settings.sqlite_path, reset=args.reset)
    if args.reset:
        # what the README's try-it table touches, kept outside the shop's tables: urges,
        # order lookups and phone checks (counted per order), Douyin greeting cooldowns
        from xiaoer.douyin.store import get_douyin_store
        from xiaoer.shop.access import get_order_check_store
        from xiaoer.shop.urges import get_urge_store

        print(f"已清除催发货记录：{get_urge_store().clear()} 条")
        print(f"已清除订单查询和身份核实记录：{get_order_check_store().clear()} 条")
        print(f"已清除抖音欢迎语记录：{get_douyin_store().forget_greetings()} 个会话")
    print(
        ("已创建演示店铺数据：" if created else "演示店铺数据已存在：")
        + shop_location(settings.sqlite_path)
    )
    return 0


def cmd_gen_catalogue(args: argparse.Namespace) -> int:
    from xiaoer.nlu.catalogue import write_catalogue_nlu
    from xiaoer.shop.factory import get_backend

    products = asyncio.run(get_backend().list_products())
    path = get_settings().root / "data" / "nlu" / "catalogue.yml"
    changed = write_catalogue_nlu(products, path)
    print(f"{'updated' if changed else 'unchanged'}: {path}")
    return 0


# the NLU components' own code and the text functions they call (normalisation, numbers,
# contacts, the handoff keyword component) change what a trained model has learned
TRAINING_INPUTS = (
    "config.yml",
    "domain.yml",
    "data",
    "xiaoer/nlu",
    "xiaoer/text",
    "xiaoer/knowledge/training_data.py",  # the knowledge base's generated training files
)


def training_fingerprint(root: Path) -> str:
    """Hash of everything a trained model depends on: config, domain, training data and
    the code of the custom NLU components."""
    digest = hashlib.sha256()
    for name in TRAINING_INPUTS:
        path = root / name
        files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        for file in files:
            if file.suffix in {".pyc"} or "__pycache__" in file.parts:
                continue
            digest.update(str(file.relative_to(root)).encode())
            digest.update(file.read_bytes())
    return digest.hexdigest()[:16]


def model_fingerprint(root: Path) -> str:
    """What a model is trained from: the project's inputs, the training configuration
    actually used (``XIAOER_TRAINING_CONFIG`` or ``training.config`` may name another than
    config.yml) and the knowledge base (its entries become retrieval intents at training
    time, docs/knowledge.md)."""
    from xiaoer.knowledge.store import get_knowledge_store
    from xiaoer.training.trainer import config_path

    kb = get_knowledge_store()
    config = hashlib.sha256(config_path().read_bytes()).hexdigest()
    inputs = f"{training_fingerprint(root)}:{config}:{kb.fingerprint()}"
    return hashlib.sha256(inputs.encode()).hexdigest()[:16]


def train(out: Path | None = None, quiet: bool = False) -> Path:
    """Train unless the latest model was trained on exactly the current inputs.

    ``rasa train`` itself reuses unchanged components from its cache; skipping it when
    nothing changed saves the packaging of a new, identical model."""
    from xiaoer.knowledge.store import get_knowledge_store
    from xiaoer.training import trainer

    root = get_settings().root
    out = out or root / "models"
    marker = out / f"{model_fingerprint(root)}.model"
    if marker.exists():
        model = out / marker.read_text().strip()
        if model.exists():
            print(
                f"==> model up to date ({model.name}): data/, domain.yml and config.yml unchanged"
            )
            return model
    print("==> rasa train (data/, domain.yml, config.yml or the knowledge base changed)")
    started = time.monotonic()
    inputs = trainer.prepare(store=get_knowledge_store())
    digest = trainer.project_files_digest(inputs)
    subprocess.run(
        trainer.rasa_train_args(inputs, out),  # with Rasa's validation of the data
        cwd=root,
        env=_env(),
        check=True,
        stdout=subprocess.DEVNULL if quiet else None,
    )
    trainer.record_validated(digest)  # the worker's retrains need not validate it again
    model = latest_model(out)
    marker.write_text(model.name)
    print(f"==> trained {model.name} in {time.monotonic() - started:.0f} s")
    return model


def latest_model(directory: Path) -> Path:
    models = sorted(directory.glob("*.tar.gz"), key=lambda p: p.stat().st_mtime)
    if not models:
        raise SystemExit(f"no trained model in {directory}")
    return models[-1]


def cmd_train(args: argparse.Namespace) -> int:
    model = train(quiet=args.quiet)
    if args.print_path:
        print(model)
    return 0


def api_token() -> str:
    """XIAOER_API_TOKEN from the environment, else a generated one kept in var/ (0600 from
    its creation)."""
    from xiaoer.core.security import api_token as token

    return token()


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def cmd_up(args: argparse.Namespace) -> int:
    from xiaoer.core import logsafe
    from xiaoer.core.security import (
        ACTION_TOKEN_ENV,
        action_token,
        check_data_dir,
        private_dir,
        private_umask,
    )
    from xiaoer.devtools.stack import local_address, server_settings

    settings = get_settings()
    root = settings.root
    private_umask()  # var/, its databases, logs and secrets: private from the first write
    logsafe.install()
    rasa_url = f"http://{local_address(server_settings()['host'])}:{args.port}"
    if check_data_dir(settings.data_dir):
        print(f"warning: {settings.data_dir} 或其中的文件可被本机其他用户读取（顾客数据、令牌）/ "
              f"readable by other users: chmod -R go-rwx {settings.data_dir}")  # fmt: skip
    private_dir(settings.data_dir)
    logs = private_dir(settings.data_dir / "logs")
    from xiaoer.core import startup
    from xiaoer.core.config import PROJECT_ROOT

    endpoints = Path(args.endpoints) if args.endpoints else root / "endpoints.yml"
    os.environ[ACTION_TOKEN_ENV] = action_token()  # endpoints.yml reads it
    os.environ["XIAOER_ACTIONS_PORT"] = str(args.actions_port)  # and these
    os.environ["XIAOER_DATA_DIR"] = str(settings.data_dir)
    try:  # what the servers need, checked before anything starts (xiaoer/core/startup.py)
        ports = {"Rasa server": args.port, "action server": args.actions_port,
                 "agent console": args.console_port}  # fmt: skip
        try:
            startup.check_ports(ports)
        except startup.StartupError as exc:
            print(f"error: 端口已被占用（是否已有一个店小二在运行？）/ {exc}: stop that process "
                  f"or choose other ports (--port, --actions-port, --console-port)")  # fmt: skip
            return 1
        if settings.backend_type != "sqlite":  # credentials first (the demo shop: after seeding)
            startup.build_backend(settings)
        stores = startup.check_endpoint_stores(endpoints, base=PROJECT_ROOT)
    except startup.StartupError as exc:
        print(f"error: 启动检查未通过 / start-up check failed: {exc}")
        return 1
    if cmd_migrate(argparse.Namespace()) != 0:
        return 1
    if settings.backend_type == "sqlite":
        cmd_seed(argparse.Namespace(reset=False))
    try:
        project_db = startup.check_project_db()
        backend = startup.check_backend(settings)
        model = startup.check_model(Path(args.model) if args.model else train())
    except startup.StartupError as exc:
        print(f"error: 启动检查未通过 / start-up check failed: {exc}")
        return 1
    token = api_token()
    console_host = args.console_host or str(settings.section("console").get("host") or "127.0.0.1")
    procs: list[subprocess.Popen[bytes]] = []
    # a supervisor (systemd, docker, a terminal closing) stops us with SIGTERM: stop the
    # servers as Ctrl-C does, never leave them running without us
    signal.signal(signal.SIGTERM, _interrupt)
    since = startup.log_sizes(logs)
    try:
        print(f"==> starting the action server on :{args.actions_port}, then the Rasa server on "
              f":{args.port} (model {model.name}; logs in {logs})")  # fmt: skip
        try:
            start_servers(
                model, rasa_port=args.port, actions_port=args.actions_port, token=token,
                endpoints=endpoints, logs=logs, env=_env(), procs=procs,
                cors=f"http://localhost:{args.port}", action_token=os.environ[ACTION_TOKEN_ENV],
            )  # fmt: skip
            if args.console_port:
                start_console(
                    port=args.console_port, rasa_url=rasa_url,
                    token=token, logs=logs, env=_env(), procs=procs, host=console_host,
                )  # fmt: skip
            # every background job: leads, notifications, re-announcements, Douyin resends
            worker = start_worker(
                endpoints=endpoints, rasa_url=rasa_url, token=token,
                logs=logs, env=_env(), procs=procs,
            )  # fmt: skip
            log = logs / "worker.log"
            if not startup.wait_logged(log, since.get(log.name, 0), "worker ready", worker, 120):
                raise StartError(f"the worker did not start, see {log}")
        except StartError as exc:
            failed = startup.failed_check(logs, since)
            print(
                f"error: 启动检查未通过 / start-up check failed: {failed}"
                if failed
                else f"error: {exc}"
            )
            return 1
        console = (f"  客服工作台 / agent console: http://{console_host}:{args.console_port}"
                   "  (first admin: .venv/bin/xiaoer create-admin NAME)") if args.console_port else ""  # fmt: skip
        print(startup.banner(
            backend=backend, credentials=PROJECT_ROOT / "credentials.yml", project_db=project_db,
            stores=stores, model=model, worker=f"running (logs: {logs / 'worker.log'})",
            extra=console,
        ))  # fmt: skip
        print(f"""  就绪检查 / readiness: curl -s localhost:{args.port}/webhooks/health/ready
  聊天 / chat:     .venv/bin/xiaoer chat
  REST:            curl -s localhost:{args.port}/webhooks/rest/webhook -d '{{"sender":"me","message":"你好"}}'
  HTTP API token:  $XIAOER_API_TOKEN (or the file {settings.data_dir / 'api_token'})
按 Ctrl-C 停止 / press Ctrl-C to stop.""")
        while all(p.poll() is None for p in procs):
            time.sleep(1)
        failed = startup.failed_check(logs, since)
        print(f"error: 启动检查未通过 / start-up check failed: {failed}" if failed else
              f"error: a server stopped unexpectedly, see {logs}")  # fmt: skip
        return 1
    except KeyboardInterrupt:
        print("\n==> stopping…")
        return 0
    finally:
        stop(procs)


def cmd_migrate(args: argparse.Namespace) -> int:
    """Upgrade the project database to the newest schema (xiaoer/core/migrate.py)."""
    from xiaoer.core import migrate

    return migrate.run(args)


def cmd_create_admin(args: argparse.Namespace) -> int:
    """Create an admin of the agent console; the password is asked for (never a default)."""
    import getpass

    from xiaoer.agents import AgentError, get_agent_store
    from xiaoer.agents.store import check_password_rules

    password = os.environ.get("XIAOER_ADMIN_PASSWORD") or ""
    if not password:
        if not sys.stdin.isatty():
            print("error: 请在终端中运行，或通过环境变量 XIAOER_ADMIN_PASSWORD 提供密码")
            return 2
        password = getpass.getpass("新管理员密码（至少10位，含字母和数字）: ")
        try:  # a password the rules refuse is said at once, not after typing it twice
            check_password_rules(password)
        except AgentError as exc:
            print(f"error: {exc}")
            return 1
        if getpass.getpass("再次输入密码: ") != password:
            print("error: 两次输入的密码不一致")
            return 2
    try:
        agent = get_agent_store().create(
            args.username,
            password,
            display_name=args.display_name or args.username,
            role="admin",
            groups=list(args.groups or []),
        )
    except AgentError as exc:
        print(f"error: {exc}")
        return 1
    print(f"已创建管理员 {agent.username}（id {agent.id}），可登录客服工作台。")
    return 0


def cmd_console(args: argparse.Namespace) -> int:
    """Run the agent console alone (``xiaoer up`` starts it beside the servers)."""
    from xiaoer.console.app import main as console_main

    os.environ.setdefault("XIAOER_API_TOKEN", api_token())
    argv = ["--port", str(args.port), "--rasa-url", args.url]
    if args.host:
        argv = ["--host", args.host, *argv]
    return console_main(argv)


def cmd_queue(args: argparse.Namespace) -> int:
    """What agents need to look at: waiting handoffs and urge requests."""
    from xiaoer.core.logsafe import mask_pii
    from xiaoer.handoff.store import get_handoff_store
    from xiaoer.shop.urges import get_urge_store

    waiting = get_handoff_store().waiting()
    print(f"待人工处理（{len(waiting)}）")
    for h in waiting:
        print(f"  #{h.id} {h.created_at} 会话 {h.sender_id} 原因 {h.reason}：{mask_pii(h.details)}")
    urges = get_urge_store().recent()
    print(f"催发货记录（最近 {len(urges)} 条）")
    for u in urges:
        print(
            f"  {u.created_at} 订单 {u.order_id} 已超时 {u.overdue_hours:g} 小时（会话 {u.sender_id}）"
        )
    return 0


def cmd_inbox(args: argparse.Namespace) -> int:
    """The inbox of messages the assistant did not understand (xiaoer/learning/)."""
    import json

    from xiaoer.core.logsafe import mask_pii
    from xiaoer.learning import service
    from xiaoer.learning.grouping import group_items
    from xiaoer.learning.inbox import REASON_LABELS, get_inbox_store

    store = get_inbox_store()
    if args.inbox_command == "collect":
        from xiaoer.learning.jobs import follower

        current = follower()
        if current is None:
            print("error: endpoints.yml has no SQL event_broker: nothing to collect")
            return 1
        print(f"已读取事件：{current.poll()} 条")
        return 0
    if args.inbox_command == "list":
        items = store.items(status=None if args.status == "all" else args.status)
        groups = group_items(items)
        if args.json:
            data = [g.as_dict() for g in groups]
            for entry in data:
                for item in entry["items"]:
                    item["text"] = mask_pii(item["text"])
                entry["label"] = mask_pii(entry["label"])
            print(json.dumps({"groups": data}, ensure_ascii=False, indent=2))
            return 0
        print(f"待学习（{len(items)} 条，{len(groups)} 组）")
        for g in groups:
            hint = "、".join(f"{n} {c:.0%}" for n, c in g.suggestions()) or "无"
            print(f"组 {g.id}（{g.count} 次）建议意图：{hint}")
            for item in g.items:
                reasons = "、".join(REASON_LABELS.get(r, r) for r in item.reasons)
                print(f"  #{item.id} ×{item.count} [{reasons}] {mask_pii(item.text)}"
                      f"  （会话 {item.last_sender}）")  # fmt: skip
        return 0
    ids = [int(i) for i in args.ids.split(",") if i.strip()]
    try:
        if args.inbox_command in ("ignore", "out-of-scope"):
            status = "ignored" if args.inbox_command == "ignore" else "out_of_scope"
            n = service.dismiss(ids, status, "cli")
            print(f"已标记 {n} 条")
            return 0
        if args.inbox_command == "kb":
            assigned = service.assign_to_kb(
                ids, "cli", entry_id=args.entry, question=args.question or "",
                answer=args.answer or "", category=args.category or "",
                retrain=not args.no_retrain,
            )  # fmt: skip
            for text in assigned.added:
                print(f"+ kb{assigned.entry_id} {mask_pii(text)}")
            print(assigned.retrain_message)
            return 0
        change = service.preview(ids, args.intent, args.topic)
        if change.empty:
            print("这些例句已在训练数据中，无需修改")
        else:
            print(change.diff, end="")
        if not change.empty and not args.yes:
            if not sys.stdin.isatty():
                print("error: 确认写入请加 --yes")
                return 1
            if input("写入以上修改？[y/N] ").strip().lower() not in ("y", "yes"):
                print("已取消")
                return 1
        result = service.accept(ids, args.intent, "cli", args.topic, retrain=not args.no_retrain)
    except (service.InboxError, ValueError) as exc:
        print(f"error: {exc}")
        return 1
    print(result.retrain_message)
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    """The designer's check of the training data (xiaoer/devtools/check.py)."""
    from xiaoer.devtools import check

    return check.main(args)


def cmd_simulate(args: argparse.Namespace) -> int:
    """A local fake Douyin platform (docs/douyin.md); its options follow the command."""
    from xiaoer.douyin.simulator import main as simulate

    return simulate(args.rest)


def cmd_douyin_outbox(args: argparse.Namespace) -> int:
    """Douyin replies the platform has not taken yet (resent automatically)."""
    from datetime import datetime

    from xiaoer.core.logsafe import mask_pii
    from xiaoer.douyin.store import get_douyin_store

    pending = get_douyin_store().outbox_pending()
    print(f"抖音待重发消息（{len(pending)}）")
    for item in pending:
        created = datetime.fromtimestamp(item.created_at).strftime("%m-%d %H:%M:%S")
        print(
            f"  #{item.id} {created} 顾客 {item.sender_id} 已尝试 {item.attempts} 次"
            f"（{mask_pii(item.last_error or '')}）：{mask_pii(item.preview[:60])}"
        )
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    """Every background job (xiaoer/worker/); its options follow the command."""
    from xiaoer.worker.__main__ import main as worker_main

    return worker_main(args.rest)


def cmd_notify(args: argparse.Namespace) -> int:
    from xiaoer.core.rasa_api import rasa_url
    from xiaoer.notifications.sender import RasaNotifier

    delivered = RasaNotifier(args.url or rasa_url(), api_token()).deliver_pending()
    print(f"delivered {delivered} notification(s)")
    return 0


def cmd_chat(args: argparse.Namespace) -> int:
    import requests

    from xiaoer.core.rasa_api import rasa_url

    url = f"{(args.url or rasa_url()).rstrip('/')}/webhooks/rest/webhook"
    sender = args.sender or f"cli-{uuid.uuid4().hex[:8]}"
    print(f"与店小二聊天（会话 {sender}），输入 /quit 退出。")
    while True:
        try:
            text = input("您: ").strip()
        except (EOFError, KeyboardInterrupt):
            print()
            return 0
        if text in {"/quit", "/exit"}:
            return 0
        if not text:
            continue
        try:
            response = requests.post(url, json={"sender": sender, "message": text}, timeout=30)
            response.raise_for_status()
        except requests.RequestException as exc:
            print(f"[无法连接店小二：{type(exc).__name__}，请确认已运行 make run]")
            continue
        for message in response.json():
            if message.get("text"):
                print(f"店小二: {message['text']}")
            for i, button in enumerate(message.get("buttons") or [], 1):
                print(f"   [{i}] {button.get('title')}  ({button.get('payload')})")
            if message.get("image"):
                print(f"店小二: [图片] {message['image']}")


def cmd_keywords(args: argparse.Namespace) -> int:
    """``xiaoer keywords list|add|remove|test``: the keyword rules (关键词回复), live at once
    in the running assistant (its cache: a few seconds)."""
    from xiaoer.keywords import RuleError, explain, get_keyword_store
    from xiaoer.keywords.store import RuleSummary

    store = get_keyword_store()
    if args.keywords_command == "list":
        rules = store.all(fresh=True)
        for rule in rules:
            print(RuleSummary(rule))
        if not rules:
            print("还没有关键词规则（xiaoer keywords add --help）")
        return 0
    if args.keywords_command == "remove":
        if not store.remove(args.rule_id):
            print(f"错误：没有规则 #{args.rule_id}", file=sys.stderr)
            return 1
        print(f"已删除规则 #{args.rule_id}")
        return 0
    if args.keywords_command == "test":
        result = explain(args.sentence, channel=args.channel or None)
        print(result.summary)
        if args.verbose:
            for rule in result.rules:
                print(f"  #{rule.id} {rule.label}: {result.reasons.get(rule.id, '')}")
        return 0
    window_start = window_end = ""
    if args.window:
        window_start, _, window_end = args.window.partition("-")
    form = {
        "name": args.name or "",
        "mode": args.mode,
        "keywords": args.keyword or [],
        "pattern": args.pattern or "",
        "exclude": args.exclude or [],
        "action": "handoff" if args.handoff else "reply",
        "reply_text": args.reply or "",
        "buttons": [{"title": b} for b in args.button or []],
        "image_url": args.image or "",
        "handoff_reason": args.handoff or "",
        "priority": str(args.priority),
        "channel": args.channel or "",
        "window_start": window_start,
        "window_end": window_end,
        "negation": not args.no_negation,
        "enabled": not args.disabled,
    }
    try:
        rule = store.add(form, by="cli")
    except RuleError as exc:
        for message in exc.errors.values():
            print(f"错误：{message}", file=sys.stderr)
        return 2
    print(f"已添加 {RuleSummary(rule)}")
    return 0


def _keywords_parser(sub: Any) -> None:
    p = sub.add_parser("keywords", help="keyword rules: list, add, remove, test a sentence")
    kw = p.add_subparsers(dest="keywords_command", required=True)
    kw.add_parser("list", help="every rule, in matching order")
    add = kw.add_parser("add", help="add a rule (live within seconds)")
    add.add_argument("keyword", nargs="*", help="keywords (modes exact / contains)")
    add.add_argument("--mode", choices=("exact", "contains", "regex"), default="contains")
    add.add_argument("--pattern", help="the regular expression (mode regex)")
    what = add.add_mutually_exclusive_group(required=True)
    what.add_argument("--reply", help="the reply text ({shop_name} {bot_name} {service_hours})")
    what.add_argument("--handoff", choices=("complaint", "request"), help="hand over instead")
    add.add_argument("--button", action="append", help="a button under the reply (repeatable)")
    add.add_argument("--image", help="an image URL sent with the reply")
    add.add_argument("--exclude", action="append", help="an exclusion word (repeatable)")
    add.add_argument("--priority", type=int, default=50, help="0-100, higher first")
    add.add_argument("--channel", choices=("rest", "douyin"), help="only on this channel")
    add.add_argument("--window", help="HH:MM-HH:MM, the shop's clock (may wrap midnight)")
    add.add_argument("--name", help="a name shown in the console")
    add.add_argument("--no-negation", action="store_true", help="match even when negated")
    add.add_argument("--disabled", action="store_true", help="add it switched off")
    rm = kw.add_parser("remove", help="delete a rule")
    rm.add_argument("rule_id", type=int)
    test = kw.add_parser("test", help="which rule a sentence triggers, and why")
    test.add_argument("sentence")
    test.add_argument("--channel", choices=("rest", "douyin"), default=None)
    test.add_argument("-v", "--verbose", action="store_true", help="why each other rule did not")
    p.set_defaults(func=cmd_keywords)


def cmd_designer(args: argparse.Namespace) -> int:
    """``rasa shell`` / ``rasa interactive`` beside running servers (xiaoer/devtools/designer.py)."""
    from xiaoer.devtools import designer

    model = Path(args.model) if args.model else None
    return designer.run(
        args.command, model=model, actions_url=args.actions_url, extra=args.rasa_args
    )


def cmd_kb(args: argparse.Namespace) -> int:
    """The knowledge base (docs/knowledge.md): import, export, list, retrain."""
    from xiaoer.knowledge import cli as kb_cli

    return kb_cli.run(args)


def cmd_report(args: argparse.Namespace) -> int:
    from xiaoer.analytics.report import main as report

    return report(args.rest)


def cmd_analytics(args: argparse.Namespace) -> int:
    if args.rest[:1] != ["rebuild"]:
        print("usage: xiaoer analytics rebuild [--endpoints FILE]", file=sys.stderr)
        return 2
    from xiaoer.analytics.report import rebuild_main

    return rebuild_main(args.rest[1:])


def cmd_demo_traffic(args: argparse.Namespace) -> int:
    from xiaoer.analytics.demo import main as demo

    return demo(args.rest)


# commands whose own options (--help too) pass through to their module
PASS_THROUGH = {"report": cmd_report, "analytics": cmd_analytics, "demo-traffic": cmd_demo_traffic}


def main(argv: list[str] | None = None) -> int:
    try:
        code = _main(argv)
        sys.stdout.flush()  # a closed pipe shows here, not in the interpreter's last flush
        return code
    except BrokenPipeError:
        # `xiaoer queue | head`: the reader has gone, nothing left to say; stdout is
        # pointed at /dev/null so that the interpreter's final flush stays quiet too
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0


def _main(argv: list[str] | None = None) -> int:
    # commands that import Rasa (the worker's event follower) get the servers' quiet
    # environment, so the terminal shows Xiaoer's messages, not library deprecations
    for key, value in RASA_ENV.items():
        os.environ.setdefault(key, value)
    # every file a command writes (var/: shop, agents, leads, tokens) is private from the start
    from xiaoer.core.security import private_umask

    private_umask()
    parser = argparse.ArgumentParser(prog="xiaoer", description="Xiaoer (店小二) assistant")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("seed", help="create the embedded demo shop database")
    p.add_argument(
        "--reset", action="store_true", help="delete and re-seed (dates relative to now)"
    )
    p.set_defaults(func=cmd_seed)
    sub.add_parser(
        "gen-catalogue", help="regenerate data/nlu/catalogue.yml from the shop"
    ).set_defaults(func=cmd_gen_catalogue)
    p = sub.add_parser("train", help="train the model if data/, domain.yml or config.yml changed")
    p.add_argument("--quiet", action="store_true", help="hide Rasa's training output")
    p.add_argument("--print-path", action="store_true", help="print the model's path last")
    p.set_defaults(func=cmd_train)
    p = sub.add_parser("up", help="seed, train if needed, start action and Rasa servers")
    p.add_argument("--port", type=int, default=5005)
    p.add_argument("--actions-port", type=int, default=5055)
    p.add_argument("--console-port", type=int, default=8000, help="agent console (0: off)")
    p.add_argument("--console-host", default=None, help="default: console.host of xiaoer.yml")
    p.add_argument("--model", default=None, help="this model archive (default: train if needed)")
    p.add_argument("--endpoints", default=None, help="default: endpoints.yml of the project")
    p.set_defaults(func=cmd_up)
    p = sub.add_parser("migrate", help="upgrade the project database (--check, --new MESSAGE)")
    p.add_argument("--url", help="database URL without password (default: the project database)")
    p.add_argument(
        "--endpoints",
        help="PostgreSQL: also create the tracker store's and event broker's databases and tables",
    )
    what = p.add_mutually_exclusive_group()
    what.add_argument("--check", action="store_true", help="exit 1 unless at the newest schema")
    what.add_argument("--current", action="store_true", help="print the current revision")
    what.add_argument("--new", metavar="MESSAGE", help="autogenerate a new revision (developers)")
    what.add_argument(
        "--from-sqlite", metavar="DIR", help="copy an earlier release's data folder into it"
    )
    p.set_defaults(func=cmd_migrate)
    p = sub.add_parser("create-admin", help="create an admin of the agent console")
    p.add_argument("username")
    p.add_argument("--display-name", default="")
    p.add_argument("--groups", nargs="*", default=None, help="skill groups, e.g. 售前 售后 投诉")
    p.set_defaults(func=cmd_create_admin)
    p = sub.add_parser("console", help="run the agent console alone")
    p.add_argument("--host", default=None, help="default: console.host of xiaoer.yml")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--url", default="http://localhost:5005", help="the Rasa server")
    p.set_defaults(func=cmd_console)
    sub.add_parser("queue", help="list waiting handoffs and urge requests").set_defaults(
        func=cmd_queue
    )
    p = sub.add_parser(
        "check", help="check the training data: validate, test stories, NLU confusions"
    )
    p.add_argument("--skip", default="", help="comma-separated steps to skip: validate,stories,nlu")
    p.add_argument("--model", default=None, help="for the test stories (default: the newest)")
    p.add_argument("--stories", default="tests/test_stories.yml")
    p.add_argument("--min-examples", type=int, default=20)
    p.add_argument(
        "--confusion", type=float, default=0.1, help="flag pairs confused above this share"
    )
    p.add_argument("--per-intent", type=int, default=40, help="cross-validation sample per intent")
    p.add_argument("--folds", type=int, default=3)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--nlu-pipeline", choices=["fast", "rasa"], default="fast")
    p.add_argument("--root", default=None, help="another project folder (default: this one)")
    p.add_argument("--html-dir", default=None, help="default: <data folder>/reports")
    p.add_argument("--no-fail", action="store_true", help="exit 0 even when something is flagged")
    p.set_defaults(func=cmd_check)
    p = sub.add_parser("inbox", help="messages the assistant did not understand (待学习)")
    inbox = p.add_subparsers(dest="inbox_command", required=True)
    q = inbox.add_parser("list", help="open messages, grouped by similarity")
    q.add_argument("--json", action="store_true")
    q.add_argument("--status", default="open",
                   choices=["open", "accepted", "out_of_scope", "ignored", "all"])  # fmt: skip
    q = inbox.add_parser("accept", help="add messages as examples of an intent (shows the diff)")
    q.add_argument("ids", help="message ids, comma-separated")
    q.add_argument("intent")
    q.add_argument("--topic", default=None, help="data/nlu/<topic>.yml for a new intent")
    q.add_argument("--yes", action="store_true", help="write without asking")
    q.add_argument("--no-retrain", action="store_true", help="write only, retrain later")
    q = inbox.add_parser("kb", help="add messages to a knowledge-base entry (existing or new)")
    q.add_argument("ids", help="message ids, comma-separated")
    q.add_argument("--entry", type=int, default=None, help="an existing entry's id (kb<id>)")
    q.add_argument("--answer", default=None, help="a new entry's answer")
    q.add_argument(
        "--question", default=None, help="a new entry's question (default: the first message)"
    )
    q.add_argument("--category", default=None, help="a new entry's category")
    q.add_argument("--no-retrain", action="store_true", help="save only, retrain later")
    for name in ("ignore", "out-of-scope"):
        inbox.add_parser(name, help=f"mark messages {name}").add_argument("ids")
    inbox.add_parser("collect", help="read new events now (the worker does it every second)")
    p.set_defaults(func=cmd_inbox)
    p = sub.add_parser(
        "simulate",
        help="a local fake Douyin platform (simulate --help; docs/douyin.md)",
        add_help=False,
    )
    p.add_argument("rest", nargs=argparse.REMAINDER)
    p.set_defaults(func=cmd_simulate)
    p = sub.add_parser("douyin-outbox", help="list Douyin replies waiting to be resent")
    p.set_defaults(func=cmd_douyin_outbox)
    p = sub.add_parser(
        "worker",
        help="run every background job (worker --help; docs/deployment.md)",
        add_help=False,
    )
    p.add_argument("rest", nargs=argparse.REMAINDER)
    p.set_defaults(func=cmd_worker)
    p = sub.add_parser("notify", help="deliver queued proactive notifications now")
    p.add_argument("--url", default=None, help="default: $XIAOER_RASA_URL, else console.rasa_url")
    p.set_defaults(func=cmd_notify)
    _keywords_parser(sub)
    for name, text in (
        ("report", "analytics of a date range: summary, --json, --png (docs/analytics.md)"),
        ("analytics", "analytics rebuild: replay the event log into the analytics store"),
        ("demo-traffic", "play a month of simulated customers through the assistant"),
    ):
        p = sub.add_parser(name, help=text, add_help=False)
        p.add_argument("rest", nargs=argparse.REMAINDER)
        p.set_defaults(func=PASS_THROUGH[name])
    p = sub.add_parser("chat", help="chat with the running assistant in the terminal")
    p.add_argument("--url", default=None, help="default: $XIAOER_RASA_URL, else console.rasa_url")
    p.add_argument("--sender", default=None)
    p.set_defaults(func=cmd_chat)
    from xiaoer.knowledge.cli import add_parser as add_kb_parser

    add_kb_parser(sub, cmd_kb)
    for name, rasa_command in (
        ("shell", "rasa shell"),
        ("interactive", "rasa interactive (exports to data/stories/, data/nlu/)"),
    ):
        p = sub.add_parser(name, help=f"{rasa_command} on free ports, the current model")
        p.add_argument("--model", default=None, help="default: the current one (xiaoer train)")
        p.add_argument("--actions-url", default=None,
                       help="a running action server (default: one of its own on a free port)")  # fmt: skip
        p.add_argument(
            "rasa_args", nargs=argparse.REMAINDER, help=f"more options of {rasa_command}"
        )
        p.set_defaults(func=cmd_designer)
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["simulate"]:  # the simulator's own options (--help too) pass through
        return cmd_simulate(argparse.Namespace(rest=argv[1:]))
    if argv[:1] == ["worker"]:  # so do the worker's
        return cmd_worker(argparse.Namespace(rest=argv[1:]))
    if argv[:1] and argv[0] in PASS_THROUGH:
        return PASS_THROUGH[argv[0]](argparse.Namespace(rest=argv[1:]))
    if argv[:1] in (["shell"], ["interactive"]):  # Rasa's options (--debug...) pass through
        args, rasa_options = parser.parse_known_args(argv)
        args.rasa_args = [*rasa_options, *args.rasa_args]
        return int(args.func(args) or 0)
    args = parser.parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
