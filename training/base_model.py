"""Which base model a version or a run uses, and whether its directory can load.

With no `HANDOVER_BASE_MODEL` the default is the tiny model at `HANDOVER_MODELS_DIR/tiny`, which no
person has to build: the worker that first needs it builds it (`base_model_ready`, about a second,
safe when workers race), and `runstack` builds it ahead so a fresh `make run` starts warm. Every other
directory is checked from its files when a version is registered or deployed and when a run or a
worker loads it, so a wrong path is a 400 or a run failure that names the path and what is missing,
never a Hugging Face "Repo id must be in the form ..." from deep inside a worker.
"""

from pathlib import Path

from django.conf import settings

from core.errors import ApplicationError

from .engine.model_files import (
    ModelFilesError,
    adapter_dir_problems,
    build_once,
    looks_like_hub_id,
    model_dir_problems,
)

TINY_NAME = "tiny"


def tiny_default_path() -> Path:
    return Path(settings.HANDOVER_MODELS_DIR) / TINY_NAME


def default_base_model() -> str:
    """HANDOVER_BASE_MODEL when set, else the tiny model (built when first needed)."""
    return settings.HANDOVER_BASE_MODEL or str(tiny_default_path())


def base_model_resolve(base_model: str) -> str:
    """An existing path as an absolute path (one cache entry however it is spelled); a relative name is
    looked up in the working directory, then in HANDOVER_MODELS_DIR. Anything else comes back as given."""
    path = Path(base_model).expanduser()
    if not path.is_absolute() and not path.exists():
        candidate = Path(settings.HANDOVER_MODELS_DIR) / base_model
        path = candidate if candidate.exists() else path
    return str(path.resolve()) if path.exists() else base_model


def is_tiny_default(base_model: str) -> bool:
    """The tiny default's directory (by name or path), which is built when needed rather than checked."""
    path = Path(base_model).expanduser()
    if not path.is_absolute():
        path = Path(settings.HANDOVER_MODELS_DIR) / base_model
    return path.resolve() == tiny_default_path().resolve()


def _source(base_model: str) -> str:
    return " (set by HANDOVER_BASE_MODEL)" if base_model == settings.HANDOVER_BASE_MODEL else ""


def base_model_problem(base_model: str) -> str | None:
    """Why `base_model` cannot load, as one sentence naming the path; None when it looks loadable."""
    resolved = base_model_resolve(base_model)
    path = Path(resolved)
    if not path.is_absolute():  # nothing of that name exists
        if looks_like_hub_id(base_model):
            return (
                f"base model '{base_model}'{_source(base_model)} is not a local directory (neither "
                f"{Path.cwd() / base_model} nor {Path(settings.HANDOVER_MODELS_DIR) / base_model} exists), "
                "and looks like a Hugging Face Hub id: models cannot be downloaded here. Download it "
                f"where the Hub is reachable (`hf download {base_model} --local-dir DIR`), copy DIR to "
                "this machine and give that directory's path (or set HANDOVER_BASE_MODEL to it)."
            )
        path = Path(base_model).expanduser().absolute()
    problems = model_dir_problems(path)
    if not problems:
        return None
    return f"base model directory {path}{_source(base_model)} {'; '.join(problems)}."


def adapter_problem(adapter_path: str) -> str | None:
    path = Path(adapter_path).expanduser().absolute()
    problems = adapter_dir_problems(path)
    return f"adapter directory {path} {'; '.join(problems)}." if problems else None


def model_files_check(*, base_model: str, adapter_path: str = "") -> None:
    """400 naming the field, the path and what is missing (registration, deploy, a launch's base model).

    The tiny default passes unbuilt: the worker builds it when it first loads it.
    """
    problems = {}
    if not is_tiny_default(base_model):
        problem = base_model_problem(base_model)
        if problem:
            problems["base_model"] = problem
    if adapter_path:
        problem = adapter_problem(adapter_path)
        if problem:
            problems["adapter_path"] = problem
    if problems:
        field, message = next(iter(problems.items()))
        raise ApplicationError(
            f"{field}: {message}",
            code="model_files",
            details={name: [text] for name, text in problems.items()},
        )


def tiny_default_build() -> bool:
    """Build the tiny default unless it is there; True when this call built it."""

    def build(directory: Path) -> None:
        from .engine.tiny_model import build_tiny_model  # torch only where a model is built

        build_tiny_model(directory)

    return build_once(tiny_default_path(), build)


def base_model_ready(base_model: str) -> str:
    """The loadable directory of `base_model` (absolute), building the tiny default first if it is the
    one asked for; ModelFilesError with a person's reason otherwise. For the processes that load models."""
    if is_tiny_default(base_model):
        tiny_default_build()
    problem = base_model_problem(base_model)
    if problem:
        raise ModelFilesError(problem[0].upper() + problem[1:], path=base_model)
    return base_model_resolve(base_model)


def adapter_ready(adapter_path: str) -> str:
    problem = adapter_problem(adapter_path)
    if problem:
        raise ModelFilesError(problem[0].upper() + problem[1:], path=adapter_path)
    return adapter_path
