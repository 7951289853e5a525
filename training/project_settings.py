"""What the training layer checks when a project's settings change (annotation's project_update asks)."""

from pathlib import Path

from core.errors import ApplicationError

from .runs.launch import hyperparameters_validate


def project_settings_check(changes: dict) -> None:
    if "training_hyperparameters" in changes:
        hyperparameters_validate(method="lora", values=changes["training_hyperparameters"])
    if changes.get("semantic_cache_model"):
        problem = model_directory_problem(changes["semantic_cache_model"])
        if problem:
            raise ApplicationError(
                f"semantic_cache_model: {problem}", details={"semantic_cache_model": [problem]}
            )


def model_directory_problem(path: str) -> str | None:
    """Why `path` cannot be a model directory on this machine, or None when it looks like one."""
    directory = Path(path)
    if not directory.is_dir():
        return f"{path} is not a directory on this machine."
    if not (directory / "config.json").exists():
        return f"{path} has no config.json: not a Hugging Face model directory."
    return None
