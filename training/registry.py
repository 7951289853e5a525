"""The model registry: versions registered, deployed (one per project), rolled back; how each generates.

Locking: a deploy locks the project row (FOR NO KEY UPDATE) so two deploys of one project serialise;
the partial unique constraint `one_deployed_version_per_project` is the last line of defence. A deploy
of a run's candidate ends that run as promoted (runs.status), in the same transaction.
"""

from dataclasses import asdict, dataclass, fields

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from annotation.models import Project
from annotation.permissions import check_project_admin
from annotation.services import DRAFTS_GENERATE, audit_record, stored_user
from core.errors import ApplicationError, Conflict, NotFound
from core.hooks import task_send_on_commit

from . import backends
from .base_model import default_base_model, model_files_check
from .model_cache import ModelSpec
from .models import Backend, ModelVersion, ModelVersionStatus
from .runs.status import runs_mark_promoted
from .selectors import model_version_deployed
from .versions import model_version_write


@dataclass(frozen=True)
class GenerationSettings:
    """How a version generates; stored as ModelVersion.generation (unknown keys are refused)."""

    max_new_tokens: int = 128
    temperature: float = 0.0  # 0 = greedy
    top_p: float = 1.0
    batch_size: int = 16
    seed: int | None = None
    system_prompt: str = ""

    def draft_kwargs(self, *, num_candidates: int = 1) -> dict:
        """Arguments for Drafter.draft. Several candidates need sampling: a greedy version samples its
        extra candidates at CANDIDATE_TEMPERATURE."""
        temperature = self.temperature
        if num_candidates > 1 and temperature <= 0:
            temperature = CANDIDATE_TEMPERATURE
        return {
            "max_new_tokens": self.max_new_tokens,
            "temperature": temperature,
            "top_p": self.top_p,
            "num_candidates": num_candidates,
            "batch_size": self.batch_size,
            "seed": self.seed,
        }


CANDIDATE_TEMPERATURE = 0.7


def generation_settings(raw: dict | None) -> GenerationSettings:
    """Validate a generation dict, filling defaults; errors name the key (400)."""
    raw = dict(raw or {})
    known = {f.name for f in fields(GenerationSettings)}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ApplicationError(
            f"generation: unknown setting(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}.",
            details={"generation": unknown},
        )
    try:
        gen = GenerationSettings(**raw)
        checks = {
            "max_new_tokens": 1 <= int(gen.max_new_tokens) <= 4096,
            "temperature": 0.0 <= float(gen.temperature) <= 5.0,
            "top_p": 0.0 < float(gen.top_p) <= 1.0,
            "batch_size": 1 <= int(gen.batch_size) <= 256,
        }
    except (TypeError, ValueError) as exc:
        raise ApplicationError(f"generation: {exc}", details={"generation": [str(exc)]}) from None
    bad = [name for name, ok in checks.items() if not ok]
    if bad:
        raise ApplicationError(
            f"generation.{bad[0]}: out of range ({getattr(gen, bad[0])!r}).", details={"generation": bad}
        )
    return gen


def model_spec(version: ModelVersion, *, in_process: bool = False) -> ModelSpec:
    """What generating with `version` needs; `in_process`: from its local files even when it is served
    (evaluation does that when the candidate cannot be served yet, see runs.evaluate)."""
    gen = generation_settings(version.generation)
    return ModelSpec(
        version_id=version.pk,
        base_model=version.base_model,
        adapter_path=version.adapter_path,
        prompt_template=version.prompt_template,
        system_prompt=gen.system_prompt or None,
        server=None if in_process else backends.server_config(version),
    )


def model_version_register(
    *,
    project: Project,
    actor: AbstractBaseUser | None,
    name: str,
    base_model: str = "",
    adapter_path: str = "",
    prompt_template: str = "{input}",
    generation: dict | None = None,
    backend: str = Backend.LOCAL,
    server_url: str = "",
    server_model: str = "",
    server_api_key: str = "",
    server_options: dict | None = None,
    check_server: bool = True,
) -> ModelVersion:
    """A new candidate version (project admins; actor None is the system, e.g. training or seed_demo).

    In-process (`local`): no base model means the default one; the directories must look loadable (400
    naming the path and what is missing), except the tiny default, which the worker builds when it first
    needs it. On a server (`openai`): the server must answer `/v1/models` listing the model (a LoRA
    version's adapter is loaded at deploy, so only the server is asked) and return logprobs, else 400
    with what it said; a base model is optional (the local copy of the weights to train from) and
    checked when given; `adapter_path` is the adapter as the server reads it. `check_server=False`
    skips asking the server (a run's candidate, registered under the run's lock; deploy checks it)."""
    if actor is not None:
        check_project_admin(user=actor, project=project)
    gen = generation_settings(generation)
    if "{input}" not in prompt_template:
        raise ApplicationError("prompt_template: must contain {input}.", details={"prompt_template": []})
    served = backends.backend_fields(
        backend=backend,
        server_url=server_url,
        server_model=server_model,
        server_api_key=server_api_key,
        server_options=server_options,
    )
    if served.backend == Backend.LOCAL:
        base_model = base_model or default_base_model()
        model_files_check(base_model=base_model, adapter_path=adapter_path)
    elif base_model:
        model_files_check(base_model=base_model)
    version = ModelVersion(
        project=project,
        name=name,
        base_model=base_model,
        adapter_path=adapter_path,
        prompt_template=prompt_template,
        generation=asdict(gen),
        created_by=stored_user(actor),
        **asdict(served),
    )
    if check_server and served.backend == Backend.OPENAI:
        # Before any transaction: the server may take seconds to answer, and nothing is locked yet.
        backends.server_check(backends.server_config(version), adapter=bool(adapter_path))
    with transaction.atomic():
        version.save()
        audit_record(
            actor=actor,
            action="model_version.register",
            target=version,
            project=project,
            to_state=version.status,
            data={
                "base_model": version.base_model,
                "adapter_path": adapter_path,
                "backend": version.backend,
                **({"server_url": version.server_url, "server_model": version.server_model}
                   if version.backend == Backend.OPENAI else {}),
            },
        )  # fmt: skip
    return version


