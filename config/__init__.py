"""Project configuration: settings, URLs, the ASGI and Celery applications."""

from .celery import app as celery_app

__all__ = ["celery_app"]
