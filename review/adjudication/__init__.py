"""Adjudication: disagreements of reviewers and of raters, decided once by an admin or domain reviewer."""
