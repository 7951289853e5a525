"""Review decisions at the expert, domain and spot-check tiers, and their API."""
