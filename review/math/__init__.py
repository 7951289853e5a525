"""The statistics of ratings, Django-free: rubric scoring and inter-rater agreement."""
