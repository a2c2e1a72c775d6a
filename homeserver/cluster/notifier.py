"""The notifier of a process in a cluster: stream positions across processes.

Every process of a cluster writes every stream (events, receipts, typing,
...). Each is a writer: it announces how far it has persisted each stream
(storage/stream_writers.py: a row per stream and writer, and a `NOTIFY` with
the stream, the writer, the position and, when they fit, the users and rooms
concerned). Each is also a reader: it listens on one dedicated connection and
lets its waiting requests see a stream only up to the least position
announced by the live writers, so no reader skips a write another process
still has in flight.

- A writer with nothing in flight (for IDLE_AFTER_S) says so ("idle"):
  readers then do not wait for it, and see up to the highest position any
  writer announced. Before it takes its next position, an idle writer
  announces itself busy and waits for that to commit: PostgreSQL delivers
  notifications in commit order, so a reader hears "busy" before any
  position that another writer took after this one's. A busy writer with
  nothing in flight that hears another move past it announces that it is
  that far too. While an announcement is being sent, the next ones wait
  and go out together.
- A writer holds an advisory lock on its listening connection, and names
  all its database sessions after itself: when its process dies, the lock
  and the sessions go, and readers that it holds back check and stop
  waiting for it. (Should only its listening connection drop, its other
  sessions, where its positions in flight may still commit, keep it alive.)
- A reader whose connection drops reconnects, reads the table and wakes
  every waiting request of the streams that moved meanwhile.

Positions the process itself announces reach its own waiting requests at
once, without a round trip through PostgreSQL.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Iterable
from typing import Any

import asyncpg

from homeserver.cluster.stream_ids import ClusterStreamIds
from homeserver.notifier import Notifier
from storage import stream_writers
from storage.database import DatabaseUnavailableError

logger = logging.getLogger(__name__)

# PostgreSQL refuses a NOTIFY payload of 8000 bytes or more: past this the
# users and rooms are left out and readers wake every waiting request.
MAX_PAYLOAD = 7900
# How often the connection and writers that hold readers back are checked;
# a writer behind the others for two checks in a row is asked about.
CHECK_S = 0.5
RECONNECT_S = 0.5
# A writer says it is idle only after this long without taking a position:
# a writer that writes again soon saves the round trip of saying it is busy
# (meanwhile it follows the others, as a busy writer with nothing in flight).
IDLE_AFTER_S = 0.2
# How long a write waits for the notification connection to come back.
BUSY_WAIT_S = 10.0


class _Wakes:
    """Who the positions up to one position concern."""

    __slots__ = ("everyone", "rooms", "users")

    def __init__(self) -> None:
        self.users: set[str] = set()
        self.rooms: set[str] = set()
        self.everyone = False

    def add(self, users: Iterable[str], rooms: Iterable[str], everyone: bool = False) -> None:
        self.users.update(users)
        self.rooms.update(rooms)
        self.everyone = self.everyone or everyone


class ClusterNotifier(Notifier):
    """A Notifier whose `notify` means "this process persisted `stream` up to
    `position`", and whose positions are the cluster's."""

    shared = True

    def __init__(
        self, pool: asyncpg.Pool, dsn: str, instance: str, sequences: dict[str, str]
    ) -> None:
        super().__init__()
        self._pool = pool
        self._dsn = dsn
        self.instance = instance
        self._sequences = sequences
        self._conn: asyncpg.Connection | None = None
        self._connected = asyncio.Event()
        # One statement at a time on the connection (asyncpg's rule).
        self._conn_lock = asyncio.Lock()
        self._starts: dict[str, int] = {}
        # stream -> writer -> position, for the live writers (this one too).
        self._entries: dict[str, dict[str, int]] = {s: {} for s in sequences}
        # stream -> position -> who it concerns, until readers may see it.
        self._pending: dict[str, dict[int, _Wakes]] = {s: {} for s in sequences}
        self._ids: dict[str, ClusterStreamIds] = {}
        # Writes whose position the database assigns (Notifier.writing).
        self._busy: dict[str, int] = {}
        self._deferred: dict[str, int] = {}
        # What to announce next: stream -> (position, who it concerns).
        self._outbox: dict[str, tuple[int, _Wakes]] = {}
        self._send = asyncio.Event()
        self._suspects: set[str] = set()
        # Streams where the others were told (or are being told) this writer
        # is idle: its next position waits for a "busy" announcement.
        self._announced_idle: set[str] = set()
        # stream -> the other writers that said they are idle.
        self._idle_writers: dict[str, set[str]] = {s: set() for s in sequences}
        # stream -> when this writer last took a position (monotonic).
        self._last_taken: dict[str, float] = {}
        self._idle_timers: set[str] = set()
        self._tasks: list[asyncio.Task[None]] = []

    # Start and stop

    async def start(self) -> None:
        """Connect, register this writer on every stream (before it takes any
        position) and read where the others are."""
        await self._connect()
        assert self._conn is not None
        hello = [self._payload(s, 0, _Wakes(), idle=True) for s in self._sequences]
        self._starts = await stream_writers.register(
            self._conn, self.instance, self._sequences, hello
        )
        self._announced_idle = set(self._sequences)
        for stream, start in self._starts.items():
            self._entries[stream][self.instance] = start
        await self._catch_up()
        self._tasks = [
            asyncio.create_task(self._sender()),
            asyncio.create_task(self._keeper()),
        ]

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks = []
        if self._conn is not None and not self._conn.is_closed():
            # Readers stop waiting for this writer at once (or see its lock go).
            bye = json.dumps({"w": self.instance, "bye": True})
            with contextlib.suppress(Exception):
                async with self._conn_lock:
                    await stream_writers.say(self._conn, bye)
            with contextlib.suppress(Exception):
                await self._conn.close(timeout=5)
        self._conn = None

    def start_position(self, stream: str) -> int:
        return self._starts[stream]

    def track(self, stream: str, ids: ClusterStreamIds) -> None:
        self._ids[stream] = ids

    # This process as a writer

    def notify(
        self,
        stream: str,
        position: int,
        *,
        users: Iterable[str] = (),
        rooms: Iterable[str] = (),
    ) -> None:
        """This process persisted `stream` up to `position`; the positions it
        just published concern these users and rooms."""
        users, rooms = set(users), set(rooms)
        if users or rooms:
            self._wakes(stream, position).add(users, rooms)
        if self._busy.get(stream):
            self._deferred[stream] = max(self._deferred.get(stream, 0), position)
            return
        self._advance_own(stream, self._settled(stream, position), users, rooms)

    @contextlib.asynccontextmanager
    async def writing(self, stream: str) -> AsyncIterator[None]:
        self._busy[stream] = self._busy.get(stream, 0) + 1
        try:
            await self.busy(stream)
            yield
        finally:
            self._busy[stream] -= 1
            if not self._busy[stream] and stream in self._deferred:
                position = self._deferred.pop(stream)
                self._advance_own(stream, self._settled(stream, position), (), ())

    def _settled(self, stream: str, position: int) -> int:
        """How far this writer may announce itself after settling `position`:
        with nothing in flight, as far as any writer got (what it takes
        next is above every position handed out so far)."""
        if not self._writer_idle(stream):
            return position
        return max([position, *self._entries.get(stream, {}).values()])

    def _advance_own(
        self, stream: str, position: int, users: Iterable[str], rooms: Iterable[str]
    ) -> None:
        entries = self._entries.setdefault(stream, {})
        if position <= entries.get(self.instance, 0) and not (users or rooms):
            return
        entries[self.instance] = max(entries.get(self.instance, 0), position)
        queued = self._outbox.get(stream)
        wakes = queued[1] if queued else _Wakes()
        wakes.add(users, rooms)
        self._outbox[stream] = (max(position, queued[0] if queued else 0), wakes)
        self._send.set()
        self._advance(stream)

    async def busy(self, stream: str) -> None:
        """Before this writer takes a position of `stream` (the caller counts
        itself as taking one already): if the others were told it is idle,
        tell them it is not, and wait until that is committed."""
        self._last_taken[stream] = time.monotonic()
        if stream not in self._announced_idle:
            return
        try:
            async with asyncio.timeout(BUSY_WAIT_S):
                await self._connected.wait()
        except TimeoutError:
            # Answered 503 like any write while PostgreSQL cannot be reached.
            raise DatabaseUnavailableError("stream notifications are reconnecting") from None
        async with self._conn_lock:
            if stream not in self._announced_idle:
                return
            assert self._conn is not None
            position = self._entries[stream][self.instance]
            payload = self._payload(stream, position, _Wakes(), idle=False)
            await stream_writers.announce(
                self._conn, self.instance, {stream: (position, False)}, [payload], durable=True
            )
            self._announced_idle.discard(stream)

    def _quiet(self, stream: str) -> bool:
        """Idle, and for IDLE_AFTER_S: may be announced idle. If only the
        time is missing, announce again once it has passed."""
        if not self._writer_idle(stream):
            return False
        left = self._last_taken.get(stream, 0.0) + IDLE_AFTER_S - time.monotonic()
        if left <= 0:
            return True
        if stream not in self._idle_timers:
            self._idle_timers.add(stream)
            asyncio.get_running_loop().call_later(left, self._announce_again, stream)
        return False

    def _announce_again(self, stream: str) -> None:
        self._idle_timers.discard(stream)
        if stream in self._announced_idle or stream in self._outbox:
            return
        position = self._entries.get(stream, {}).get(self.instance)
        if position is not None:
            self._outbox[stream] = (position, _Wakes())
            self._send.set()

    def _writer_idle(self, stream: str) -> bool:
        ids = self._ids.get(stream)
        return (ids is None or ids.idle()) and not self._busy.get(stream)

    async def _sender(self) -> None:
        """Send what is queued, all of it at once; what is queued meanwhile
        goes out next (so announcements are debounced by the round trip)."""
        while True:
            await self._send.wait()
            self._send.clear()
            if not self._outbox:
                continue
            try:
                await self._connected.wait()
                async with self._conn_lock:
                    outbox, self._outbox = self._outbox, {}
                    # Idle or not as of now (with the lock: `busy` waits), and
                    # known as idle before the await, so that a position taken
                    # meanwhile is announced busy first.
                    idle = {s: self._quiet(s) for s in outbox}
                    self._announced_idle.update(s for s, i in idle.items() if i)
                    payloads = [self._payload(s, p, w, idle[s]) for s, (p, w) in outbox.items()]
                    assert self._conn is not None
                    await stream_writers.announce(
                        self._conn,
                        self.instance,
                        {s: (p, idle[s]) for s, (p, _) in outbox.items()},
                        payloads,
                    )
                    self._announced_idle.difference_update(s for s, i in idle.items() if not i)
            except (asyncpg.PostgresError, OSError, asyncpg.InterfaceError) as e:
                logger.warning("announcing stream positions failed (%s); again shortly", e)
                for stream, (position, wakes) in outbox.items():
                    queued = self._outbox.get(stream)
                    if queued is not None:
                        wakes.add(queued[1].users, queued[1].rooms, queued[1].everyone)
                        position = max(position, queued[0])
                    self._outbox[stream] = (position, wakes)
                self._send.set()
                await asyncio.sleep(RECONNECT_S)

    def _payload(self, stream: str, position: int, wakes: _Wakes, idle: bool) -> str:
        body: dict[str, Any] = {"s": stream, "w": self.instance, "p": position}
        if idle:
            body["i"] = True
        if wakes.users:
            body["u"] = sorted(wakes.users)
        if wakes.rooms:
            body["r"] = sorted(wakes.rooms)
        if wakes.everyone:
            body["a"] = True
        text = json.dumps(body, separators=(",", ":"))
        if len(text.encode()) <= MAX_PAYLOAD:
            return text
        return json.dumps({**body, "a": True, "u": [], "r": []}, separators=(",", ":"))

    # This process as a reader

    def _wakes(self, stream: str, position: int) -> _Wakes:
        pending = self._pending.setdefault(stream, {})
        wakes = pending.get(position)
        if wakes is None:
            wakes = pending[position] = _Wakes()
        return wakes

    def _heard(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        try:
            body = json.loads(payload)
            writer = body["w"]
            if writer == self.instance:
                return
            if body.get("bye"):
                self._drop({writer})
                return
            stream, position = body["s"], int(body["p"])
            users, rooms, everyone = body.get("u", ()), body.get("r", ()), body.get("a", False)
            idle = bool(body.get("i", False))
        except (ValueError, KeyError, TypeError):
            logger.warning("ignoring a malformed stream notification: %.200s", payload)
            return
        if stream not in self._sequences:
            return
        if users or rooms or everyone:
            self._wakes(stream, position).add(users, rooms, everyone)
        entries = self._entries.setdefault(stream, {})
        entries[writer] = max(entries.get(writer, 0), position)
        self._mark_idle(stream, writer, idle)
        self._follow(stream)

    def _mark_idle(self, stream: str, writer: str, idle: bool) -> None:
        idle_writers = self._idle_writers.setdefault(stream, set())
        if idle:
            idle_writers.add(writer)
        else:
            idle_writers.discard(writer)

    def _follow(self, stream: str, everyone: bool = False) -> None:
        """Another writer moved: this one, if idle, is persisted as far (and
        says so); then readers see what every writer persisted."""
        before = self.positions.get(stream, 0)
        entries = self._entries.get(stream, {})
        top = max(entries.values(), default=0)
        if (
            top > entries.get(self.instance, 0)
            and stream not in self._announced_idle
            and self._writer_idle(stream)
        ):
            self._advance_own(stream, top, (), ())
        self._advance(stream)
        if everyone and self.positions.get(stream, 0) > before:
            self.recent.lose_track(stream, self.positions[stream])
            self.wake_everyone()

    def _advance(self, stream: str) -> None:
        """Let waiting requests see `stream` up to the least live writer's
        position, waking those that the positions passed concern."""
        entries = self._entries.get(stream)
        if not entries:
            return
        # Everything up to the highest announced position is settled, but
        # for the positions busy writers may still have in flight.
        top = max(entries.values())
        low = min((p for w, p in entries.items() if self._holds_back(stream, w)), default=top)
        if low <= self.positions.get(stream, 0):
            return
        pending = self._pending.get(stream, {})
        woken = _Wakes()
        for position in [p for p in pending if p <= low]:
            wakes = pending.pop(position)
            woken.add(wakes.users, wakes.rooms, wakes.everyone)
        super().notify(stream, low, users=woken.users, rooms=woken.rooms)
        if woken.everyone:
            # The polls of people not named must not skip this stream.
            self.recent.lose_track(stream, low)
            self.wake_everyone()

    def _holds_back(self, stream: str, writer: str) -> bool:
        if writer == self.instance:
            return not self._writer_idle(stream)
        return writer not in self._idle_writers.get(stream, ())

    def _drop(self, writers: set[str]) -> None:
        """These writers are gone: they hold nobody back any more."""
        for stream, entries in self._entries.items():
            for writer in writers:
                entries.pop(writer, None)
                self._idle_writers.get(stream, set()).discard(writer)
            self._advance(stream)

    # The connection, catching up, dead writers

    async def _connect(self) -> None:
        conn = await asyncpg.connect(
            self._dsn,
            server_settings={"application_name": stream_writers.application_name(self.instance)},
        )
        try:
            if not await stream_writers.hold_instance(conn, self.instance):
                raise RuntimeError(
                    f"another process runs as cluster instance {self.instance!r}: "
                    "give each process its own cluster.instance_name"
                )
            await conn.add_listener(stream_writers.CHANNEL, self._heard)
        except BaseException:
            await conn.close()
            raise
        self._conn = conn
        self._connected.set()

    async def _catch_up(self) -> None:
        """Read every writer's position (after LISTEN: nothing falls between)
        and wake every waiting request of the streams that moved."""
        async with self._conn_lock:
            assert self._conn is not None
            rows = await stream_writers.positions(self._conn)
        for stream, writer, position, idle, alive in rows:
            if writer == self.instance or stream not in self._sequences:
                continue
            entries = self._entries.setdefault(stream, {})
            if alive:
                entries[writer] = max(entries.get(writer, 0), position)
                self._mark_idle(stream, writer, idle)
            else:
                entries.pop(writer, None)
        for stream in self._sequences:
            self._follow(stream, everyone=True)

    async def _keeper(self) -> None:
        while True:
            await asyncio.sleep(CHECK_S)
            try:
                if self._conn is None or self._conn.is_closed():
                    await self._reconnect()
                await self._check_writers()
            except (asyncpg.PostgresError, OSError, asyncpg.InterfaceError, RuntimeError) as e:
                logger.warning("stream notifications: %s; trying again", e)

    async def _reconnect(self) -> None:
        self._connected.clear()
        started = time.monotonic()
        await self._connect()
        # Announce again where this writer is: readers may have dropped it
        # while its lock was gone.
        for stream, entries in self._entries.items():
            if self.instance in entries:
                self._outbox.setdefault(stream, (entries[self.instance], _Wakes()))
        self._send.set()
        await self._catch_up()
        logger.info(
            "stream notifications reconnected in %.0f ms", (time.monotonic() - started) * 1000
        )

    async def _check_writers(self) -> None:
        """Writers behind the others at two checks in a row: drop the dead."""
        behind = set()
        for stream, entries in self._entries.items():
            if entries:
                top = max(entries.values())
                behind.update(
                    w
                    for w, p in entries.items()
                    if p < top and w != self.instance and self._holds_back(stream, w)
                )
        suspects, self._suspects = behind & self._suspects, behind
        if not suspects:
            return
        async with self._conn_lock:
            assert self._conn is not None
            dead = suspects - await stream_writers.alive(self._conn, sorted(suspects))
        if dead:
            logger.info("stream writers gone: %s", ", ".join(sorted(dead)))
            self._drop(dead)
