"""A training run, one module per stage, read in this order:

1. `launch`: a queued run over a fresh snapshot (by hand, or by the threshold trigger), sent to a gpu worker.
2. `execute`: the worker claims it and trains, with progress, heartbeat, cancel and resume.
3. `evaluate`: the candidate and the baseline answer the held-out prompts; metrics and the gate.
4. `human_eval`: the blind rubric round, and its conclusion (promote, or wait for the admin).
5. `watchdog`: a run whose worker died is re-queued or failed, never left running.

`status` holds what every stage uses to change a run's state (one locked, audited write). This package
imports none of its modules: import the stage you need (`from training.runs.launch import ...`), so that
the registry can use `status` without pulling in the pipeline above it.
"""
