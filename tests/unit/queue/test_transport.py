"""Every REDIS_URL the docs name is served by the project's transport; other forms are refused
when a process starts."""

import pytest

from app import create_app
from app.queue import transport
from app.settings import Settings

# The forms docs/configuration.md and docs/operations.md give for REDIS_URL.
DOCUMENTED_REDIS_URLS = [
    "redis://127.0.0.1:6379/0",
    "redis://user:password@host:6379/0",
    "rediss://user:password@redis.example:6380/0",
    "rediss://user:password@redis.example:6380/0?ssl_cert_reqs=required&ssl_ca_certs=/path/ca.pem",
]


@pytest.mark.parametrize("service", ["ingestion", "worker"])
@pytest.mark.parametrize("redis_url", DOCUMENTED_REDIS_URLS)
def test_every_documented_redis_url_publishes_through_the_projects_transport(service, redis_url):
    """Kombu's stock transport would answer a lost EXEC reply with "not queued" and write the
    ledger entry apart from the message."""
    app = create_app(service, Settings(redis_url=redis_url, mongo_uri="mongodb://127.0.0.1:1/unused"))
    with app.extensions["celery"].connection_for_write() as connection:
        assert type(connection.transport) is transport.Transport
        assert connection.transport.Channel is transport.Channel


@pytest.mark.parametrize(
    "redis_url",
    ["sentinel://sentinel-1:26379;sentinel://sentinel-2:26379", "unix:///run/redis.sock", "127.0.0.1:6379"],
)
def test_a_redis_url_of_another_form_is_refused_at_start_up_naming_the_forms_served(redis_url):
    with pytest.raises(ValueError, match=r"REDIS_URL.*redis://.*rediss://"):
        Settings.from_env({"REDIS_URL": redis_url})
