"""Django-free model core: a tiny offline model, device choice, and batched draft generation."""
