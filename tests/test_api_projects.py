"""Who may do what with projects and members, through the REST API."""

import pytest

from annotation.models import AuditEvent, Membership, Role

from .factories import ProjectFactory, UserFactory

pytestmark = pytest.mark.django_db

ACTORS = ["anonymous", "outsider", "annotator", "expert", "domain_reviewer", "admin", "staff"]


def actor(people, name):
    return None if name == "anonymous" else people[name]


# Who gets what from an endpoint only the project's admins (and staff) may use.
PROJECT_ADMINS_ONLY = [
    ("anonymous", 401),
    ("outsider", 404),
    ("annotator", 403),
    ("expert", 403),
    ("domain_reviewer", 403),
    ("admin", 200),
    ("staff", 200),
]


@pytest.mark.parametrize(
    "name, expected",
    [
        ("anonymous", 401),
        ("outsider", 200),
        ("annotator", 200),
        ("expert", 200),
        ("domain_reviewer", 200),
        ("admin", 200),
        ("staff", 200),
    ],
)
def test_project_list_shows_only_my_projects(api, people, project, name, expected):
    # given another project nobody of `people` belongs to
    other = ProjectFactory()
    # when
    response = api(actor(people, name)).get("/api/projects/")
    # then
    assert response.status_code == expected
    if expected == 200:
        ids = {p["id"] for p in response.json()["results"]}
        if name == "staff":
            assert {project.pk, other.pk} <= ids
        elif name == "outsider":
            assert ids == set()
        else:
            assert ids == {project.pk}


@pytest.mark.parametrize(
    "name, expected",
    [
        ("anonymous", 401),
        ("outsider", 404),
        ("annotator", 200),
        ("expert", 200),
        ("domain_reviewer", 200),
        ("admin", 200),
        ("staff", 200),
    ],
)
def test_project_detail_is_visible_to_members_only(api, people, project, name, expected):
    response = api(actor(people, name)).get(f"/api/projects/{project.pk}/")
    assert response.status_code == expected
    if expected == 404:
        assert response.json()["error"]["code"] == "not_found"


def test_project_detail_reports_my_roles(api, people, project):
    response = api(people["expert"]).get(f"/api/projects/{project.pk}/")
    assert response.json()["my_roles"] == ["expert"]


@pytest.mark.parametrize(
    "name, expected",
    [
        ("anonymous", 401),
        ("outsider", 403),
        ("annotator", 403),
        ("expert", 403),
        ("domain_reviewer", 403),
        ("admin", 403),
        ("staff", 201),
    ],
)
def test_only_staff_create_projects(api, people, name, expected):
    response = api(actor(people, name)).post(
        "/api/projects/", {"name": "Support bot", "review_tiers": 2, "retrain_threshold": 50}, format="json"
    )
    assert response.status_code == expected
    if expected == 201:
        body = response.json()
        assert body["slug"] == "support-bot"
        assert body["review_tiers"] == 2
        assert body["my_roles"] == ["admin"]
        assert Membership.objects.filter(
            project_id=body["id"], user=people["staff"], role=Role.ADMIN
        ).exists()
    else:
        assert "error" in response.json()


@pytest.mark.parametrize(
    "name, expected",
    [
        ("anonymous", 401),
        ("outsider", 404),
        ("annotator", 403),
        ("expert", 403),
        ("domain_reviewer", 403),
        ("admin", 201),
        ("staff", 201),
    ],
)
def test_only_project_admins_add_members(api, people, project, name, expected):
    newcomer = UserFactory(username="newcomer")
    response = api(actor(people, name)).post(
        f"/api/projects/{project.pk}/members/", {"username": "newcomer", "role": "expert"}, format="json"
    )
    assert response.status_code == expected
    added = Membership.objects.filter(project=project, user=newcomer, role="expert").exists()
    assert added == (expected == 201)


@pytest.mark.parametrize("name, expected", PROJECT_ADMINS_ONLY)
def test_only_project_admins_list_members(api, people, project, name, expected):
    response = api(actor(people, name)).get(f"/api/projects/{project.pk}/members/")
    assert response.status_code == expected
    if expected == 200:
        assert {(m["username"], m["role"]) for m in response.json()} == {(r, r) for r in Role.values}


def test_adding_a_member_is_audited_and_idempotent(api, people, project):
    UserFactory(username="newcomer")
    first = api(people["admin"]).post(
        f"/api/projects/{project.pk}/members/", {"username": "newcomer", "role": "expert"}, format="json"
    )
    again = api(people["admin"]).post(
        f"/api/projects/{project.pk}/members/", {"username": "newcomer", "role": "expert"}, format="json"
    )
    assert (first.status_code, again.status_code) == (201, 200)
    events = AuditEvent.objects.filter(action="membership.add", project=project)
    assert events.count() == 1
    assert events.get().actor == people["admin"]


def test_adding_an_unknown_user_names_them(api, people, project):
    response = api(people["admin"]).post(
        f"/api/projects/{project.pk}/members/", {"username": "ghost", "role": "expert"}, format="json"
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "unknown_user"
    assert "ghost" in response.json()["error"]["message"]


def test_token_is_issued_for_valid_credentials_only(api, people):
    client = api(None)
    good = client.post(
        "/api/auth/token/", {"username": "annotator", "password": "correct-horse-battery"}, format="json"
    )
    bad = client.post("/api/auth/token/", {"username": "annotator", "password": "wrong"}, format="json")
    assert good.status_code == 200 and len(good.json()["token"]) == 40
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid"
    # and the token works
    client.credentials(HTTP_AUTHORIZATION=f"Token {good.json()['token']}")
    assert client.get("/api/projects/").status_code == 200


def test_session_auth_works_for_the_browser(client, people, project):
    client.force_login(people["annotator"])
    assert client.get("/api/projects/").json()["count"] == 1


@pytest.mark.parametrize("name, expected", PROJECT_ADMINS_ONLY)
def test_only_project_admins_change_settings(api, people, project, name, expected):
    response = api(actor(people, name)).patch(
        f"/api/projects/{project.pk}/",
        {"compliance_phrases": ["guaranteed returns", "无风险"], "redact_on_import": True, "review_tiers": 2},
        format="json",
    )
    assert response.status_code == expected
    project.refresh_from_db()
    assert (project.compliance_phrases == ["guaranteed returns", "无风险"]) == (expected == 200)
    if expected == 200:
        assert response.json()["review_tiers"] == 2 and response.json()["redact_on_import"] is True
        event = AuditEvent.objects.get(action="project.update")
        assert event.data == {"changed": ["compliance_phrases", "redact_on_import", "review_tiers"]}


@pytest.mark.parametrize(
    "change, field",
    [
        ({"training_hyperparameters": {"learning_rate": -1}}, "learning_rate"),
        ({"training_hyperparameters": {"colour": 1}}, "colour"),
        ({"golden_item_ids": [999999]}, "golden_item_ids"),
        ({"compliance_phrases": [""]}, "compliance_phrases"),
        ({"draft_candidates": 6}, "draft_candidates"),
        ({"prompt_template": "no placeholder"}, "{input}"),
    ],
)
def test_bad_settings_are_refused_by_name(api, people, project, change, field):
    response = api(people["admin"]).patch(f"/api/projects/{project.pk}/", change, format="json")
    assert response.status_code == 400
    assert field in response.json()["error"]["message"] or field in str(response.json()["error"]["details"])
