"""A shared form-validation base: counts failures per slot and stops asking after MAX."""

from __future__ import annotations

import abc
from typing import Any

from rasa_sdk import Tracker
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.forms import FormValidationAction
from rasa_sdk.types import DomainDict

MAX_FAILURES = 2


class XiaoerFormValidationAction(FormValidationAction, abc.ABC):
    """After MAX_FAILURES bad answers for a slot the form stops asking for it.

    The failure count lives in the slot ``<slot>_failures``; the form's submit action
    sees the slot still empty and the count at MAX_FAILURES and offers a human.
    """

    @abc.abstractmethod
    def name(self) -> str:
        """The form's validation action name: validate_<form name>."""

    @staticmethod
    def failures(tracker: Tracker, slot: str) -> int:
        return int(tracker.get_slot(f"{slot}_failures") or 0)

    def fail(self, tracker: Tracker, slot: str) -> dict[str, Any]:
        return {slot: None, f"{slot}_failures": float(self.failures(tracker, slot) + 1)}

    async def required_slots(
        self,
        domain_slots: list[str],
        dispatcher: CollectingDispatcher,
        tracker: Tracker,
        domain: DomainDict,
    ) -> list[str]:
        return [s for s in domain_slots if self.failures(tracker, s) < MAX_FAILURES]
