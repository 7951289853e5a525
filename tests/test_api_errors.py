"""Bad input gets 400 in the one error format, naming what is wrong."""

import pytest

pytestmark = pytest.mark.django_db


def assert_error(response, status, code):
    assert response.status_code == status, response.content
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "details"}
    assert body["error"]["code"] == code
    return body["error"]


def test_malformed_json_body(api, people):
    response = api(people["staff"]).post(
        "/api/projects/", data='{"name": "x",', content_type="application/json"
    )
    error = assert_error(response, 400, "parse_error")
    assert "JSON" in error["message"]


def test_unknown_fields_are_rejected_by_name(api, people):
    response = api(people["staff"]).post(
        "/api/projects/", {"name": "x", "reveiw_tiers": 2, "colour": "red"}, format="json"
    )
    error = assert_error(response, 400, "invalid")
    assert set(error["details"]) == {"reveiw_tiers", "colour"}
    assert "colour" in error["message"]


def test_read_only_fields_count_as_unknown(api, people):
    response = api(people["staff"]).post("/api/projects/", {"name": "x", "id": 7}, format="json")
    assert assert_error(response, 400, "invalid")["details"] == {"id": ["Unknown field."]}


def test_wrong_types_name_the_field(api, people):
    response = api(people["staff"]).post(
        "/api/projects/", {"name": "x", "review_tiers": "three", "confidence_threshold": [1]}, format="json"
    )
    error = assert_error(response, 400, "invalid")
    assert set(error["details"]) == {"review_tiers", "confidence_threshold"}
    assert error["message"].startswith("review_tiers:")


def test_out_of_range_setting(api, people):
    response = api(people["staff"]).post("/api/projects/", {"name": "x", "review_tiers": 4}, format="json")
    assert "review_tiers" in assert_error(response, 400, "invalid")["details"]


def test_body_that_is_not_an_object(api, people):
    response = api(people["staff"]).post("/api/projects/", [1, 2], format="json")
    assert "non_field_errors" in assert_error(response, 400, "invalid")["details"]


@pytest.mark.parametrize(
    "template, fragment",
    [("Answer: {question}", "{input}"), ("{input} {colour}", "{colour}"), ("{input", "Malformed")],
)
def test_prompt_template_is_validated(api, people, template, fragment):
    response = api(people["staff"]).post(
        "/api/projects/", {"name": "x", "prompt_template": template}, format="json"
    )
    error = assert_error(response, 400, "invalid")
    assert fragment in error["message"]


def test_unknown_api_route_is_a_json_404(api, people):
    assert_error(api(people["staff"]).get("/api/nothing-here/"), 404, "not_found")


def test_wrong_method(api, people, project):
    assert_error(api(people["admin"]).delete(f"/api/projects/{project.pk}/"), 405, "method_not_allowed")


def test_duplicate_slug_is_a_conflict(api, people, project):
    response = api(people["staff"]).post("/api/projects/", {"name": "x", "slug": project.slug}, format="json")
    assert_error(response, 409, "slug_taken")
