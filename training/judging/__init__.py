"""Model judges: a model version scoring review responses on the rubric (and picking in compare pairs)
from its next-token probabilities, reported against people as one more rater, optionally pre-scoring."""
