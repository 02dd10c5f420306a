"""Several questions in one message: split into requests, each answered in order.

Customers ask "这件多少钱，包邮吗" or write a 400-character message with an order number, a
complaint, a size question and an invoice question. One intent per message answers only
one of them (or none: the whole message falls back). Before the message reaches the
dialogue, ``split_requests`` cuts it into clauses (sentence punctuation, spaces, 还有 /
另外 / 顺便...), parses each clause with the assistant's own NLU and groups them:

* a clause whose intent is confident (``MIN_CONFIDENCE``) and answerable starts a new
  request, or continues the request before it when it has the same intent (a request
  asked again later is answered once);
* a clause holding a value but no request of its own ("订单6938...", "黑色M码") goes with
  the request AFTER it, so an order number is never split away from its verb;
* small talk and unsure clauses (亲, 在吗, 谢谢, a long complaint's filler) are left out:
  a long message is reduced to its requests.

With two or more requests, ``handle_message`` hands them to the assistant as consecutive
user messages of the same conversation, in order, through the same output channel, so
one reply carries every answer. Nothing is split while a form waits for an answer (an
address, an order number) or the last reply asked a question with buttons, while a human
has the conversation, when the customer
clicked a button, or when one of the clauses asks for a human or holds one of the
merchant's handoff keywords (投诉, 12315...). Each request is parsed once more as a whole:
two neighbours with the same intent become one, a request that reads as a fallback is
left out. At most ``MAX_REQUESTS`` requests are answered.

Both chat channels (REST and Douyin) call ``handle_message`` instead of the assistant's
``on_new_message``.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from rasa.core.channels.channel import UserMessage
from rasa.shared.core.events import BotUttered, UserUttered

from xiaoer.text.normalize import normalize
from xiaoer.text.parsing import find_order_ids

logger = logging.getLogger(__name__)

ParseFn = Callable[[str], Awaitable[dict[str, Any]]]

MIN_CONFIDENCE = 0.6
MAX_REQUESTS = 6
MAX_CLAUSES = 48  # a 400-character message has ~30 clauses; each parse takes ~10 ms
# Intents that never make a request of their own (small talk, bare values).
NOT_A_REQUEST = frozenset(
    {
        "nlu_fallback",
        "greet",
        "goodbye",
        "thank",
        "affirm",
        "deny",
        "bot_challenge",
        "out_of_scope",
        "inform_order_id",
        "provide_contact",
    }
)
# Clauses holding these values go with the request after them.
VALUE_ENTITIES = frozenset(
    {"order_id", "case_id", "product", "color", "size", "height_cm", "weight_kg", "link_no"}
)
# What is left of a clause that only names values ("T恤", "165", "55kg", "黑色M"): digits,
# units and punctuation; such a clause is no request, whatever intent the NLU guessed.
_VALUE_ONLY_REST = re.compile(r"[\d\s.,，。!！?？~～:：]|cm|kg|公斤|厘米|米|斤|码|号|的|亲", re.I)
# A message with one of these is never split (a human takes over the whole message).
NEVER_SPLIT = frozenset({"request_human"})
# Anger about an order or an item is the tone of that request, not a request of its own:
# "收到的鞋子开胶了，质量太差" is one quality issue (its complaint clause joins it).
GRIEVANCES = frozenset(
    {
        "quality_issue",
        "return_goods",
        "refund",
        "exchange",
        "urge_shipment",
        "order_status",
        "cancel_order",
        "change_address",
    }
)

_BOUNDARY = re.compile(r"[。！？!?；;，,\n~～…]+|\s+")
_CONNECTIVE = re.compile(r"(?:还有|另外|顺便问下|顺便问一下|顺便|再问下|再问一下|以及|对了)")


@dataclass(frozen=True)
class Clause:
    start: int
    end: int
    text: str


def clauses(text: str) -> list[Clause]:
    """The message cut at sentence punctuation, spaces and connectives; never inside an
    order number ("6938 2710 4512 3400 001" stays whole)."""
    norm = normalize(text)
    protected = [norm.span(s, e) for s, e, _ in find_order_ids(norm.text)]
    cuts: list[tuple[int, int]] = []  # (start, end) of separators in the original text
    for m in _BOUNDARY.finditer(text):
        if not any(s <= m.start() < e for s, e in protected):
            cuts.append((m.start(), m.end()))
    for m in _CONNECTIVE.finditer(text):
        if not any(s <= m.start() < e for s, e in protected):
            cuts.append((m.start(), m.start()))
    cuts.sort()
    out: list[Clause] = []
    position = 0
    for start, end in cuts:
        if start > position and text[position:start].strip():
            out.append(Clause(position, start, text[position:start].strip()))
        position = max(position, end)
    if text[position:].strip():
        out.append(Clause(position, len(text), text[position:].strip()))
    return out


def _only_values(text: str, parsed: dict[str, Any]) -> bool:
    """Whether the clause names only values (a product, a colour, a size, measures)."""
    rest = list(text)
    found = False
    for entity in parsed.get("entities") or []:
        start, end = entity.get("start"), entity.get("end")
        if (
            isinstance(start, int)
            and isinstance(end, int)
            and entity.get("entity") in VALUE_ENTITIES
        ):
            found = True
            rest[start:end] = [" "] * (end - start)
    left = "".join(rest)
    if not found and not re.fullmatch(r"\d{2,3}", text.strip()):
        return False
    return not _VALUE_ONLY_REST.sub("", left).strip()


async def split_requests(text: str, parse: ParseFn) -> list[str]:
    """The requests in ``text``, in order (``[text]`` when there is only one)."""
    if text.lstrip().startswith("/"):
        return [text]  # a button payload ("/choose{...}"), not words
    parts = clauses(text)
    if len(parts) < 2 or len(parts) > MAX_CLAUSES:
        return [text]
    requests: list[list[str]] = []  # the clauses of each request
    intents: list[str] = []
    carried: list[str] = []  # clauses with a value (order number, product...) but no request
    for clause in parts:
        parsed = await parse(clause.text)
        intent = (parsed.get("intent") or {}).get("name")
        confidence = (parsed.get("intent") or {}).get("confidence") or 0.0
        if intent in NEVER_SPLIT or (parsed.get("intent") or {}).get("handoff_keyword"):
            return [text]  # a human takes the whole message (request or handoff keyword)
        # an intent the entity rule inferred from a number is no request of its own:
        # "订单6938...不要了，帮我取消" is one cancellation, not an order question and one
        ruled = bool((parsed.get("intent") or {}).get("entity_rule"))
        if _only_values(clause.text, parsed):
            carried.append(clause.text)  # "T恤", "165": with the next request
            continue
        if intent not in NOT_A_REQUEST and confidence >= MIN_CONFIDENCE and not ruled:
            if intents and intent == intents[-1]:  # the same request goes on
                requests[-1].extend([*carried, clause.text])
            elif intent not in intents:
                requests.append([*carried, clause.text])
                intents.append(str(intent))
            else:  # asked again later: answered once, its values go on
                continue
            carried = []
        elif {e.get("entity") for e in parsed.get("entities") or []} & VALUE_ENTITIES:
            carried.append(clause.text)  # "订单6938...", "黑色M码": with the next request
        # anything else (亲, 在吗, 谢谢, an unsure clause) is left out of a split message
    requests[-1:] = [requests[-1] + carried] if requests else []
    if "complain" in intents and GRIEVANCES & set(intents):
        tone = requests.pop(intents.index("complain"))
        intents.remove("complain")
        first = next(i for i, name in enumerate(intents) if name in GRIEVANCES)
        requests[first] = requests[first] + tone
    if len(requests) < 2:
        return [text]
    # each request as the assistant will read it: the same request twice in a row is one,
    # a request that reads as nothing confident is left out (no "didn't understand")
    final: list[tuple[str, str]] = []
    for part in (" ".join(r) for r in requests[:MAX_REQUESTS]):
        intent = ((await parse(part)).get("intent") or {}).get("name") or "nlu_fallback"
        if final and final[-1][1] == intent:
            final[-1] = (f"{final[-1][0]} {part}", intent)
        elif intent != "nlu_fallback":
            final.append((part, intent))
    return [part for part, _ in final] if len(final) >= 2 else [text]


async def _may_split(agent: Any, message: UserMessage) -> bool:
    metadata = message.metadata or {}
    if metadata.get("chosen_option") or metadata.get("attachments") or metadata.get("lead_card"):
        return False
    try:
        tracker = await agent.tracker_store.retrieve(message.sender_id)
    except Exception:  # noqa: BLE001 - an unreadable tracker: answer the message whole
        logger.warning("multi-request split skipped: tracker unavailable", exc_info=True)
        return False
    if tracker is None:
        return True
    if tracker.active_loop_name or tracker.is_paused():
        return False
    # the last reply asked a question with buttons (是 / 否, 确认取消...): it awaits an answer
    for event in reversed(tracker.events):
        if isinstance(event, BotUttered):
            return not (event.data or {}).get("buttons")
        if isinstance(event, UserUttered):
            break
    return True


async def handle_message(
    message: UserMessage,
    on_new_message: Callable[[UserMessage], Awaitable[Any]],
    agent: Any | None,
) -> None:
    """Hand ``message`` to the assistant, as several consecutive messages when it holds
    several requests (see the module docstring)."""
    # the channel, for keyword rules limited to one (xiaoer/nlu/keywords.py); set here,
    # after each channel has cleaned its clients' metadata, so no client can choose it
    message.metadata = {**(message.metadata or {})}
    message.metadata.setdefault("channel", message.input_channel)
    text = message.text or ""
    parts = [text]
    if agent is not None and len(clauses(text)) >= 2 and await _may_split(agent, message):
        parts = await split_requests(text, agent.parse_message)
    if len(parts) < 2:
        await on_new_message(message)
        return
    logger.info("message split into %d requests (conversation %s)", len(parts), message.sender_id)
    for index, part in enumerate(parts, start=1):
        metadata = {**(message.metadata or {}), "split": {"part": index, "of": len(parts)}}
        await on_new_message(
            UserMessage(
                part,
                message.output_channel,
                message.sender_id,
                input_channel=message.input_channel,
                message_id=f"{message.message_id}-{index}" if message.message_id else None,
                metadata=metadata,
            )
        )
