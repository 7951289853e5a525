"""Rubric scoring: rubrics, responses to rate, the rate queue, ratings, agreement and their pages."""
