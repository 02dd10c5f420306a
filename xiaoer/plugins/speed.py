"""Speed levers of the Rasa server, installed in-process by ``xiaoer.servers.rasaserver``.

Each keeps Rasa's behaviour and storage format; bench/load.py measures them against a stock
Rasa 3.6 set-up (``XIAOER_SPEED_LEVERS=off`` turns every lever off, for that comparison).

* **Compiled action-response validator.** ``RemoteAction._validate_action_result`` calls
  ``jsonschema.validate``, which checks the *schema* against the draft 2020-12 meta-schema
  and builds a new validator on every custom-action call (a third of the server's time
  under load). The schema never changes: its validator is built once; an invalid response
  raises the same ``ValidationError`` (the best match, with Rasa's message appended).
* **One transaction per turn.** Rasa's ``SQLTrackerStore.save`` re-reads the whole
  conversation session to find the new events for the event broker, and Rasa's
  ``SQLEventBroker`` commits every event in a transaction of its own.
  :class:`TurnSQLTrackerStore` counts the stored events once, hands the turn's new events
  to the broker in one call and writes them to the tracker in one transaction;
  :class:`TurnSQLEventBroker` writes them in one transaction: the same ``events`` rows
  (id order, ``sender_id``, the event JSON as Rasa writes it). ``type: SQL`` in the
  endpoints file stays as it is; the server uses these classes for it.
* **SQLite in WAL mode with ``synchronous=NORMAL``, connections kept open** for the tracker
  store and event broker files (SQLAlchemy 1.4 opens a connection per session for SQLite
  files; closing the last one checkpoints the WAL, an fsync per turn): readers (the worker's event follower, the console) do not block the writer; a
  committed turn survives a crash of any process (not necessarily a power cut of the
  machine, which may lose the last turns).
* **Model load without a training step.** Rasa 3.6 builds each TensorFlow model (DIET, TED)
  by training it for one step before loading its weights, tracing the whole training graph
  (most of the start time); one eager forward pass builds the same variables
  (:func:`install_fast_model_load`): the same weights, the same predictions.
* **TED predictions cached for identical featurised states**
  (:mod:`xiaoer.plugins.prediction_cache`; exactly the same predictions).
* **Warm-up before ready**: the models answer a few typical messages (parse and policy
  prediction on a throw-away tracker, nothing stored) before the server accepts its first
  connection, so the first customer does not pay TensorFlow's graph building.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import time
from typing import Any

logger = logging.getLogger("xiaoer.plugins.speed")

LEVERS_ENV = "XIAOER_SPEED_LEVERS"

# typical first messages (greeting, policy, product, order status, thanks): every model
# (tokenizer, featurizers, DIET, TED) runs once on inputs of the usual lengths
WARM_UP_TEXTS = (
    "你好",
    "运费险有吗",
    "T恤多少钱",
    "帮我查下订单 6938271045123400002 到哪了",
    "谢谢",
)


def levers_enabled() -> bool:
    """False with ``XIAOER_SPEED_LEVERS=off`` (the stock Rasa comparison of bench/load.py)."""
    return os.environ.get(LEVERS_ENV, "on").strip().lower() not in ("off", "0", "false", "no")


# --- the compiled action-response validator ------------------------------------------------
_validator: Any = None


def action_response_validator() -> Any:
    """The validator of Rasa's action-response schema, built (and the schema checked) once."""
    global _validator
    if _validator is None:
        from jsonschema.validators import validator_for
        from rasa.core.actions.action import RemoteAction

        schema = RemoteAction.action_response_format_spec()
        cls = validator_for(schema)
        cls.check_schema(schema)
        _validator = cls(schema)
    return _validator


def validate_action_result(self: Any, result: dict[str, Any]) -> bool:
    """``RemoteAction._validate_action_result`` with the validator built once: the same
    error as ``jsonschema.validate`` (its best match), with Rasa's hint appended."""
    from jsonschema.exceptions import best_match
    from rasa.shared.constants import DOCS_BASE_URL

    error = best_match(action_response_validator().iter_errors(result))
    if error is None:
        return True
    error.message += (
        ". Failed to validate Action server response from API, "
        "make sure your response from the Action endpoint is valid. "
        f"For more information about the format visit {DOCS_BASE_URL}/custom-actions"
    )
    raise error


def install_compiled_validator() -> None:
    from rasa.core.actions.action import RemoteAction

    RemoteAction._validate_action_result = validate_action_result


