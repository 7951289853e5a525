"""Login lock-out (per account and address, per account, per address), password validators, cookies."""

from datetime import timedelta

import pytest
from axes.models import AccessAttempt
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.forms import PasswordChangeForm
from django.core.management import call_command
from django.test import Client
from django.utils import timezone

from annotation.models import AuditEvent

from .factories import PASSWORD, UserFactory
from .test_settings import run_manage

pytestmark = pytest.mark.django_db

OFFICE = "203.0.113.7"
LIMITS = settings.HANDOVER_LOGIN_LIMITS


def login(client, username, password, address=OFFICE):
    return client.post("/login/", {"username": username, "password": password}, REMOTE_ADDR=address)


def token(client, username, password, address=OFFICE):
    return client.post(
        "/api/auth/token/",
        {"username": username, "password": password},
        content_type="application/json",
        REMOTE_ADDR=address,
    )


def lockouts(username):
    return list(AuditEvent.objects.filter(action="login.lock_out", data__username=username))


def test_the_limits_are_the_documented_ones():
    assert LIMITS == {"account_address": 5, "account": 20, "address": 100}
    assert timedelta(minutes=15) == settings.AXES_COOLOFF_TIME


def test_wrong_passwords_lock_the_account_from_that_address_with_a_page_and_an_audit_event(client):
    alice = UserFactory(username="alice")
    for _ in range(LIMITS["account_address"] - 1):
        response = login(client, "alice", "wrong")
        assert response.status_code == 200  # the login form again, with its error
        assert "Please enter a correct username and password" in response.content.decode()

    # the fifth failure locks: the page says so and when to come back
    response = login(client, "alice", "wrong")
    assert response.status_code == 429
    page = response.content.decode()
    assert "Too many failed logins. Try again in 15 minutes." in page
    assert "You can log in again after" in page
    assert 14 * 60 < int(response["Retry-After"]) <= 15 * 60 + 1

    # now the right password is refused too from that address, and the lock is not extended
    response = login(client, "alice", PASSWORD)
    assert response.status_code == 429 and "_auth_user_id" not in client.session

    # one audit event for the lock-out, none for the refused attempts after it
    (event,) = lockouts("alice")
    assert (event.target_type, event.target_id, event.actor_id) == ("user", str(alice.pk), None)
    assert event.data["scope"] == "account_address" and event.data["ip_address"] == OFFICE
    assert event.data["path"] == "/login/" and event.data["until"]

    # from another address the account still logs in
    elsewhere = Client()
    assert login(elsewhere, "alice", PASSWORD, address="198.51.100.20").status_code == 302


def test_a_class_behind_one_address_logs_in_after_one_typo_each():
    people = [UserFactory(username=f"annotator{n:02}") for n in range(30)]
    clients = {person.username: Client() for person in people}
    for person in people:
        assert login(clients[person.username], person.username, "typo").status_code == 200
    for person in people:
        response = login(clients[person.username], person.username, PASSWORD)
        assert response.status_code == 302, person.username
        assert clients[person.username].session["_auth_user_id"] == str(person.pk)
    assert not AuditEvent.objects.filter(action="login.lock_out").exists()


