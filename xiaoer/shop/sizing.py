"""Size advice from a product's size chart and the customer's body measures."""

from __future__ import annotations

from dataclasses import dataclass

from xiaoer.shop.models import SizeChart


@dataclass(frozen=True)
class SizeAdvice:
    size: str | None  # None: outside the chart
    between_sizes: bool = False


def advise(chart: SizeChart, height_cm: float, weight_kg: float | None = None) -> SizeAdvice:
    """The size whose ranges contain the measures. Between two sizes (on a boundary, or
    height and weight pointing to different sizes) the larger one is advised."""
    heights = [i for i, r in enumerate(chart.rows) if r.height_min <= height_cm <= r.height_max]
    weights: list[int] = []
    if weight_kg is not None:
        weights = [
            i
            for i, r in enumerate(chart.rows)
            if r.weight_min is not None
            and r.weight_max is not None
            and r.weight_min <= weight_kg <= r.weight_max
        ]
    candidates = heights + weights
    if not candidates:
        return SizeAdvice(None)
    between = len(set(candidates)) > 1
    return SizeAdvice(chart.rows[max(candidates)].size, between_sizes=between)
