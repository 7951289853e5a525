"""Per-person quality: what each person did in a window and how well it held up at the next tier."""
