"""A seeded simulation of the reply-variant bandit (tests/unit/test_learning_variants.py
and bench/bandit.py): variants with fixed success probabilities, the same choice function
the action server uses (:func:`xiaoer.learning.variants.thompson_choice`), outcomes
known at once.

* **Exposures to convergence**: the number of exposures by which the best variant's
  share of the last :data:`WINDOW` exposures has reached :data:`SHARE` and stays there
  in every later window.
* **Regret**: the expected successes lost against always showing the best variant,
  ``sum(p_best - p_chosen)``.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from xiaoer.learning.variants import WARMUP, ArmStats, thompson_choice

WINDOW = 100
SHARE = 0.9


@dataclass
class SimResult:
    choices: list[str]
    probabilities: dict[str, float]
    added_at: int | None = None
    stats: dict[str, ArmStats] = field(default_factory=dict)

    def best(self, start: int = 0, end: int | None = None) -> str:
        live = set(self.choices[start:end])
        return max(live, key=lambda k: self.probabilities[k])

    def convergence(self, start: int = 0, end: int | None = None) -> int | None:
        """Exposures (from ``start``) until the best variant's share of every later window
        stays >= SHARE; None if it never does."""
        seq = self.choices[start:end]
        best = self.best(start, end)
        if len(seq) < WINDOW:
            return None
        hits = [int(c == best) for c in seq]
        window = sum(hits[:WINDOW])
        ok_from: int | None = 0 if window >= SHARE * WINDOW else None
        for i in range(WINDOW, len(seq)):
            window += hits[i] - hits[i - WINDOW]
            if window >= SHARE * WINDOW:
                if ok_from is None:
                    ok_from = i - WINDOW + 1
            else:
                ok_from = None
        return None if ok_from is None else ok_from + WINDOW

    def regret(self, start: int = 0, end: int | None = None) -> float:
        seq = self.choices[start:end]
        pool = {c for c in self.choices[: end or len(self.choices)]}
        top = max(self.probabilities[k] for k in pool)
        return sum(top - self.probabilities[c] for c in seq)

    def exposures(self, key: str, start: int = 0, end: int | None = None) -> int:
        return sum(1 for c in self.choices[start:end] if c == key)


def simulate(
    probabilities: dict[str, float],
    exposures: int,
    seed: int,
    *,
    add: tuple[int, str, float] | None = None,
    warmup: int = WARMUP,
) -> SimResult:
    """Run the bandit for ``exposures`` rounds; ``add=(at, key, p)`` adds a variant at
    exposure ``at``."""
    rng = random.Random(seed)
    outcome_rng = random.Random(seed + 1)
    probs = dict(probabilities)
    live = list(probabilities)
    stats = {k: ArmStats() for k in live}
    result = SimResult([], probs)
    for t in range(exposures):
        if add is not None and t == add[0]:
            live.append(add[1])
            probs[add[1]] = add[2]
            stats[add[1]] = ArmStats()
            result.added_at = t
        key = thompson_choice(live, stats, rng, warmup=warmup)
        s = stats[key]
        s.exposures += 1
        if outcome_rng.random() < probs[key]:
            s.successes += 1
        else:
            s.failures += 1
        result.choices.append(key)
    result.stats = stats
    return result
