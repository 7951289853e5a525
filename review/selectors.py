"""Reads of the review layer that the layers below ask for through core.hooks."""

from review.models import Decision, Rating, ReviewDecision


def export_provenance(item_ids: list[int]) -> dict[int, dict]:
    """For an export with metadata: per item, who approved it at each tier and how it was rated."""
    reviewers, scores = _reviewers_per_tier(item_ids), _rating_scores(item_ids)
    return {pk: {"reviewers": reviewers.get(pk, {}), "scores": scores.get(pk)} for pk in item_ids}


def _reviewers_per_tier(item_ids: list[int]) -> dict[int, dict[str, list[str]]]:
    """Who approved (or edited and approved) each item at each tier since it was last sent back."""
    result: dict[int, dict[str, list[str]]] = {}
    decisions = (
        ReviewDecision.objects.filter(item_id__in=item_ids)
        .order_by("item_id", "created_at", "pk")
        .values_list("item_id", "stage", "decision", "reviewer__username")
    )
    for item_id, stage, decision, reviewer in decisions:
        tiers = result.setdefault(item_id, {})
        if decision == Decision.REJECT:
            tiers.clear()  # the answer was redone; earlier approvals are not of the exported text
        elif reviewer not in tiers.setdefault(stage, []):
            tiers[stage].append(reviewer)
    return result


def _rating_scores(item_ids: list[int]) -> dict[int, dict]:
    """Rubric ratings of responses made from each item: count, mean weighted score, per-dimension means."""
    sums: dict[int, dict] = {}
    ratings = Rating.objects.filter(response__item_id__in=item_ids).values_list(
        "response__item_id", "weighted_score", "scores"
    )
    for item_id, weighted, dimension_scores in ratings:
        acc = sums.setdefault(item_id, {"n": 0, "weighted": 0.0, "dimensions": {}})
        acc["n"] += 1
        acc["weighted"] += weighted
        for key, value in dimension_scores.items():
            acc["dimensions"].setdefault(key, []).append(value)
    return {
        item_id: {
            "n": acc["n"],
            "weighted_mean": acc["weighted"] / acc["n"],
            "dimensions": {k: sum(v) / len(v) for k, v in acc["dimensions"].items()},
        }
        for item_id, acc in sums.items()
    }
