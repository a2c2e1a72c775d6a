"""The `workers` section of the config and `run --worker`: what a deployment
may say, and the clear refusal of what it may not."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from homeserver.__main__ import main
from homeserver.cluster.roles import ProcessRoles, Role, owner_of
from homeserver.cluster.worker_mode import worker_process
from homeserver.config import ConfigError, config_from_dict, load_config

SECRET = "s" * 40
EVERYTHING = [r.value for r in Role]


def data(workers: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "server_name": "example.org",
        "database": {"dsn": "postgresql://db.example.org/hs"},
        "worker_shared_secret": SECRET,
        "workers": workers,
        **extra,
    }


def worker(roles: list[str], n: int, **extra: Any) -> dict[str, Any]:
    return {
        "roles": roles,
        "client_listen": f"10.0.0.{n}:8008",
        "federation_listen": f"10.0.0.{n}:8448",
        "internal_listen": f"10.0.0.{n}:9000",
        **extra,
    }


def test_a_deployment_loads_and_each_worker_takes_its_listeners():
    config = config_from_dict(
        data({"reader": worker(["client"], 1), "main": worker(EVERYTHING, 2)})
    )
    assert set(config.workers) == {"reader", "main"}
    own, roles = worker_process(config, "reader")
    assert roles == ProcessRoles("reader", frozenset({Role.CLIENT}))
    assert own.client_listen == "10.0.0.1:8008" and own.federation_listen == "10.0.0.1:8448"
    assert not own.metrics.enabled
    alone, roles = worker_process(config, None)
    assert alone is config and roles.roles == frozenset(Role)


@pytest.mark.parametrize(
    ("workers", "extra", "message"),
    [
        ({"w": worker(["client", "chef"], 1)}, {}, "workers.w.roles: unknown role 'chef'"),
        ({"w": worker(EVERYTHING + ["client"], 1)}, {}, "'client' is listed twice"),
        ({"w": worker([], 1)}, {}, "workers.w.roles: give at least one role"),
        ({"W!": worker(EVERYTHING, 1)}, {}, "workers.W!: a worker name is"),
        ({"w": worker(["client"], 1)}, {}, "no worker has the role(s) event_persister"),
        (
            {"a": worker(EVERYTHING, 1), "b": worker(["client"], 1)},
            {},
            "workers.b.client_listen: 10.0.0.1:8008 is also workers.a.client_listen",
        ),
        (
            {"w": {**worker(EVERYTHING, 1), "federation_listen": None}},
            {},
            "workers.w.federation_listen: its roles answer other servers",
        ),
        (
            {"w": {**worker(EVERYTHING, 1), "internal_listen": None}},
            {},
            "workers.w.internal_listen",
        ),
        ({"w": worker(EVERYTHING, 1, colour="red")}, {}, "colour"),
        ({"w": worker(EVERYTHING, 1, client_listen="nowhere")}, {}, "workers.w.client_listen"),
        ({"w": worker(EVERYTHING, 1)}, {"worker_shared_secret": "short"}, "at least 32"),
        ({"w": worker(EVERYTHING, 1)}, {"worker_shared_secret": None}, "worker_shared_secret"),
        ({"w": worker(EVERYTHING, 1)}, {"database": {"dsn": None}}, "share database.dsn"),
    ],
)
def test_bad_workers_are_refused_with_a_clear_message(workers, extra, message):
    with pytest.raises(ConfigError) as e:
        config_from_dict({**data(workers), **extra})
    assert message in str(e.value)


def test_a_worker_named_twice_is_refused(tmp_path: Path):
    path = tmp_path / "homeserver.yaml"
    one = yaml.safe_dump({"w": worker(EVERYTHING, 1)})
    two = yaml.safe_dump({"w": worker(EVERYTHING, 2)})
    text = yaml.safe_dump({k: v for k, v in data({}).items() if k != "workers"})
    indent = "".join("  " + line + "\n" for line in (one + two).splitlines())
    path.write_text(text + "workers:\n" + indent)
    with pytest.raises(ConfigError) as e:
        load_config(path)
    assert "'w' is given twice" in str(e.value)


def test_the_shared_secret_may_come_from_a_file(tmp_path: Path):
    (tmp_path / "worker.secret").write_text(SECRET + "\n")
    body = data({"w": worker(EVERYTHING, 1)})
    del body["worker_shared_secret"]
    body["worker_shared_secret_path"] = "worker.secret"
    path = tmp_path / "homeserver.yaml"
    path.write_text(yaml.safe_dump(body))
    assert load_config(path).worker_shared_secret == SECRET


def test_run_with_a_worker_the_config_does_not_name(tmp_path: Path, capsys):
    path = tmp_path / "homeserver.yaml"
    path.write_text(yaml.safe_dump(data({"main": worker(EVERYTHING, 1)})))
    assert main(["run", "--config", str(path), "--worker", "nobody"]) == 1
    err = capsys.readouterr().err
    assert "--worker nobody: no such worker in the config (main)" in err


def test_owners_are_stable_and_spread():
    persisters = ["p1", "p2", "p3"]
    rooms = [f"!room{i}:example.org" for i in range(300)]
    owners = [owner_of(room, persisters) for room in rooms]
    assert owners == [owner_of(room, list(reversed(persisters))) for room in rooms]
    assert all(owners.count(p) > 60 for p in persisters)
    # A fourth persister takes rooms from the others and moves no other room.
    moved = [
        (before, after)
        for before, after in zip(
            owners, (owner_of(r, [*persisters, "p4"]) for r in rooms), strict=True
        )
        if before != after
    ]
    assert moved and all(after == "p4" for _, after in moved)


def test_destinations_are_sharded_over_the_sender_workers():
    from homeserver.cluster.federation_shards import sender_shards

    config = config_from_dict(
        data(
            {
                "a": worker(["federation_sender", "client"], 1),
                "b": worker(["federation_sender"], 2),
                "c": worker(EVERYTHING, 3),
            }
        )
    )
    _, roles = worker_process(config, "b")
    shards = sender_shards(config.workers, roles)
    assert [s.lease for s in shards] == [f"federation-sender-{i}-of-3" for i in range(3)]
    # The second shard is b's own (second by name); the others it leaves to
    # their own workers while those are connected.
    assert [s.defer_to for s in shards] == ["a", None, "c"]
    servers = [f"server{i}.example.org" for i in range(300)]
    owners = [[s.owns(d) for s in shards if s.owns] for d in servers]
    assert all(sum(flags) == 1 for flags in owners)  # each destination in one shard
    assert all(sum(f[i] for f in owners) > 60 for i in range(3))
    # One process alone: one sender for every destination, as always.
    (alone,) = sender_shards(config.workers, ProcessRoles.single_process())
    assert alone.owns is None and alone.name is None and alone.lease == "federation-sender"
