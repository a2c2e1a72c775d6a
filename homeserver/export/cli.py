"""`homeserver export-user` and `homeserver export-room`: an export written by
the command line, straight from the database named in the config (the server
may be running meanwhile), with a progress bar on a terminal."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

from tqdm import tqdm

from homeserver.config import Config
from homeserver.errors import MatrixError
from homeserver.export.exporter import Exporter, ExportRequest
from homeserver.export.writer import ExportDirError
from homeserver.identifiers import is_valid_room_id, is_valid_user_id, user_id_for

COMMANDS = ("export-user", "export-room")


def add_commands(sub: Any, default_config: str) -> None:
    """Add the two subcommands to the command line's subparsers."""
    for command, what, help_text in (
        ("export-user", "user", "export a user's data (events, profile, media...) to a directory"),
        ("export-room", "room", "export a room's events, state, members and media to a directory"),
    ):
        parser = sub.add_parser(command, help=help_text)
        parser.add_argument(
            what, help="localpart or user id" if what == "user" else "room id (!...)"
        )
        parser.add_argument("--out", required=True, type=Path, help="a new or empty directory")
        parser.add_argument(
            "--include-redacted",
            action="store_true",
            help="write redacted events' original content (for compliance officers)",
        )
        parser.add_argument("--config", default=default_config)


class _TerminalProgress:
    """A tqdm bar on stderr, silent when stderr is not a terminal."""

    def __init__(self, description: str) -> None:
        self._bar = tqdm(
            desc=description, unit=" records", disable=not sys.stderr.isatty(), file=sys.stderr
        )

    def set_total(self, total: int) -> None:
        self._bar.reset(total=total)

    def advance(self, count: int) -> None:
        self._bar.update(count)

    def close(self) -> None:
        self._bar.close()


async def _export(config: Config, request: ExportRequest, out: Path) -> None:
    from homeserver.erasure.content import ErasedContent
    from homeserver.media.files import MediaFiles
    from homeserver.media.key_commands import media_master_key
    from homeserver.rooms.format import EventFormatter
    from homeserver.server import open_database
    from storage.erasure import ErasureStore
    from storage.events import EventStore
    from storage.export import ExportStore
    from storage.state import StateStore

    files = MediaFiles(config.path(config.media.store_path), media_master_key(config))
    await asyncio.to_thread(files.prepare)
    pool, embedded = await open_database(config)
    progress = _TerminalProgress(f"export {request.target}")
    state = StateStore(pool)
    events = EventStore(pool, state)
    try:
        exporter = Exporter(
            ExportStore(pool, config.server_name),
            EventFormatter(events),
            ErasedContent(ErasureStore(pool), state, events),
            files,
            config.server_name,
        )
        await exporter.export(request, out, progress)
    finally:
        progress.close()
        await pool.close()
        if embedded is not None:
            await asyncio.to_thread(embedded.stop)


def run(config: Config, args: argparse.Namespace) -> int:
    """Run an export command; the exit status."""
    if args.command == "export-user":
        user = args.user
        target = user if user.startswith("@") else user_id_for(user, config.server_name)
        if not is_valid_user_id(target):
            print(f"error: {user!r} is not a user id", file=sys.stderr)
            return 2
        request = ExportRequest("user", target, args.include_redacted)
    else:
        if not is_valid_room_id(args.room):
            print(f"error: {args.room!r} is not a room id", file=sys.stderr)
            return 2
        request = ExportRequest("room", args.room, args.include_redacted)
    try:
        asyncio.run(_export(config, request, args.out))
    except MatrixError as e:
        print(f"error: {e.message}", file=sys.stderr)
        return 1
    except ExportDirError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"exported {request.kind} {request.target} to {args.out}")
    return 0
