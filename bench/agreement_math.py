"""Time `dimension_agreement` with its bootstrap on 100,000 units x 3 raters against bare krippendorff.alpha.

No services needed: .venv/bin/python bench/agreement_math.py
"""

import statistics
import sys
import time
from pathlib import Path

import krippendorff
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from review.math.agreement import dimension_agreement, ratings_pivot  # noqa: E402

UNITS, RATERS, REPEATS = 100_000, 3, 5
DOMAIN = [1, 2, 3, 4, 5]
LEVEL = "ordinal"


def best_and_median(call) -> tuple[float, float, object]:
    times, result = [], None
    for _ in range(REPEATS):
        start = time.perf_counter()
        result = call()
        times.append(time.perf_counter() - start)
    return min(times), statistics.median(times), result


def main() -> None:
    rng = np.random.default_rng(0)
    truth = rng.integers(1, 6, size=UNITS)
    matrix = np.clip(truth[None, :] + rng.integers(-1, 2, size=(RATERS, UNITS)), 1, 5).astype(float)
    ratings = [(unit, rater, int(matrix[rater, unit])) for rater in range(RATERS) for unit in range(UNITS)]

    bare, bare_median, alpha = best_and_median(
        lambda: krippendorff.alpha(reliability_data=matrix, value_domain=DOMAIN, level_of_measurement=LEVEL)
    )
    print(f"{UNITS:,} units x {RATERS} raters, ordinal 1..5, best (median) of {REPEATS}")
    print(f"bare krippendorff.alpha:                 {bare:7.3f} s ({bare_median:.3f})  alpha={alpha:.6f}")

    pivot, pivot_median, pivoted = best_and_median(lambda: ratings_pivot(ratings))
    print(f"ratings_pivot (300,000 triples):         {pivot:7.3f} s ({pivot_median:.3f})")

    for samples in (0, 200, 1000, 10_000):
        fast, fast_median, result = best_and_median(
            lambda b=samples: dimension_agreement(pivoted, LEVEL, value_domain=DOMAIN, bootstrap=b)
        )
        interval = f"[{result.alpha_ci_low:.4f}, {result.alpha_ci_high:.4f}]" if samples else "-"
        print(
            f"dimension_agreement, matrix, B={samples:>6,}: {fast:7.3f} s ({fast_median:.3f})"
            f"  ratio {fast / bare:5.1f}x  CI {interval}"
        )

    full, full_median, result = best_and_median(
        lambda: dimension_agreement(ratings, "ordinal", value_domain=DOMAIN, bootstrap=1000)
    )
    assert abs(result.alpha - alpha) < 1e-12
    print(
        f"dimension_agreement, long format, B=1,000 (pivot included): {full:.3f} s ({full_median:.3f})"
        f"  ratio {full / bare:.1f}x vs bare alpha"
    )


if __name__ == "__main__":
    main()