# --- SQLite: WAL, synchronous=NORMAL, connections kept open -------------------------------
def sqlite_engine(engine: Any) -> Any:
    """For an SQLite file ``engine``: an engine on the same file whose connections are
    pooled (SQLAlchemy 1.4 opens and closes one per session for files: closing the last
    connection of a WAL database checkpoints it, an fsync per turn) and set to WAL with
    ``synchronous=NORMAL``. Other engines are returned as they are."""
    if engine.dialect.name != "sqlite" or engine.url.database in (None, "", ":memory:"):
        return engine
    import sqlalchemy as sa
    from sqlalchemy.pool import QueuePool

    pooled = sa.create_engine(
        engine.url,
        poolclass=QueuePool,
        pool_size=5,
        max_overflow=10,
        # a pooled connection serves one thread at a time, maybe not the one that opened it
        connect_args={"check_same_thread": False},
    )

    @sa.event.listens_for(pooled, "connect")
    def _pragmas(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
        finally:
            cursor.close()

    engine.dispose()
    return pooled


# --- the event broker and tracker store: one transaction per turn --------------------------
def _broker_class() -> type:
    from rasa.core.brokers.sql import SQLEventBroker

    class TurnSQLEventBroker(SQLEventBroker):
        """Rasa's SQL event broker writing a batch of events in one transaction."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            import sqlalchemy.orm

            super().__init__(*args, **kwargs)
            self.engine: Any = sqlite_engine(self.engine)
            self.sessionmaker = sqlalchemy.orm.sessionmaker(bind=self.engine)

        def publish_many(self, events: list[dict[str, Any]]) -> None:
            """Rows as ``publish`` writes them, in order, committed together."""
            if not events:
                return
            table = self.SQLBrokerEvent.__table__
            rows = [{"sender_id": e.get("sender_id"), "data": json.dumps(e)} for e in events]
            with self.engine.begin() as conn:
                conn.execute(table.insert(), rows)

    TurnSQLEventBroker.__qualname__ = TurnSQLEventBroker.__name__
    TurnSQLEventBroker.__module__ = __name__
    return TurnSQLEventBroker


def _tracker_store_class() -> type:
    from rasa.core.tracker_store import SQLTrackerStore
    from rasa.shared.nlu.constants import INTENT_NAME_KEY

    class TurnSQLTrackerStore(SQLTrackerStore):
        """Rasa's SQL tracker store saving a turn with one count query and one transaction,
        and handing the same new events to the event broker in one batch."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            import sqlalchemy.orm

            super().__init__(*args, **kwargs)
            self.engine: Any = sqlite_engine(self.engine)
            self.sessionmaker = sqlalchemy.orm.sessionmaker(bind=self.engine)

        async def save(self, tracker: Any) -> None:
            with self.session_scope() as session:
                stored = self._event_query(
                    session, tracker.sender_id, fetch_events_from_all_sessions=False
                ).count()
                new = list(itertools.islice(tracker.events, stored, len(tracker.events)))
                # the broker first, as Rasa's save streams before it writes
                if self.event_broker is not None and new:
                    publish_events(self.event_broker, tracker.sender_id, new)
                rows = []
                for event in new:
                    data = event.as_dict()
                    rows.append({
                        "sender_id": tracker.sender_id,
                        "type_name": event.type_name,
                        "timestamp": data.get("timestamp"),
                        "intent_name": data.get("parse_data", {}).get("intent", {}).get(
                            INTENT_NAME_KEY
                        ),
                        "action_name": data.get("name"),
                        "data": json.dumps(data),
                    })  # fmt: skip
                if rows:
                    session.execute(self.SQLEvent.__table__.insert(), rows)
                session.commit()
            logger.debug("tracker %s: %d events stored", tracker.sender_id, len(rows))

    TurnSQLTrackerStore.__qualname__ = TurnSQLTrackerStore.__name__
    TurnSQLTrackerStore.__module__ = __name__
    return TurnSQLTrackerStore


def publish_events(broker: Any, sender_id: str, events: list[Any]) -> None:
    """What Rasa's ``_stream_new_events`` publishes (``sender_id`` then the event's dict),
    in one call when the broker can take a batch."""
    bodies = [{"sender_id": sender_id, **event.as_dict()} for event in events]
    many = getattr(broker, "publish_many", None)
    if many is not None:
        many(bodies)
        return
    for body in bodies:
        broker.publish(body)


_classes: dict[str, type] = {}


def turn_event_broker() -> type:
    if "broker" not in _classes:
        _classes["broker"] = _broker_class()
    return _classes["broker"]


def turn_tracker_store() -> type:
    if "tracker" not in _classes:
        _classes["tracker"] = _tracker_store_class()
    return _classes["tracker"]


def install_turn_stores() -> None:
    """``type: SQL`` in the endpoints file builds the one-transaction classes."""
    import rasa.core.brokers.sql as rasa_sql_broker
    import rasa.core.tracker_store as rasa_tracker_store

    rasa_sql_broker.SQLEventBroker = turn_event_broker()
    rasa_tracker_store.SQLTrackerStore = turn_tracker_store()


# --- warm-up before ready ------------------------------------------------------------------
async def warm_up(agent: Any, texts: tuple[str, ...] = WARM_UP_TEXTS) -> int:
    """Parse each text and predict the next action on a throw-away tracker (never stored,
    never sent to the event broker). Returns how many texts went through the models."""
    from rasa.shared.core.constants import ACTION_LISTEN_NAME
    from rasa.shared.core.events import ActionExecuted, UserUttered
    from rasa.shared.core.trackers import DialogueStateTracker

    processor = agent.processor
    if processor is None:
        return 0
    done = 0
    for text in texts:
        parse = await agent.parse_message(text)
        tracker = DialogueStateTracker.from_events(
            "__xiaoer_warm_up__",
            [
                ActionExecuted(ACTION_LISTEN_NAME),
                UserUttered(text, parse.get("intent"), parse.get("entities"), parse),
            ],
            slots=agent.domain.slots,
        )
        processor.predict_next_with_tracker(tracker)
        done += 1
    return done


def install_warm_up() -> None:
    """After Rasa loads the model (``before_server_start``) and before the server accepts
    connections, the models answer :data:`WARM_UP_TEXTS`."""
    import rasa.core.run as rasa_run

    load = rasa_run.load_agent_on_start

    async def load_and_warm_up(*args: Any, **kwargs: Any) -> Any:
        agent = await load(*args, **kwargs)
        started = time.monotonic()
        try:
            count = await warm_up(agent)
        except Exception:  # noqa: BLE001 - a slow first message rather than no server
            logger.exception("warm-up failed; the first messages will be slower")
        else:
            from xiaoer.plugins.prediction_cache import cache_state

            logger.info(
                "models warmed up (%d messages, %.1f s; policy prediction cache %s)",
                count,
                time.monotonic() - started,
                cache_state(),
            )
        return agent

    rasa_run.load_agent_on_start = load_and_warm_up


def install(*, warm: bool = True) -> bool:
    """Every lever (unless ``XIAOER_SPEED_LEVERS=off``); True when installed."""
    if not levers_enabled():
        logger.info("speed levers off (%s=off): stock Rasa behaviour", LEVERS_ENV)
        return False
    install_compiled_validator()
    install_turn_stores()
    install_fast_model_load()
    from xiaoer.plugins.prediction_cache import install_prediction_cache

    install_prediction_cache()
    if warm:
        install_warm_up()
    return True


__all__ = [
    "LEVERS_ENV",
    "WARM_UP_TEXTS",
    "action_response_validator",
    "install_fast_model_load",
    "install",
    "levers_enabled",
    "publish_events",
    "turn_event_broker",
    "turn_tracker_store",
    "sqlite_engine",
    "validate_action_result",
    "warm_up",
]


# --- model load without a training step ------------------------------------------------------
def install_fast_model_load() -> None:
    """Rasa builds a TensorFlow model's variables before loading its weights by *training*
    it for one step (``model.fit`` on one example), which traces the whole training graph:
    most of a server's start time. One eager forward pass of the training loss builds the
    same variables; the weights are then loaded as Rasa does, and the prediction function
    is traced on Rasa's prediction example as before."""
    import tensorflow as tf
    from rasa.utils.tensorflow.constants import LEARNING_RATE, RUN_EAGERLY
    from rasa.utils.tensorflow.data_generator import RasaBatchDataGenerator
    from rasa.utils.tensorflow.models import RasaModel

    stock_load = RasaModel.load.__func__

    def load(
        cls: Any,
        model_file_name: str,
        model_data_example: Any,
        predict_data_example: Any = None,
        finetune_mode: bool = False,
        *args: Any,
        **kwargs: Any,
    ) -> Any:
        if finetune_mode:  # training goes on: Rasa's own way
            return stock_load(
                cls, model_file_name, model_data_example, predict_data_example, finetune_mode,
                *args, **kwargs,
            )  # fmt: skip
        model = cls(*args, **kwargs)
        config = kwargs.get("config", {})
        model.compile(
            optimizer=tf.keras.optimizers.Adam(config.get(LEARNING_RATE, 0.001)),
            run_eagerly=config.get(RUN_EAGERLY),
        )
        batch_in, _ = RasaBatchDataGenerator(model_data_example, batch_size=1)[0]
        model._training = True
        model.batch_loss(batch_in)  # eager: creates every variable training would
        model._training = None
        # the optimizer's slots are in the checkpoint too; a server never trains
        model.load_weights(model_file_name).expect_partial()
        if predict_data_example:
            model.run_inference(predict_data_example)
        return model

    RasaModel.load = classmethod(load)
