"""The `cluster` section of the config: when cluster mode is on, and what
it refuses."""

from __future__ import annotations

import pytest

from homeserver.config import ConfigError, config_from_dict
from homeserver.server import HomeServer
from tests.conftest import make_config

BASE = {"server_name": "example.org", "database": {"dsn": "postgresql://db/hs"}}


def test_off_unless_enabled():
    assert not config_from_dict(BASE).cluster_mode
    config = config_from_dict({**BASE, "cluster": {"enabled": True, "instance_name": "reader1"}})
    assert config.cluster_mode
    assert config.cluster.instance_name == "reader1"


@pytest.mark.parametrize(
    ("cluster", "database", "message"),
    [
        ({"enabled": True}, {}, "database.dsn"),
        ({"enabled": True, "instance_name": ""}, BASE["database"], "instance_name"),
        ({"enabled": "yes"}, BASE["database"], "cluster.enabled"),
        ({"enabled": True, "name": "a"}, BASE["database"], "name"),
    ],
)
def test_bad_cluster_sections_are_refused(cluster, database, message):
    with pytest.raises(ConfigError) as err:
        config_from_dict({"server_name": "example.org", "database": database, "cluster": cluster})
    assert message in str(err.value)


async def test_a_second_process_under_the_same_name_refuses_to_start(
    server_factory, database, tmp_path
):
    await server_factory(cluster={"enabled": True, "instance_name": "twin"})
    twin = HomeServer(
        make_config(database, tmp_path, cluster={"enabled": True, "instance_name": "twin"})
    )
    try:
        with pytest.raises(RuntimeError, match="twin"):
            await twin.start()
    finally:
        await twin.stop()
