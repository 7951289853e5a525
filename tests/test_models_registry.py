"""The model registry: register, deploy (one deployed per project), rollback; each step audited."""

import pytest

from annotation.models import AuditEvent
from core.errors import ApplicationError, Conflict, NotAllowed
from tests.test_drafting_support import tiny_model_path
from training.models import ModelVersion, ModelVersionStatus
from training.registry import model_version_deploy, model_version_register, model_version_rollback

pytestmark = pytest.mark.django_db


def register(project, actor, name, **kwargs):
    return model_version_register(
        project=project, actor=actor, name=name, base_model=str(tiny_model_path()), **kwargs
    )


def test_deploy_retires_the_previous_version_and_audits_both(project, people):
    admin = people["admin"]
    v1, v2 = register(project, admin, "v1"), register(project, admin, "v2")
    model_version_deploy(version_id=v1.pk, actor=admin)

    model_version_deploy(version_id=v2.pk, actor=admin)

    statuses = dict(ModelVersion.objects.filter(project=project).values_list("name", "status"))
    assert statuses == {"v1": ModelVersionStatus.RETIRED, "v2": ModelVersionStatus.DEPLOYED}
    actions = list(
        AuditEvent.objects.filter(project=project, target_type="modelversion").values_list(
            "action", "target_id"
        )
    )
    assert ("model_version.retire", str(v1.pk)) in actions
    assert actions.count(("model_version.deploy", str(v2.pk))) == 1


def test_deploy_sends_drafting_on_commit(project, people, django_capture_on_commit_callbacks):
    version = register(project, people["admin"], "v1")
    with django_capture_on_commit_callbacks() as callbacks:
        model_version_deploy(version_id=version.pk, actor=people["admin"])
    assert len(callbacks) == 1


def test_rollback_redeploys_the_version_deployed_before(project, people):
    admin = people["admin"]
    v1, v2 = register(project, admin, "v1"), register(project, admin, "v2")
    model_version_deploy(version_id=v1.pk, actor=admin)
    model_version_deploy(version_id=v2.pk, actor=admin)

    back = model_version_rollback(project=project, actor=admin)

    assert back.pk == v1.pk and back.status == ModelVersionStatus.DEPLOYED
    assert ModelVersion.objects.get(pk=v2.pk).status == ModelVersionStatus.RETIRED
    assert AuditEvent.objects.filter(action="model_version.rollback", target_id=str(v1.pk)).exists()


def test_rollback_only_goes_to_an_earlier_version(project, people):
    admin = people["admin"]
    v1, v2 = register(project, admin, "v1"), register(project, admin, "v2")
    model_version_deploy(version_id=v1.pk, actor=admin)

    with pytest.raises(Conflict):
        model_version_rollback(project=project, actor=admin, to_version_id=v2.pk)


@pytest.mark.parametrize("role", ["annotator", "expert", "outsider"])
def test_only_project_admins_register_or_deploy(project, people, role):
    version = register(project, people["admin"], "v1")
    with pytest.raises(NotAllowed):
        register(project, people[role], "v2")
    with pytest.raises(NotAllowed):
        model_version_deploy(version_id=version.pk, actor=people[role])


@pytest.mark.parametrize(
    "generation",
    [{"num_candidates": 3}, {"temperature": -1}, {"top_p": 0}, {"beams": 4}],
    ids=["candidates-are-a-project-setting", "negative-temperature", "zero-top-p", "unknown-key"],
)
def test_invalid_generation_settings_are_refused(project, people, generation):
    with pytest.raises(ApplicationError):
        register(project, people["admin"], "v1", generation=generation)


def test_promote_and_rollback_over_the_api(project, people, api):
    admin = api(people["admin"])
    v1 = admin.post(f"/api/projects/{project.pk}/model-versions/", {"name": "v1"}, format="json").json()
    v2 = admin.post(f"/api/projects/{project.pk}/model-versions/", {"name": "v2"}, format="json").json()
    assert admin.post(f"/api/model-versions/{v1['id']}/promote/").json()["status"] == "deployed"
    assert admin.post(f"/api/model-versions/{v2['id']}/promote/").json()["status"] == "deployed"

    response = admin.post(f"/api/model-versions/{v1['id']}/rollback/")

    assert response.status_code == 200 and response.json()["status"] == "deployed"
    assert api(people["annotator"]).post(f"/api/model-versions/{v2['id']}/promote/").status_code == 403
    assert api(people["outsider"]).post(f"/api/model-versions/{v2['id']}/promote/").status_code == 404


def test_models_page_lists_versions_and_admins_deploy_from_it(project, people, client):
    version = register(project, people["admin"], "v-page")
    client.force_login(people["annotator"])
    page = client.get(f"/projects/{project.pk}/models/")
    assert page.status_code == 200 and "v-page" in page.content.decode()
    assert client.post(f"/projects/{project.pk}/models/{version.pk}/deploy/").status_code == 403

    client.force_login(people["admin"])
    response = client.post(f"/projects/{project.pk}/models/{version.pk}/deploy/")

    assert response.status_code == 302
    assert ModelVersion.objects.get(pk=version.pk).status == ModelVersionStatus.DEPLOYED
