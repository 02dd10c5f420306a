"""The reply-variant bandit in simulation: exposures to convergence and regret.

Variants with fixed success probabilities, the choice function the action server uses
(xiaoer/learning/variants.py: uniform warm-up of 20 exposures per variant, then Thompson
sampling), seeded. Prints, over the seeds, the exposures until the better variant is shown
in >= 90 % of every later window of 100 (xiaoer/learning/simulation.py), the regret against
always showing the best (expected successes lost), the same for a uniform random choice
(what Rasa does with response variations), and, after a third variant is added to the
converged bandit, its exposures in the next 200 and the new convergence.

    .venv/bin/python bench/bandit.py [--seeds 50] [--exposures 3000] [--rates 0.25 0.40]
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from xiaoer.learning.simulation import simulate  # noqa: E402


def summary(values: list[float]) -> str:
    values = sorted(values)
    p90 = values[min(len(values) - 1, int(0.9 * len(values)))]
    return f"median {statistics.median(values):.0f}, p90 {p90:.0f}, max {values[-1]:.0f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=50)
    parser.add_argument("--exposures", type=int, default=3000)
    parser.add_argument("--rates", type=float, nargs=2, default=[0.25, 0.40])
    parser.add_argument("--new-rates", type=float, nargs="*", default=[0.55, 0.10])
    args = parser.parse_args(argv)
    worse, better = sorted(args.rates)
    n = args.exposures
    conv, regret, never = [], [], 0
    for seed in range(args.seeds):
        r = simulate({"a": worse, "b": better}, n, seed)
        c = r.convergence()
        if c is None:
            never += 1
        else:
            conv.append(c)
        regret.append(r.regret())
    uniform_regret = (better - worse) / 2 * n
    print(f"two variants, success rates {worse:.2f} / {better:.2f}, {n} exposures, "
          f"{args.seeds} seeds")  # fmt: skip
    print(f"  exposures to convergence (>= 90 % best in every later window of 100): "
          f"{summary(conv)}; never converged: {never}")  # fmt: skip
    print(f"  regret vs always-best (successes lost): {summary(regret)}, "
          f"mean {statistics.mean(regret):.1f}; uniform random choice: {uniform_regret:.0f}")  # fmt: skip
    for new in args.new_rates:
        share, after, conv2 = [], [], []
        for seed in range(args.seeds):
            r = simulate({"a": worse, "b": better}, 2 * n, seed, add=(n, "c", new))
            share.append(r.exposures("c", n, n + 200))
            after.append(r.exposures("c", 2 * n - 1000))
            c = r.convergence(n)
            if c is not None:
                conv2.append(c)
        print(f"  a new variant (rate {new:.2f}) added after {n}: exposures in the next 200: "
              f"{summary(share)}; in the last 1000: {summary(after)}; "
              f"re-convergence: {summary(conv2) if conv2 else 'never'}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
