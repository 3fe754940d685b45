"""Celery app, the step task and the one dispatcher."""

from hive.tasks.app import app

__all__ = ["app"]
