// Drives the real matrix-js-sdk through the legacy endpoints Element still
// uses: A creates a world_readable room and talks in it; B, who has not
// joined, peeks into it with client.peekInRoom() (a room initialSync, then a
// long-polling /events?room_id= loop) and sees A's next message arrive live.
// B also makes the legacy global /initialSync call and reads /versions.
//
// Usage: node peek_flow.mjs <homeserver base URL>
//
// On success prints one JSON object with what B saw to stdout and exits 0.
// On failure prints the step and the error to stderr and exits 1.
// Everything js-sdk logs goes to stderr, so stdout holds only the JSON.

// Keep stdout for the result: js-sdk's logger writes through console.*.
for (const level of ["log", "info", "debug", "warn", "trace"]) {
    console[level] = (...args) => console.error(...args);
}

const { createClient, MatrixError, Method, RoomEvent } = await import("matrix-js-sdk");

const baseUrl = process.argv[2];
if (!baseUrl) {
    console.error("usage: node peek_flow.mjs <homeserver base URL>");
    process.exit(2);
}

const WAIT_MS = 20_000;
const password = "correct horse battery staple";
const tag = `${Date.now().toString(36)}${Math.floor(Math.random() * 1e6).toString(36)}`;
const result = {};
const clients = [];

class StepFailed extends Error {}

let currentStep = "start";
function step(name) {
    currentStep = name;
}

function check(condition, message) {
    if (!condition) throw new StepFailed(message);
}

function describeError(err) {
    if (err instanceof MatrixError) {
        return { httpStatus: err.httpStatus, errcode: err.errcode, data: err.data, url: err.url };
    }
    return { message: String(err?.stack ?? err) };
}

// Registers through the dummy UIA flow, as Element does.
async function registerClient(localpart) {
    const anon = createClient({ baseUrl });
    let session;
    try {
        await anon.registerRequest({ username: localpart, password });
        throw new StepFailed("register without auth succeeded; expected a 401 with UIA flows");
    } catch (err) {
        if (err instanceof StepFailed) throw err;
        session = err.data?.session;
    }
    const reg = await anon.registerRequest({ username: localpart, password, auth: { type: "m.login.dummy", session } });
    const client = createClient({ baseUrl, accessToken: reg.access_token, userId: reg.user_id, deviceId: reg.device_id });
    clients.push(client);
    return client;
}

function bodies(room) {
    return room
        .getLiveTimeline()
        .getEvents()
        .filter((e) => e.getType() === "m.room.message")
        .map((e) => e.getContent().body);
}

async function main() {
    step("register");
    const a = await registerClient(`peeka${tag}`);
    const b = await registerClient(`peekb${tag}`);

    step("A makes a world_readable room");
    const { room_id: roomId } = await a.createRoom({ name: "Peek room" });
    await a.sendStateEvent(roomId, "m.room.history_visibility", { history_visibility: "world_readable" }, "");
    await a.sendTextMessage(roomId, "before the peek");

    step("B peeks");
    const room = await b.peekInRoom(roomId);
    result.peek_name = room.name;
    result.peek_messages = bodies(room);
    result.peek_membership = room.getMyMembership();

    step("A's next message reaches B's peek");
    const live = new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new StepFailed("no live message in the peeked room")), WAIT_MS);
        b.on(RoomEvent.Timeline, (event, timelineRoom) => {
            if (timelineRoom?.roomId === roomId && event.getContent()?.body === "while peeking") {
                clearTimeout(timer);
                resolve(event.getSender());
            }
        });
    });
    await a.sendTextMessage(roomId, "while peeking");
    result.live_sender = await live;
    result.messages_after = bodies(room);
    b.stopPeeking();

    step("legacy calls at start-up");
    const initial = await a.http.authedRequest(Method.Get, "/initialSync", { limit: "1" });
    result.initial_rooms = initial.rooms.map((r) => ({
        room_id: r.room_id,
        membership: r.membership,
        messages: r.messages.chunk.map((e) => e.content.body ?? e.type),
    }));
    result.versions = await b.getVersions();
    result.room_id = roomId;
    result.a = a.getUserId();
}

let exitCode = 0;
try {
    await main();
    await new Promise((resolve) => process.stdout.write(JSON.stringify(result) + "\n", resolve));
} catch (err) {
    console.error(`peek_flow failed at step: ${currentStep}`);
    console.error(err instanceof StepFailed ? err.message : JSON.stringify(describeError(err), null, 2));
    console.error(`partial result: ${JSON.stringify(result)}`);
    exitCode = 1;
} finally {
    for (const c of clients) c.stopClient();
}
// The peek's /events request may still be waiting; do not wait for it.
process.exit(exitCode);
