"""Gold and attention checks: tasks with a known answer mixed silently into the queues, and what follows."""
