"""Review tiers and decisions, the rubric and ratings, agreement statistics, spot checks."""
