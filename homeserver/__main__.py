"""The command line: run, generate-config, register-user, make-admin, migrate, media-key,
export-user, export-room, worker-routes."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import secrets
import signal
import sys
from pathlib import Path
from typing import Any

import yaml

from homeserver.cluster.roles import ProcessRoles
from homeserver.cluster.worker_mode import worker_process, worker_routes
from homeserver.config import Config, ConfigError, config_from_dict, config_to_dict, load_config
from homeserver.export import cli as export_cli
from homeserver.keyfiles import ensure_self_signed_certificate, ensure_signing_key
from homeserver.logs import setup_logging
from homeserver.media.encryption import MediaKeyError

DEFAULT_CONFIG = "data/homeserver.yaml"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="homeserver", description="A Matrix homeserver")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="start the server")
    run.add_argument("--config", default=DEFAULT_CONFIG)
    run.add_argument("--worker", help="run as this worker of the config's `workers`")

    gen = sub.add_parser("generate-config", help="write a new config file and keys")
    gen.add_argument("--config", default=DEFAULT_CONFIG, help="where to write the config")
    gen.add_argument("--server-name", default="localhost")
    gen.add_argument("--data-dir", default=".", help="relative to the config file's directory")
    gen.add_argument("--client-listen", default="127.0.0.1:8008", metavar="HOST:PORT")
    gen.add_argument("--federation-listen", default="127.0.0.1:8448", metavar="HOST:PORT")
    gen.add_argument("--database-dsn", help="default: embedded PostgreSQL in the data dir")
    gen.add_argument(
        "--open-registration",
        action="store_true",
        help="anyone may register, without a token (m.login.dummy)",
    )
    gen.add_argument("--disable-rate-limits", action="store_true")
    gen.add_argument(
        "--federation-insecure",
        action="store_true",
        help="accept self-signed certificates and private addresses (tests only)",
    )
    gen.add_argument("--force", action="store_true", help="overwrite an existing config")

    reg = sub.add_parser("register-user", help="create an account")
    reg.add_argument("--config", default=DEFAULT_CONFIG)
    reg.add_argument("--user", required=True, help="localpart or full user id")
    reg.add_argument("--password", help="default: read from the terminal or stdin")
    reg.add_argument("--admin", action="store_true")

    adm = sub.add_parser("make-admin", help="make an existing account a server admin")
    adm.add_argument("user", help="localpart or full user id")
    adm.add_argument("--config", default=DEFAULT_CONFIG)

    mig = sub.add_parser("migrate", help="apply database migrations and exit")
    mig.add_argument("--config", default=DEFAULT_CONFIG)

    key = sub.add_parser("media-key", help="make, rotate or apply the media master key")
    key_sub = key.add_subparsers(dest="key_command", required=True)
    key_gen = key_sub.add_parser("generate", help="write a new master key to a file")
    key_gen.add_argument("--out", required=True, type=Path)
    key_rot = key_sub.add_parser(
        "rotate", help="re-wrap every media file's key under a new master key (server stopped)"
    )
    key_rot.add_argument("--config", default=DEFAULT_CONFIG)
    key_rot.add_argument("--new-key-file", required=True, type=Path)
    key_enc = key_sub.add_parser(
        "encrypt-existing", help="encrypt the media files stored before encryption was on"
    )
    key_enc.add_argument("--config", default=DEFAULT_CONFIG)
    export_cli.add_commands(sub, DEFAULT_CONFIG)
    routes = sub.add_parser("worker-routes", help="print which worker answers which path")
    routes.add_argument("--config", default=DEFAULT_CONFIG)
    routes.add_argument("--nginx", action="store_true", help="print an nginx configuration")
    return parser


def media_key(args: argparse.Namespace) -> int:
    """The media-key commands."""
    from homeserver.media.encryption import load_master_key
    from homeserver.media.key_commands import (
        encrypt_existing,
        media_master_key,
        rotate,
        write_new_key,
    )

    try:
        if args.key_command == "generate":
            try:
                write_new_key(args.out)
            except FileExistsError:
                print(f"{args.out} exists already", file=sys.stderr)
                return 1
            print(f"wrote a new media master key to {args.out}")
            return 0
        config = load_config(args.config)
        master = media_master_key(config)
        if master is None:
            print("media.encryption is not enabled in the config", file=sys.stderr)
            return 2
        root = config.path(config.media.store_path)
        if args.key_command == "rotate":
            count = rotate(root, master, load_master_key(args.new_key_file, None))
            print(f"re-wrapped {count} files; now point media.encryption at {args.new_key_file}")
        else:
            count = encrypt_existing(root, master)
            print(f"encrypted {count} files")
    except (ConfigError, MediaKeyError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


def generate_config(args: argparse.Namespace) -> int:
    config_path = Path(args.config)
    if config_path.exists() and not args.force:
        print(f"{config_path} exists already; use --force to overwrite it", file=sys.stderr)
        return 1
    data: dict[str, Any] = {
        "server_name": args.server_name,
        "data_dir": args.data_dir,
        "client_listen": args.client_listen,
        "federation_listen": args.federation_listen,
        "database": {"dsn": args.database_dsn},
        "enable_registration": bool(args.open_registration),
        "registration_requires_token": not args.open_registration,
        "registration_shared_secret": secrets.token_urlsafe(32),
        "federation_insecure": bool(args.federation_insecure),
    }
    if args.disable_rate_limits:
        data["rate_limits"] = {"enabled": False}
    try:
        config = config_from_dict(data)
    except ConfigError as e:
        print(f"invalid option: {e}", file=sys.stderr)
        return 2
    config_path.parent.mkdir(parents=True, exist_ok=True)
    config_path.write_text(
        "# Generated by `homeserver generate-config`; config.example.yaml documents every key.\n"
        + yaml.safe_dump(config_to_dict(config), sort_keys=False)
    )
    config_path.chmod(0o600)
    config = load_config(config_path)
    ensure_signing_key(config.path(config.signing_key_path))
    ensure_self_signed_certificate(
        config.path(config.tls_certificate_path),
        config.path(config.tls_private_key_path),
        config.server_name,
    )
    print(f"wrote {config_path}")
    return 0


async def _run(config: Config, roles: ProcessRoles) -> None:
    from homeserver.server import HomeServer

    server = HomeServer(config, roles)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await server.start()
    try:
        await stop.wait()
    finally:
        await server.stop()


async def _with_database(config: Config, action: Any) -> Any:
    from homeserver.server import open_database

    pool, embedded = await open_database(config)
    try:
        return await action(pool)
    finally:
        await pool.close()
        if embedded is not None:
            await asyncio.to_thread(embedded.stop)


async def _register_user(config: Config, user: str, password: str, admin: bool) -> str:
    from homeserver.accounts.passwords import PasswordHasher
    from homeserver.identifiers import is_valid_localpart, user_id_for
    from storage.users import UserExistsError, UserStore

    localpart = user[1:].partition(":")[0] if user.startswith("@") else user
    if not is_valid_localpart(localpart):
        raise ConfigError(f"invalid user name {localpart!r}: use a-z, 0-9 and . _ = - / +")
    user_id = user_id_for(localpart, config.server_name)
    password_hash = await PasswordHasher(config.bcrypt_rounds).hash(password)

    async def create(pool: Any) -> None:
        try:
            await UserStore(pool).create_user(
                user_id, password_hash, admin=admin, displayname=localpart
            )
        except UserExistsError:
            raise ConfigError(f"{user_id} exists already") from None

    await _with_database(config, create)
    return user_id


async def _make_admin(config: Config, user: str) -> str:
    from homeserver.identifiers import user_id_for
    from storage.admin_users import AdminUserStore
    from storage.users import UserStore

    user_id = user if user.startswith("@") else user_id_for(user, config.server_name)

    async def promote(pool: Any) -> None:
        if await UserStore(pool).get_user(user_id) is None:
            raise ConfigError(f"{user_id} does not exist")
        await AdminUserStore(pool).set_flag(user_id, "admin", True)

    await _with_database(config, promote)
    return user_id


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "generate-config":
        return generate_config(args)
    if args.command == "media-key":
        return media_key(args)
    try:
        config = load_config(args.config)
    except ConfigError as e:
        print(f"configuration error: {e}", file=sys.stderr)
        return 2
    setup_logging(config.log_level)
    try:
        if args.command == "run":
            config, roles = worker_process(config, args.worker)
            asyncio.run(_run(config, roles))
        elif args.command == "worker-routes":
            return worker_routes(config, nginx=args.nginx)
        elif args.command == "migrate":
            asyncio.run(_with_database(config, lambda pool: asyncio.sleep(0)))
        elif args.command == "register-user":
            password = args.password
            if password is None:
                password = (
                    getpass.getpass("Password: ")
                    if sys.stdin.isatty()
                    else sys.stdin.readline().rstrip("\n")
                )
            if not password:
                print("a password is required", file=sys.stderr)
                return 2
            user_id = asyncio.run(_register_user(config, args.user, password, args.admin))
            print(f"created {user_id}")
        elif args.command == "make-admin":
            user_id = asyncio.run(_make_admin(config, args.user))
            print(f"{user_id} is now a server admin")
        elif args.command in export_cli.COMMANDS:
            return export_cli.run(config, args)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except MediaKeyError as e:
        # A wrong or missing media master key: said in one line, not as a traceback.
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
