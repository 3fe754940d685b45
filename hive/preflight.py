"""Reachability checks for the servers Hive needs, each naming its setting."""

from __future__ import annotations

import logging
import time

import redis
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from hive.db.engine import get_engine, unavailable
from hive.errors import ServiceUnavailable
from hive.settings import get_settings

logger = logging.getLogger(__name__)


def check_broker() -> None:
    url = get_settings().broker_url
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=3, socket_timeout=3)
        client.ping()
        client.close()
    except redis.RedisError as exc:
        raise ServiceUnavailable("HIVE_BROKER_URL", str(exc).splitlines()[0]) from None


def check_database() -> None:
    try:
        with get_engine().connect() as conn:
            conn.execute(text("SELECT 1"))
    except OperationalError as exc:
        raise unavailable(exc) from None


def wait_for_services(max_delay_s: float = 30.0) -> None:
    """Block until Redis and PostgreSQL answer, saying which one is missing meanwhile."""
    delay = 1.0
    while True:
        try:
            check_broker()
            check_database()
            return
        except ServiceUnavailable as exc:
            logger.warning("%s; retrying in %.0fs", exc, delay)
            time.sleep(delay)
            delay = min(delay * 2, max_delay_s)
