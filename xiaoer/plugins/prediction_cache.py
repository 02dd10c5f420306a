"""A cache of TED's predictions for identical featurised dialogue states.

Rasa's ensemble runs every policy on every prediction (2-3 per turn), TED included, even
when a rule or a memorised story decides; TED's TensorFlow forward pass is most of a turn's
policy time. For a model whose TED does not read the user's text (no end-to-end stories:
``TEXT`` not among its features), TED's input is a pure function of the tracker's
*prediction states* (the last ``max_history`` turns: intent, entities, slots, previous
action, active loop, as :meth:`TrackerFeaturizer.prediction_states` gives them), and its
output a pure function of that input: the same states give the same probabilities. This
cache keeps them per loaded policy (a new model is a new policy object, so a reloaded model
never sees an old entry), bounded (least recently used out).

Exactly equivalent, so it is one of the speed levers (``XIAOER_SPEED_LEVERS=off`` or
``XIAOER_POLICY_CACHE=off`` turns it off); tests/unit/test_prediction_cache.py checks that
Rasa's test stories and the blind conversations choose the same actions, with the same
policy and confidence, with and without it. Not cached: end-to-end TED models (their input
includes the text), and predictions that carry events.

Skipping TED when the RulePolicy or MemoizationPolicy is certain was not done: it is not
exactly equivalent under Rasa 3.6's ensemble (``DefaultPolicyPredictionEnsemble``), which
prefers an end-to-end prediction and a "no user" prediction before comparing confidences,
breaks equal confidences by priority only, and keeps the losing predictions in the
diagnostics the processor records (``policy`` and confidences in ``action`` events of
``rasa test`` and interactive learning).
"""

from __future__ import annotations

import copy
import logging
import os
from collections import OrderedDict
from typing import Any

logger = logging.getLogger("xiaoer.plugins.speed")

CACHE_ENV = "XIAOER_POLICY_CACHE"
MAX_ENTRIES = 4096
_CACHE_ATTR = "_xiaoer_prediction_cache"
_stock: Any = None  # Rasa's own TEDPolicy.predict_action_probabilities
# Rasa's graph nodes keep the function they found when the model was loaded: the wrapper
# stays in place once installed, and this switch turns the cache off and on (tests)
_enabled = False
# hits and misses of this process (bench and tests read them)
stats = {"hits": 0, "misses": 0}


def cache_enabled() -> bool:
    return os.environ.get(CACHE_ENV, "on").strip().lower() not in ("off", "0", "false", "no")


def cache_state() -> str:
    """ "on" when TED's predictions go through the cache in this process, else "off"."""
    from rasa.core.policies.ted_policy import TEDPolicy

    on = getattr(TEDPolicy.predict_action_probabilities, "_xiaoer_cached", False)
    return "on" if on and _enabled else "off"


def _freeze(value: Any) -> Any:
    if isinstance(value, dict):
        return tuple(sorted((k, _freeze(v)) for k, v in value.items()))
    if isinstance(value, list | tuple):
        return tuple(_freeze(v) for v in value)
    if isinstance(value, set | frozenset):
        return tuple(sorted(_freeze(v) for v in value))
    return value


def state_key(policy: Any, tracker: Any, domain: Any, rule_only_data: Any) -> Any:
    """The featurised states TED would read for ``tracker`` (as a hashable key), or None
    when the prediction cannot be cached (no model, an end-to-end model)."""
    from rasa.core.policies.policy import SupportedData
    from rasa.shared.nlu.constants import TEXT

    if getattr(policy, "model", None) is None or getattr(policy, "only_e2e", False):
        return None
    if TEXT in getattr(policy, "fake_features", {}):
        return None
    ml_only = policy.supported_data() == SupportedData.ML_DATA
    states = policy.featurizer.prediction_states(
        [tracker],
        domain,
        use_text_for_last_user_input=False,
        ignore_rule_only_turns=ml_only,
        rule_only_data=rule_only_data,
        ignore_action_unlikely_intent=ml_only,
    )
    return (len(domain.action_names_or_texts), _freeze(states))


def _copy(prediction: Any) -> Any:
    fresh = copy.copy(prediction)
    fresh.probabilities = list(prediction.probabilities)
    return fresh


def install_prediction_cache() -> bool:
    """Wrap ``TEDPolicy.predict_action_probabilities`` with the cache (once)."""
    if not cache_enabled():
        logger.info("policy prediction cache off (%s=off)", CACHE_ENV)
        return False
    from rasa.core.policies.ted_policy import TEDPolicy

    global _stock, _enabled
    _enabled = True
    if getattr(TEDPolicy.predict_action_probabilities, "_xiaoer_cached", False):
        return True
    stock = _stock = TEDPolicy.predict_action_probabilities

    def predict_action_probabilities(
        self: Any,
        tracker: Any,
        domain: Any,
        rule_only_data: dict[str, Any] | None = None,
        precomputations: Any = None,
        **kwargs: Any,
    ) -> Any:
        key = state_key(self, tracker, domain, rule_only_data) if _enabled else None
        if key is None:
            return stock(self, tracker, domain, rule_only_data, precomputations, **kwargs)
        cache: OrderedDict[Any, Any] = self.__dict__.setdefault(_CACHE_ATTR, OrderedDict())
        hit = cache.get(key)
        if hit is not None:
            cache.move_to_end(key)
            stats["hits"] += 1
            return _copy(hit)
        stats["misses"] += 1
        prediction = stock(self, tracker, domain, rule_only_data, precomputations, **kwargs)
        if not prediction.events and not prediction.optional_events:
            cache[key] = _copy(prediction)
            if len(cache) > MAX_ENTRIES:
                cache.popitem(last=False)
        return prediction

    predict_action_probabilities._xiaoer_cached = True  # type: ignore[attr-defined]
    TEDPolicy.predict_action_probabilities = predict_action_probabilities
    return True


def uninstall_prediction_cache() -> None:
    """Rasa's own method again: for models loaded from now on, and (the wrapper passing
    every call through) for those already loaded. Tests compare both."""
    from rasa.core.policies.ted_policy import TEDPolicy

    global _enabled
    _enabled = False
    if getattr(TEDPolicy.predict_action_probabilities, "_xiaoer_cached", False):
        TEDPolicy.predict_action_probabilities = _stock
