"""A throw-away OpenLDAP directory: Debian's slapd as a child process on loopback.

The configuration (slapd.conf), the database and the TLS files live in a
temporary directory; slapd runs in the foreground (`-d 0`), so stopping it is
killing our own child. The same database survives a stop and start, which is
how the tests take the directory down and bring it back.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

import ldap3

SLAPD = shutil.which("slapd") or "/usr/sbin/slapd"
SCHEMA_DIR = Path("/etc/ldap/schema")
MODULE_DIR = Path("/usr/lib/ldap")
SUFFIX = "dc=example,dc=org"
ADMIN_DN = f"cn=admin,{SUFFIX}"
ADMIN_PASSWORD = "admin-secret"
PEOPLE = f"ou=people,{SUFFIX}"
# The service account that searches for users (search-then-bind).
SEARCHER_DN = f"cn=matrix,{SUFFIX}"
SEARCHER_PASSWORD = "searcher-secret"


def slapd_available() -> bool:
    return Path(SLAPD).is_file() and (SCHEMA_DIR / "inetorgperson.schema").is_file()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Slapd:
    def __init__(self, directory: Path, *, tls: tuple[Path, Path, Path] | None = None) -> None:
        """`tls`: (CA file, certificate, key) to serve ldaps:// and StartTLS."""
        self.directory = directory
        self.port = free_port()
        self.ldaps_port = free_port() if tls else None
        self._process: subprocess.Popen[bytes] | None = None
        (directory / "db").mkdir(parents=True, exist_ok=True)
        lines = [
            *(
                f"include {SCHEMA_DIR / name}.schema"
                for name in ("core", "cosine", "inetorgperson", "nis")
            ),
            f"pidfile {directory / 'slapd.pid'}",
            f"modulepath {MODULE_DIR}",
            "moduleload back_mdb",
        ]
        if tls:
            ca, cert, key = tls
            lines += [
                f"TLSCACertificateFile {ca}",
                f"TLSCertificateFile {cert}",
                f"TLSCertificateKeyFile {key}",
            ]
        lines += [
            "database mdb",
            "maxsize 16777216",
            f'suffix "{SUFFIX}"',
            f'rootdn "{ADMIN_DN}"',
            f"rootpw {ADMIN_PASSWORD}",
            f"directory {directory / 'db'}",
            "access to attrs=userPassword by anonymous auth by * none",
            "access to * by * read",
        ]
        (directory / "slapd.conf").write_text("\n".join(lines) + "\n")

    @property
    def uri(self) -> str:
        return f"ldap://127.0.0.1:{self.port}"

    @property
    def ldaps_uri(self) -> str:
        return f"ldaps://127.0.0.1:{self.ldaps_port}"

    def start(self) -> None:
        listen = self.uri + "/"
        if self.ldaps_port:
            listen += " " + self.ldaps_uri + "/"
        # The child keeps its own copy of the log's file descriptor.
        with open(self.directory / "slapd.log", "ab") as log:
            self._process = subprocess.Popen(
                [SLAPD, "-f", str(self.directory / "slapd.conf"), "-h", listen, "-d", "0"],
                stdout=subprocess.DEVNULL,
                stderr=log,
            )
        deadline = time.monotonic() + 10
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                if self._process.poll() is not None or time.monotonic() > deadline:
                    log = (self.directory / "slapd.log").read_text(errors="replace")
                    raise RuntimeError(f"slapd did not start:\n{log}") from None
                time.sleep(0.05)

    def stop(self) -> None:
        if self._process is not None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
            self._process = None

    def admin(self) -> ldap3.Connection:
        return ldap3.Connection(self.uri, ADMIN_DN, ADMIN_PASSWORD, auto_bind=True)

    def populate(self) -> None:
        """The organisation, the searcher account and a few people."""
        with self.admin() as conn:
            conn.add(SUFFIX, ["dcObject", "organization"], {"o": "Example", "dc": "example"})
            conn.add(PEOPLE, ["organizationalUnit"], {"ou": "people"})
            conn.add(
                SEARCHER_DN,
                ["organizationalRole", "simpleSecurityObject"],
                {"cn": "matrix", "userPassword": SEARCHER_PASSWORD},
            )
            self.add_person(conn, "alice", "Alice Liddell", "alice-pw", "staff")
            self.add_person(conn, "bob", "Bob Builder", "bob-pw", "staff")
            self.add_person(conn, "carol", "Carol Contractor", "carol-pw", "contractor")
            # Same name as a local account made before the directory was configured.
            self.add_person(conn, "dave", "Dave from LDAP", "dave-ldap-pw", "staff")

    @staticmethod
    def add_person(conn: ldap3.Connection, uid: str, name: str, password: str, kind: str) -> None:
        ok = conn.add(
            f"uid={uid},{PEOPLE}",
            ["inetOrgPerson"],
            {
                "uid": uid,
                "cn": name,
                "sn": name.split()[-1],
                "displayName": name,
                "mail": f"{uid}@example.org",
                "employeeType": kind,
                "userPassword": password,
            },
        )
        assert ok, conn.result
