"""Preferences: pairs and rank sets of responses, judged side by side or ranked; leaderboard and exports."""
