"""`homeserver export-user` and `export-room`, run as the administrator runs them:
a process reading the server's config, with media encrypted at rest."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from homeserver.__main__ import _parser, main
from homeserver.config import config_to_dict
from homeserver.export import cli as export_cli
from tests.conftest import RunningServer
from tests.export.checks import check_room_export, check_user_export
from tests.export.scenario import build


async def encrypted_server(server_factory: Any, tmp_path: Path) -> RunningServer:
    key = tmp_path / "media.key"
    assert main(["media-key", "generate", "--out", str(key)]) == 0
    return await server_factory(
        media={"encryption": {"enabled": True, "master_key_path": str(key)}}
    )


def write_config(hs: RunningServer, tmp_path: Path) -> Path:
    path = tmp_path / "homeserver.yaml"
    path.write_text(yaml.safe_dump(config_to_dict(hs.server.config)))
    return path


async def run_cli(*args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "homeserver",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def run_in_thread(
    hs: RunningServer, capsys: pytest.CaptureFixture[str], *args: str
) -> tuple[int, str, str]:
    """The command's own function, in a thread (a process costs seconds to start):
    what `homeserver export-...` runs once it has read the config."""
    code = await asyncio.to_thread(export_cli.run, hs.server.config, _parser().parse_args(args))
    out, err = capsys.readouterr()
    return code, out, err


async def test_exports_of_a_user_and_a_room(
    server_factory: Any,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    hs = await encrypted_server(server_factory, tmp_path)
    s = await build(hs)
    config = str(write_config(hs, tmp_path))

    user_dir = tmp_path / "out-user"
    code, out, err = await run_cli(
        "export-user", "alice", "--out", str(user_dir), "--config", config
    )
    assert code == 0, err
    assert f"exported user {s.alice}" in out
    # Not a terminal: no progress bar.
    assert "records" not in err
    await check_user_export(hs, user_dir, s)

    room_dir = tmp_path / "out-room"
    code, _, err = await run_in_thread(
        hs, capsys, "export-room", s.main_room, "--out", str(room_dir)
    )
    assert code == 0, err
    await check_room_export(hs, room_dir, s)

    # For compliance officers: the original content of redacted events. On a
    # terminal, with a progress bar.
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    full_dir = tmp_path / "out-room-full"
    code, _, err = await run_in_thread(
        hs, capsys, "export-room", s.main_room, "--out", str(full_dir), "--include-redacted"
    )
    assert code == 0, err
    assert f"export {s.main_room}: 100%" in err
    await check_room_export(hs, full_dir, s, include_redacted=True)


async def test_bad_targets_and_directories(
    hs: RunningServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    s = await build(hs)
    code, _, err = await run_in_thread(
        hs, capsys, "export-user", "nobody", "--out", str(tmp_path / "a")
    )
    assert (code, "Unknown user @nobody:localhost" in err) == (1, True)
    assert not (tmp_path / "a" / "manifest.json").exists()
    code, _, err = await run_in_thread(
        hs, capsys, "export-room", "!missing:localhost", "--out", str(tmp_path / "b")
    )
    assert code == 1 and "Unknown room" in err
    code, _, err = await run_in_thread(
        hs, capsys, "export-room", "not-a-room", "--out", str(tmp_path / "c")
    )
    assert code == 2 and "not a room id" in err

    # An export never mixes with other files.
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("mine")
    code, _, err = await run_in_thread(hs, capsys, "export-room", s.main_room, "--out", str(busy))
    assert code == 1 and "not an empty directory" in err
    assert sorted(p.name for p in busy.iterdir()) == ["notes.txt"]
