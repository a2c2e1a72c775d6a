// Drives the real matrix-js-sdk through delayed events (MSC4140), as Element
// Call uses them: a delayed message (`_unstable_sendDelayedEvent`) that
// arrives over /sync after its delay, a delayed state event
// (`_unstable_sendDelayedStateEvent`) listed by `_unstable_getDelayedEvents`,
// restarted and then sent at once by `_unstable_updateDelayedEvent`, one
// cancelled before its time, and an unknown delay id.
//
// Usage: node delayed_events_flow.mjs <homeserver base URL>
//
// On success prints one JSON object with what the client saw to stdout and
// exits 0. On failure prints the step and the error to stderr and exits 1.

// Keep stdout for the result: js-sdk's logger writes through console.*.
for (const level of ["log", "info", "debug", "warn", "trace"]) {
    console[level] = (...args) => console.error(...args);
}

const { createClient, MatrixError, RoomEvent } = await import("matrix-js-sdk");

const baseUrl = process.argv[2];
if (!baseUrl) {
    console.error("usage: node delayed_events_flow.mjs <homeserver base URL>");
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

function describeError(err) {
    if (err instanceof MatrixError) {
        return { httpStatus: err.httpStatus, errcode: err.errcode, data: err.data, url: err.url };
    }
    return { message: String(err?.stack ?? err) };
}

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

// Resolves with the first live timeline event of `roomId` that `match` accepts.
function nextEvent(client, roomId, match, what) {
    return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new StepFailed(`no ${what} within ${WAIT_MS} ms`)), WAIT_MS);
        client.on(RoomEvent.Timeline, (event, room) => {
            if (room?.roomId === roomId && match(event)) {
                clearTimeout(timer);
                resolve(event);
            }
        });
    });
}

async function main() {
    step("register and sync");
    const a = await registerClient(`delayed${tag}`);
    result.supported = await a.doesServerSupportUnstableFeature("org.matrix.msc4140");
    const { room_id: roomId } = await a.createRoom({ name: "Delayed room" });
    const synced = new Promise((resolve) => a.once("sync", resolve));
    await a.startClient({ initialSyncLimit: 5 });
    await synced;

    step("a delayed message arrives after its delay");
    const arrived = nextEvent(a, roomId, (e) => e.getContent()?.body === "later", "delayed message");
    const scheduledAt = Date.now();
    const message = await a._unstable_sendDelayedEvent(roomId, { delay: 300 }, null, "m.room.message", {
        msgtype: "m.text",
        body: "later",
    });
    result.message_delay_id = message.delay_id;
    const event = await arrived;
    result.message_waited_ms = Date.now() - scheduledAt;
    result.message_unsigned_delay_id = event.getUnsigned()["org.matrix.msc4140.delay_id"] ?? null;

    step("a delayed state event, listed, restarted, sent at once");
    const state = await a._unstable_sendDelayedStateEvent(
        roomId,
        { delay: 60_000 },
        "org.example.call.member",
        { left: true },
        a.getUserId(),
    );
    result.state_delay_id = state.delay_id;
    const listed = await a._unstable_getDelayedEvents();
    result.listed = listed.delayed_events.map((d) => ({
        delay_id: d.delay_id,
        type: d.type,
        state_key: d.state_key,
        delay: d.delay,
        running_since: d.running_since,
        content: d.content,
    }));
    result.restart = await a._unstable_updateDelayedEvent(state.delay_id, "restart");
    const stateArrived = nextEvent(a, roomId, (e) => e.getType() === "org.example.call.member", "delayed state");
    result.send = await a._unstable_updateDelayedEvent(state.delay_id, "send");
    const stateEvent = await stateArrived;
    result.state_content = stateEvent.getContent();
    result.state_key = stateEvent.getStateKey();
    result.user_id = a.getUserId();

    step("a cancelled delayed message never arrives");
    const cancelled = await a._unstable_sendDelayedEvent(roomId, { delay: 300 }, null, "m.room.message", {
        msgtype: "m.text",
        body: "never",
    });
    result.cancel = await a._unstable_updateDelayedEvent(cancelled.delay_id, "cancel");
    // The marker is sent after the cancelled one was due: were it sent, it came first.
    await new Promise((resolve) => setTimeout(resolve, 500));
    const marker = nextEvent(a, roomId, (e) => e.getContent()?.body === "marker", "marker");
    await a.sendTextMessage(roomId, "marker");
    await marker;
    result.bodies = a
        .getRoom(roomId)
        .getLiveTimeline()
        .getEvents()
        .filter((e) => e.getType() === "m.room.message")
        .map((e) => e.getContent().body);
    result.remaining = (await a._unstable_getDelayedEvents()).delayed_events.length;

    step("an unknown delay id");
    try {
        await a._unstable_updateDelayedEvent("de_nothing", "restart");
        result.unknown = { ok: true };
    } catch (err) {
        result.unknown = describeError(err);
    }
}

let exitCode = 0;
try {
    await main();
    await new Promise((resolve) => process.stdout.write(JSON.stringify(result) + "\n", resolve));
} catch (err) {
    console.error(`delayed_events_flow failed at step: ${currentStep}`);
    console.error(err instanceof StepFailed ? err.message : JSON.stringify(describeError(err), null, 2));
    console.error(`partial result: ${JSON.stringify(result)}`);
    exitCode = 1;
} finally {
    for (const c of clients) c.stopClient();
}
process.exit(exitCode);
