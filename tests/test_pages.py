"""Browser pages: login, the project list, role-aware menus, and both languages."""

import pytest
from django.core.management import call_command

from annotation.demo import DEMO_PROJECT, DEMO_PROMPTS, DEMO_USERS
from annotation.models import Item, Project

pytestmark = pytest.mark.django_db


def test_pages_need_login(client, project):
    response = client.get(f"/projects/{project.pk}/")
    assert response.status_code == 302 and response["Location"].startswith("/login/")


def test_login_page_renders(client):
    response = client.get("/login/")
    assert response.status_code == 200
    assert b'name="password"' in response.content


def test_login_with_the_form(client, people):
    response = client.post("/login/", {"username": "expert", "password": "correct-horse-battery"})
    assert response.status_code == 302 and response["Location"] == "/"


def test_home_lists_only_my_projects(client, people, project):
    client.force_login(people["outsider"])
    assert project.name not in client.get("/").content.decode()
    client.force_login(people["annotator"])
    assert project.name in client.get("/").content.decode()


def test_project_page_is_hidden_from_outsiders(client, people, project):
    client.force_login(people["outsider"])
    assert client.get(f"/projects/{project.pk}/").status_code == 404


def test_menu_follows_roles(client, people, project):
    members_link = f'href="/projects/{project.pk}/members/"'
    client.force_login(people["annotator"])
    assert members_link not in client.get(f"/projects/{project.pk}/").content.decode()
    assert client.get(f"/projects/{project.pk}/members/").status_code == 403
    client.force_login(people["admin"])
    assert members_link in client.get(f"/projects/{project.pk}/").content.decode()


def test_admin_adds_a_member_from_the_page(client, people, project):
    client.force_login(people["admin"])
    response = client.post(
        f"/projects/{project.pk}/members/", {"username": "outsider", "role": "expert"}, follow=True
    )
    assert "outsider is now Expert reviewer." in response.content.decode()
    assert project.memberships.filter(user=people["outsider"], role="expert").exists()


def test_simplified_chinese(client, people, project):
    client.force_login(people["annotator"])
    response = client.get(f"/projects/{project.pk}/", HTTP_ACCEPT_LANGUAGE="zh-hans")
    html = response.content.decode()
    assert '<html lang="zh-hans"' in html
    assert "概览" in html  # "Overview" in the menu
    assert "新建" in html  # the "New" item state


def test_seed_demo_is_idempotent_and_users_can_log_in(client):
    call_command("seed_demo")
    call_command("seed_demo")
    project = Project.objects.get(slug=DEMO_PROJECT["slug"])
    assert Item.objects.filter(project=project).count() == len(DEMO_PROMPTS) >= 24
    assert any("\u4e00" <= ch <= "\u9fff" for text in DEMO_PROMPTS for ch in text)  # Chinese prompts too
    for username, role, _ in DEMO_USERS:
        assert project.memberships.filter(user__username=username, role=role).exists()
        assert client.login(username=username, password=f"{username}-demo-pass")


def test_an_items_timeline_shows_its_projects_menu(client, people, project):
    # given an item of the project
    item = Item.objects.create(project=project, input="Where is my order?", content_hash="x" * 64)
    client.force_login(people["annotator"])

    # when the annotator opens its timeline, the project's menu is there, with their work queue
    page = client.get(f"/items/{item.pk}/").content.decode()
    assert f'href="/projects/{project.pk}/work/annotate/"' in page
