"""Browser pages for imports and exports: upload, the polled status fragment, the export form."""

import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from annotation.importing import import_job_run
from annotation.models import ImportJob, Item

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"


def upload(client, project, content: bytes, name="q.jsonl", **fields):
    data = {"file": SimpleUploadedFile(name, content), "format": "", **fields}
    return client.post(f"/projects/{project.pk}/imports/", data)


def test_upload_page_creates_a_job_and_shows_its_progress(client, people, project):
    client.force_login(people["admin"])
    response = upload(client, project, b'{"input": "one"}\n')
    job = ImportJob.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/projects/{project.pk}/imports/{job.pk}/"
    page = client.get(response["Location"]).content.decode()
    assert 'hx-trigger="every 1s"' in page and "<progress" in page


def test_status_fragment_stops_polling_when_the_job_is_done(client, people, project):
    client.force_login(people["admin"])
    upload(client, project, b'{"input": "one"}\n')
    job = ImportJob.objects.get()
    import_job_run(job_id=job.pk)
    fragment = client.get(f"/projects/{project.pk}/imports/{job.pk}/status/").content.decode()
    assert 'data-status="succeeded"' in fragment and "hx-trigger" not in fragment
    assert Item.objects.count() == 1


def test_status_fragment_lists_line_errors(client, people, project):
    client.force_login(people["admin"])
    upload(client, project, b'{"input": "one"}\n{"input": 5}\n')
    job = ImportJob.objects.get()
    import_job_run(job_id=job.pk)
    fragment = client.get(f"/projects/{project.pk}/imports/{job.pk}/status/").content.decode()
    assert "<td>2</td><td>input</td><td>expected text, found a number</td>" in fragment


def test_upload_page_mapping_fields_become_the_job_mapping(client, people, project):
    client.force_login(people["admin"])
    upload(client, project, b"question\nWhat?\n", name="q.csv", input="question")
    assert ImportJob.objects.get().mapping == {"input": "question"}


def test_upload_over_the_limit_shows_the_error(client, people, project, settings):
    settings.IMPORT_MAX_FILE_BYTES = 10
    client.force_login(people["admin"])
    response = upload(client, project, json.dumps({"input": "x" * 50}).encode())
    assert response.status_code == 200 and "over the 10-byte import limit" in response.content.decode()
    assert not ImportJob.objects.exists()


@pytest.mark.parametrize("path", ["imports/", "export/"])
@pytest.mark.parametrize("name, expected", [("outsider", 404), ("annotator", 403), ("admin", 200)])
def test_pages_are_for_project_admins(client, people, project, path, name, expected):
    client.force_login(people[name])
    assert client.get(f"/projects/{project.pk}/{path}").status_code == expected


def test_menu_shows_import_and_export_to_admins(client, people, project):
    client.force_login(people["admin"])
    page = client.get(f"/projects/{project.pk}/").content.decode()
    assert (
        f'href="/projects/{project.pk}/imports/"' in page and f'href="/projects/{project.pk}/export/"' in page
    )


def test_export_page_downloads_through_the_api_with_the_session(client, people, project):
    client.force_login(people["admin"])
    page = client.get(f"/projects/{project.pk}/export/").content.decode()
    assert f'action="/api/projects/{project.pk}/export/"' in page
    response = client.get(f"/api/projects/{project.pk}/export/", {"format": "alpaca"})
    assert response.status_code == 200 and response["X-Record-Count"] == "0"
