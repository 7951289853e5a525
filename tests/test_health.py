"""/healthz reports each component and names the one that fails."""

import pytest

pytestmark = pytest.mark.django_db


@pytest.mark.worker
def test_healthy_stack_answers_200(client, celery_worker_process):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "checks": {"database": "ok", "redis": "ok", "worker": "ok"}}


def test_unreachable_redis_is_named(client, settings):
    settings.REDIS_URL = "redis://127.0.0.1:9/0"  # nothing listens on the discard port
    response = client.get("/healthz")
    assert response.status_code == 503
    body = response.json()
    assert body["failing"] == ["redis", "worker"]
    assert body["checks"]["database"] == "ok"
    assert body["checks"]["redis"].startswith("error: ConnectionError")


def test_missing_worker_is_named(client, monkeypatch):
    # given a broker with no worker listening: the control ping gets no reply
    from config.celery import app

    monkeypatch.setattr(app.control, "ping", lambda timeout: [])
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["failing"] == ["worker"]
