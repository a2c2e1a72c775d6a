"""What the phases of `scale.py` share: the server under test (ours or
Synapse) with handles on its process and database, CPU accounting per
operation, the time budget of a phase, and database figures (rows written,
relation sizes).

CPU of an operation is the server process's plus that of the PostgreSQL
backends connected to its database (from /proc, so PostgreSQL must run on
this machine), excluding the bench's own connection to that database.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import os
import shutil
import signal
import statistics
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
from _server import percentile

SERVER_NAME = "bench.local"


@dataclass
class Target:
    """One server under test."""

    name: str
    url: str
    fed_url: str
    pid: int
    database: str
    version: str
    # To the PostgreSQL server (pg_stat_activity) and to the target's own database.
    admin: asyncpg.Connection | None = None
    db: asyncpg.Connection | None = None
    db_pid: int = 0


def process_cpu(pid: int) -> float:
    """CPU seconds of a process so far, all its threads (Synapse runs its
    database calls in a thread pool), to the nanosecond: the scheduler's
    run time from /proc/<pid>/task/*/schedstat, where /proc's user and
    system times count in 10 ms ticks, too coarse for one request."""
    total = 0
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{task}/schedstat") as f:
                total += int(f.read().split()[0])
        except (OSError, ValueError):
            continue  # the thread ended meanwhile
    return total / 1e9


def _postgres_cpu(pid: int) -> float | None:
    """CPU seconds of a PostgreSQL backend on this machine (None if there is
    no such process here)."""
    try:
        with open(f"/proc/{pid}/comm") as f:
            if not f.read().startswith("postgres"):
                return None
    except OSError:
        return None
    try:
        return process_cpu(pid)
    except OSError:
        return None


def rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


async def _backends(target: Target) -> dict[int, float]:
    assert target.admin is not None
    rows = await target.admin.fetch(
        "SELECT pid FROM pg_stat_activity WHERE datname = $1 AND pid <> $2",
        target.database,
        target.db_pid,
    )
    cpu = {row["pid"]: _postgres_cpu(row["pid"]) for row in rows}
    return {pid: v for pid, v in cpu.items() if v is not None}


class CpuMeter:
    """CPU seconds of the server and its backends between `start` and `stop`."""

    def __init__(self, target: Target) -> None:
        self.target = target
        self.server = 0.0
        self.pg = 0.0

    async def start(self) -> None:
        self._pg0 = await _backends(self.target)
        self._cpu0 = process_cpu(self.target.pid)

    async def stop(self) -> float:
        """Total CPU seconds (server + PostgreSQL) of the interval."""
        self.server = process_cpu(self.target.pid) - self._cpu0
        after = await _backends(self.target)
        # Backends opened during the interval started from zero.
        self.pg = sum(v - self._pg0.get(pid, 0.0) for pid, v in after.items())
        return self.server + self.pg


# Where `profiled` writes py-spy profiles of our server (scale.py --profile).
PROFILE_DIR: Path | None = None


@contextlib.asynccontextmanager
async def profiled(target: Target, label: str) -> AsyncIterator[None]:
    """Sample our server's stacks with py-spy while the block runs, when
    --profile asked for it: <label>.txt (collapsed stacks, for flame graphs)
    and <label>.top.txt (the functions most often on top of the stack)."""
    spy = shutil.which("py-spy") or shutil.which(str(Path(sys.executable).with_name("py-spy")))
    if PROFILE_DIR is None or target.name != "ours" or spy is None:
        yield
        return
    out = PROFILE_DIR / f"{label}.txt"
    proc = await asyncio.create_subprocess_exec(
        spy,
        "record",
        "-p",
        str(target.pid),
        "-f",
        "raw",
        "-r",
        "250",
        "--nonblocking",
        "-o",
        str(out),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    await asyncio.sleep(1.0)  # attached
    try:
        yield
    finally:
        proc.send_signal(signal.SIGINT)
        await proc.wait()
        if out.exists():
            _top_frames(out)


def _top_frames(collapsed: Path, count: int = 25) -> None:
    """The functions most often on top of the sampled stacks (own time), and
    those most often anywhere on them (time including callees)."""
    own: collections.Counter[str] = collections.Counter()
    total: collections.Counter[str] = collections.Counter()
    samples = 0
    for line in collapsed.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        if not n.isdigit():
            continue
        frames = stack.split(";")
        samples += int(n)
        own[frames[-1]] += int(n)
        for frame in set(frames):
            total[frame] += int(n)
    lines = [f"{samples} samples; own time:"]
    lines += [f"{n / samples:6.1%}  {f}" for f, n in own.most_common(count)]
    lines += ["", "including callees:"]
    lines += [f"{n / samples:6.1%}  {f}" for f, n in total.most_common(count * 2)]
    collapsed.with_suffix(".top.txt").write_text("\n".join(lines) + "\n")


class Budget:
    """The wall-clock time a phase may take on one server."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.deadline = time.monotonic() + seconds

    @property
    def exhausted(self) -> bool:
        return time.monotonic() > self.deadline


class CheckFailed(Exception):
    """A server's answer was wrong (a check of what is measured failed): the
    run stops, keeping the figures so far. Not SystemExit, which asyncio
    lets escape from the tasks of a gather past every handler."""


class OverBudget(Exception):
    """A phase ran out of its time budget while growing to a size."""


def summary(seconds: list[float], cpu: list[float]) -> dict[str, float]:
    """p50/p99 latency and mean CPU (server + PostgreSQL) in ms of some operations."""
    ordered = sorted(seconds)
    return {
        "p50_ms": round(percentile(ordered, 0.5) * 1000, 2),
        "p99_ms": round(percentile(ordered, 0.99) * 1000, 2),
        "cpu_ms": round(statistics.fmean(cpu) * 1000, 2),
    }


async def timed(target: Target, call: Any) -> tuple[Any, float, float]:
    """Run one awaitable alone: (its result, wall seconds, CPU seconds)."""
    meter = CpuMeter(target)
    await meter.start()
    t0 = time.perf_counter()
    result = await call
    elapsed = time.perf_counter() - t0
    return result, elapsed, await meter.stop()


def quiet_filter(nonce: str, timeline_limit: int = 5) -> dict[str, Any]:
    """A /sync filter with a presence type of its own: no two requests share
    it, so no server answers one from a cache of whole responses (Synapse
    keeps them for two minutes) and concurrent polls are not merged."""
    return {
        "presence": {"types": [f"bench.nonce.{nonce}"]},
        "room": {"timeline": {"limit": timeline_limit}},
    }


async def rows_written(target: Target) -> int:
    """Rows inserted, updated or deleted in the target's tables so far, as
    PostgreSQL's statistics show them (backends report within ~10 s)."""
    assert target.db is not None
    await target.db.execute("SELECT pg_stat_clear_snapshot()")
    value = await target.db.fetchval(
        "SELECT coalesce(sum(n_tup_ins + n_tup_upd + n_tup_del), 0) FROM pg_stat_user_tables"
    )
    return int(value)


async def settled_rows_written(target: Target) -> int:
    """`rows_written` once every backend has reported: PostgreSQL flushes a
    backend's counts at most once a second, and an idle one within 10 s."""
    last = await rows_written(target)
    stable_since = time.monotonic()
    give_up = time.monotonic() + 12
    while time.monotonic() < give_up:
        await asyncio.sleep(0.5)
        now = await rows_written(target)
        if now != last:
            last, stable_since = now, time.monotonic()
        elif time.monotonic() - stable_since >= 10.5:
            break
    return last


async def wal_bytes(target: Target) -> int:
    """The WAL position of the PostgreSQL server (shared by both servers)."""
    assert target.db is not None
    return int(await target.db.fetchval("SELECT pg_current_wal_lsn() - '0/0'::pg_lsn"))


async def relation_bytes(target: Target, tables: tuple[str, ...]) -> int:
    """Total size (heap, indexes, TOAST) of those of `tables` that exist."""
    assert target.db is not None
    value = await target.db.fetchval(
        "SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0) FROM pg_class c "
        "JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = 'public' AND c.relkind = 'r' AND c.relname = ANY($1::text[])",
        list(tables),
    )
    return int(value)


async def database_bytes(target: Target) -> int:
    assert target.db is not None
    return int(await target.db.fetchval("SELECT pg_database_size(current_database())"))


@dataclass
class PhaseResult:
    """One phase on one server: a point per size reached, and whether the
    budget stopped it before the largest size asked for."""

    points: list[dict[str, Any]] = field(default_factory=list)
    stopped_by_budget: bool = False
    note: str = ""

    def as_json(self) -> dict[str, Any]:
        return {
            "points": self.points,
            "stopped_by_budget": self.stopped_by_budget,
            "largest_size": self.points[-1]["size"] if self.points else None,
            "note": self.note,
        }