def test_an_account_is_locked_everywhere_after_the_per_account_limit(client):
    UserFactory(username="bob")
    per_address = LIMITS["account_address"] - 1  # never enough to lock one address
    addresses = [f"198.51.100.{n}" for n in range(LIMITS["account"] // per_address)]
    statuses = [
        login(Client(), "bob", "guess", address=a).status_code for a in addresses for _ in range(per_address)
    ]
    assert len(statuses) == LIMITS["account"]
    assert statuses == [200] * (LIMITS["account"] - 1) + [429]  # the 20th failure locks the account

    # bob, at a fresh address with the right password, is refused: on the page and the token API
    assert login(client, "bob", PASSWORD, address="192.0.2.55").status_code == 429
    response = token(Client(), "bob", PASSWORD, address="192.0.2.56")
    assert response.status_code == 429
    assert response.json()["error"]["code"] == "locked_out"
    assert response.json()["error"]["details"]["retry_after"] == int(response["Retry-After"])
    (event,) = lockouts("bob")
    assert event.data["scope"] == "account" and event.data["ip_address"] == addresses[-1]

    # other accounts at those addresses are not affected
    UserFactory(username="carol")
    assert login(Client(), "carol", PASSWORD, address=addresses[-1]).status_code == 302


def test_an_address_is_locked_only_after_many_accounts_fail_there():
    limit = LIMITS["address"]
    for n in range(limit - 1):
        assert login(Client(), f"nobody{n}", "spray").status_code == 200
    UserFactory(username="dave")
    assert login(Client(), "dave", PASSWORD).status_code == 302  # 99 failures: still open

    assert login(Client(), "nobody-last", "spray").status_code == 429  # the 100th locks the address
    assert login(Client(), "dave", PASSWORD).status_code == 429
    assert login(Client(), "dave", PASSWORD, address="192.0.2.9").status_code == 302
    (event,) = lockouts("nobody-last")
    assert event.data["scope"] == "address"
    assert event.target_type == "accessattempt"  # no such user: the attempt row is the target


def test_the_token_api_locks_like_the_page():
    UserFactory(username="erin")
    api = Client()
    for _ in range(LIMITS["account_address"] - 1):
        assert token(api, "erin", "wrong").status_code == 400
    response = token(api, "erin", "wrong")
    assert response.status_code == 429
    assert response.json()["error"]["message"] == "Too many failed logins. Try again in 15 minutes."
    assert token(api, "erin", PASSWORD).status_code == 429
    assert token(api, "erin", PASSWORD, address="192.0.2.77").status_code == 200
    (event,) = lockouts("erin")
    assert event.data["path"] == "/api/auth/token/"


def test_the_lock_ends_after_the_cool_off(client):
    UserFactory(username="frank")
    for _ in range(LIMITS["account_address"]):
        login(client, "frank", "wrong")
    assert login(client, "frank", PASSWORD).status_code == 429

    # a second before the cool-off is over it still holds; after it, the right password logs in
    last = AccessAttempt.objects.get(username="frank").attempt_time
    AccessAttempt.objects.filter(username="frank").update(
        attempt_time=last - settings.AXES_COOLOFF_TIME + timedelta(seconds=5)
    )
    assert login(client, "frank", PASSWORD).status_code == 429
    AccessAttempt.objects.filter(username="frank").update(
        attempt_time=timezone.now() - settings.AXES_COOLOFF_TIME - timedelta(seconds=1)
    )
    assert login(client, "frank", PASSWORD).status_code == 302
    # and the login forgot the failures: four more typos do not lock again
    client.logout()
    for _ in range(LIMITS["account_address"] - 1):
        assert login(client, "frank", "wrong").status_code == 200


def test_staff_unlock_with_the_management_command_or_the_admin(client):
    UserFactory(username="gina")
    for _ in range(LIMITS["account_address"]):
        login(client, "gina", "wrong")
    assert login(client, "gina", PASSWORD).status_code == 429

    staff = Client()
    staff.force_login(UserFactory(username="root", is_staff=True, is_superuser=True))
    listing = staff.get("/admin/axes/accessattempt/")
    assert listing.status_code == 200 and "gina" in listing.content.decode()

    call_command("axes_reset_username", "gina")
    assert login(client, "gina", PASSWORD).status_code == 302


def test_the_admin_login_is_locked_too():
    UserFactory(username="hugo", is_staff=True)
    admin = Client()
    for _ in range(LIMITS["account_address"] - 1):
        response = admin.post("/admin/login/", {"username": "hugo", "password": "x"}, REMOTE_ADDR=OFFICE)
        assert response.status_code == 200
    response = admin.post("/admin/login/", {"username": "hugo", "password": "x"}, REMOTE_ADDR=OFFICE)
    assert response.status_code == 429 and "Too many failed logins" in response.content.decode()


# --- passwords ------------------------------------------------------------------------------------


def test_password_validators_refuse_weak_passwords():
    assert [v["NAME"].rsplit(".", 1)[1] for v in settings.AUTH_PASSWORD_VALIDATORS] == [
        "UserAttributeSimilarityValidator",
        "MinimumLengthValidator",
        "CommonPasswordValidator",
        "NumericPasswordValidator",
    ]
    user = UserFactory(username="isabella.martinez")
    for weak, complaint in [
        ("short1", "too short"),
        ("password123", "too common"),
        ("83920174655", "entirely numeric"),
        ("isabella.martinez", "too similar to the username"),
    ]:
        form = PasswordChangeForm(
            user, {"old_password": PASSWORD, "new_password1": weak, "new_password2": weak}
        )
        assert not form.is_valid(), weak
        assert complaint in " ".join(form.errors["new_password2"]), (weak, form.errors)
    form = PasswordChangeForm(
        user,
        {"old_password": PASSWORD, "new_password1": "kettle-orbit-57", "new_password2": "kettle-orbit-57"},
    )
    assert form.is_valid(), form.errors


def test_the_admin_refuses_a_weak_password_for_a_new_user(client):
    client.force_login(UserFactory(username="root", is_staff=True, is_superuser=True))
    response = client.post(
        "/admin/auth/user/add/",
        {"username": "newcomer", "password1": "12345678", "password2": "12345678", "usable_password": "true"},
    )
    assert response.status_code == 200
    assert "This password is entirely numeric." in response.content.decode()
    assert not get_user_model().objects.filter(username="newcomer").exists()


# --- cookies and the deployment checklist ----------------------------------------------------------


def test_cookies_are_httponly_and_lax_everywhere_and_secure_in_production(client):
    UserFactory(username="jane")
    client.get("/login/")
    response = login(client, "jane", PASSWORD, address="127.0.0.1")
    session = response.cookies[settings.SESSION_COOKIE_NAME]
    assert session["httponly"] and session["samesite"] == "Lax"
    assert not session["secure"]  # the tests (and `make run`) are plain http://localhost
    csrf = client.cookies[settings.CSRF_COOKIE_NAME]
    assert csrf["httponly"] and csrf["samesite"] == "Lax"

    names = [f"{c}_COOKIE_{what}" for what in ("SECURE", "HTTPONLY", "SAMESITE") for c in ("SESSION", "CSRF")]
    code = f"from django.conf import settings as s; print(*(getattr(s, n) for n in {names!r}))"
    production = run_manage("shell", "-v", "0", "-c", code, env=PRODUCTION_ENV)
    assert production.returncode == 0, production.stderr
    assert production.stdout.split() == ["True", "True", "True", "True", "Lax", "Lax"]


PRODUCTION_ENV = {
    "HANDOVER_ENV": "production",
    "SECRET_KEY": "k" * 20 + "-production-like-secret-" + "q7Z" * 10,
    "ALLOWED_HOSTS": "handover.example.com",
}


def test_the_deployment_checklist_has_no_security_warning_in_production():
    # `--fail-level WARNING`: any security.W* (and axes' own checks: middleware, backend, the
    # address among the lock-out parameters) fails. None is left to justify.
    result = run_manage("check", "--deploy", "--fail-level", "WARNING", env=PRODUCTION_ENV)
    assert result.returncode == 0, result.stderr + result.stdout
    assert "System check identified no issues" in result.stdout
