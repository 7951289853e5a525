"""Model versions, dataset snapshots, training runs, evaluation and inference (drafts, ask)."""