def model_version_deploy(
    *, version_id: int, actor: AbstractBaseUser | None, action: str = "model_version.deploy"
) -> ModelVersion:
    """Make the version the project's deployed one; the previous one is retired. Idempotent.

    Locks the project row, so concurrent deploys of one project happen one after the other. On commit,
    drafting of the project's undrafted items starts with the new version. A version whose directories
    cannot load is refused (400), as at registration. A version on a server is checked there first
    (before the lock: the server may be slow), and a LoRA version's adapter is loaded into the running
    server, or the deploy is refused with the serve command that would serve it (`backends`). Once the
    deploy commits, the retired version's adapter is unloaded from its server. What happened on the
    server is on the returned instance as `backend_outcome` (a `backends.DeployOutcome`).
    """
    version = ModelVersion.objects.filter(pk=version_id).select_related("project").first()
    if version is None:
        raise NotFound("Model version not found.")
    if actor is not None:
        check_project_admin(user=actor, project=version.project)
    outcome = backends.DeployOutcome()
    if version.status not in (ModelVersionStatus.DEPLOYED, ModelVersionStatus.REJECTED):
        _files_check(version)
        outcome = backends.deploy_prepare(version)
    with transaction.atomic():
        project = Project.objects.select_for_update(no_key=True).get(pk=version.project_id)
        version = ModelVersion.objects.get(pk=version_id)  # re-read under the lock
        version.backend_outcome = outcome
        if version.status == ModelVersionStatus.DEPLOYED:
            return version
        if version.status == ModelVersionStatus.REJECTED:
            raise Conflict(f"Version '{version.name}' was rejected; it cannot be deployed.", code="rejected")
        current = model_version_deployed(project_id=project.pk)
        if current is not None:
            current.project = project
            model_version_write(
                current,
                to_status=ModelVersionStatus.RETIRED,
                actor=actor,
                action="model_version.retire",
                data={"replaced_by": version.pk},
            )
        version.project = project
        model_version_write(
            version,
            to_status=ModelVersionStatus.DEPLOYED,
            actor=actor,
            action=action,
            data={"previous": current.pk if current else None},
            deployed_at=timezone.now(),
        )
        runs_mark_promoted(version=version, actor=actor)
        task_send_on_commit(DRAFTS_GENERATE, project.pk)  # the new version drafts the waiting items
        if backends.adapter_to_release(current, deployed=version):
            deployed = version
            transaction.on_commit(
                lambda: backends.adapter_release(current, deployed=deployed, outcome=outcome)
            )
        return version


def model_version_serve_prepare(version: ModelVersion) -> backends.DeployOutcome:
    """What a deploy checks before its lock, for a version about to serve traffic without being deployed
    (a canary, training/canary.py): its files load, and its server serves it (a LoRA adapter loaded)."""
    _files_check(version)
    return backends.deploy_prepare(version)


def _files_check(version: ModelVersion) -> None:
    """Its files may have gone since registration (a moved directory, a cleaned-up run). A served
    version's adapter is the server's to read; its base model, when it names one, is checked here."""
    if version.backend == Backend.LOCAL:
        model_files_check(base_model=version.base_model, adapter_path=version.adapter_path)
    elif version.base_model:
        model_files_check(base_model=version.base_model)


def model_version_rollback(
    *, project: Project, actor: AbstractBaseUser | None, to_version_id: int | None = None
) -> ModelVersion:
    """Deploy an earlier version again: `to_version_id`, or by default the one deployed before the current."""
    current = model_version_deployed(project_id=project.pk)
    earlier = ModelVersion.objects.filter(project=project).exclude(status=ModelVersionStatus.REJECTED)
    if current is not None:
        earlier = earlier.exclude(pk=current.pk).filter(created_at__lte=current.created_at)
    if to_version_id is not None:
        target = earlier.filter(pk=to_version_id).first()
        if target is None:
            raise Conflict("Roll back only to an earlier version of this project.", code="not_earlier")
    else:
        target = earlier.filter(deployed_at__isnull=False).order_by("-deployed_at", "-pk").first()
        if target is None:
            raise Conflict("No earlier deployed version to roll back to.", code="nothing_to_roll_back")
    return model_version_deploy(version_id=target.pk, actor=actor, action="model_version.rollback")
