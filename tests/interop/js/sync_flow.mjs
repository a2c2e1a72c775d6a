// Drives two real matrix-js-sdk clients through /sync against a running
// homeserver, the way Element lives: both start their sync loops until
// PREPARED; A creates a room and invites B; B sees the invite and joins; A
// sends a message that reaches B's live timeline; B replies and A receives it.
// B's attempt to send before joining is refused and never reaches A.
// No crypto is initialised (js-sdk works without it; rooms are unencrypted).
//
// Usage: node sync_flow.mjs <homeserver base URL>
//
// On success prints one JSON object with what each client saw to stdout and
// exits 0. On failure prints the step and the error to stderr and exits 1.
// Everything js-sdk logs goes to stderr, so stdout holds only the JSON.

// Keep stdout for the result: js-sdk's logger writes through console.*.
for (const level of ["log", "info", "debug", "warn", "trace"]) {
    console[level] = (...args) => console.error(...args);
}

const { createClient, ClientEvent, RoomEvent, RoomMemberEvent, MatrixError, Method, SyncState } = await import(
    "matrix-js-sdk"
);

const baseUrl = process.argv[2];
if (!baseUrl) {
    console.error("usage: node sync_flow.mjs <homeserver base URL>");
    process.exit(2);
}

// How long one step may wait for the other client's sync to deliver something.
const WAIT_MS = 20_000;
const password = "correct horse battery staple";
const tag = `${Date.now().toString(36)}${Math.floor(Math.random() * 1e6).toString(36)}`;
const roomName = "js-sdk sync room";
const messageBody = "Hello from A, through /sync ✓";
const replyBody = "Hello back from B";
const result = {};

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

// Awaits a promise expected to reject with a MatrixError; returns what it carried.
async function expectMatrixError(promise, what) {
    try {
        const value = await promise;
        throw new StepFailed(`${what}: expected an error, got ${JSON.stringify(value)}`);
    } catch (err) {
        if (err instanceof StepFailed) throw err;
        check(err instanceof MatrixError, `${what}: expected a MatrixError, got ${err?.stack ?? err}`);
        return { httpStatus: err.httpStatus, errcode: err.errcode };
    }
}

// Registers through the dummy UIA flow, as Element does; returns a client
// that has not started syncing yet.
async function registerClient(localpart) {
    const anon = createClient({ baseUrl });
    let session;
    try {
        await anon.registerRequest({ username: localpart, password });
        throw new StepFailed("register without auth succeeded; expected a 401 with UIA flows");
    } catch (err) {
        if (err instanceof StepFailed) throw err;
        check(err instanceof MatrixError && err.httpStatus === 401, `register: ${err?.stack ?? err}`);
        session = err.data?.session;
    }
    const reg = await anon.registerRequest({
        username: localpart,
        password,
        auth: { type: "m.login.dummy", session },
    });
    check(reg.user_id && reg.access_token, `register response incomplete: ${JSON.stringify(reg)}`);
    return createClient({ baseUrl, accessToken: reg.access_token, userId: reg.user_id, deviceId: reg.device_id });
}

// Watches what a client's sync loop delivers: its sync states, the live
// timeline events it emits, and membership changes.
function watch(client, name) {
    const seen = { name, syncStates: [], syncErrors: [], timeline: [], memberships: [] };
    client.on(ClientEvent.Sync, (state, _prev, data) => {
        if (seen.syncStates.at(-1) !== state) seen.syncStates.push(state);
        if (state === SyncState.Error) seen.syncErrors.push(String(data?.error?.message ?? data?.error));
    });
    client.on(RoomEvent.Timeline, (event, room, toStartOfTimeline) => {
        if (toStartOfTimeline) return;
        seen.timeline.push({
            room_id: room?.roomId ?? null,
            event_id: event.getId(),
            type: event.getType(),
            sender: event.getSender(),
            body: event.getContent()?.body ?? null,
            local_echo: event.status !== null,
        });
    });
    client.on(RoomMemberEvent.Membership, (_event, member, oldMembership) => {
        seen.memberships.push({
            room_id: member.roomId,
            user_id: member.userId,
            membership: member.membership,
            old: oldMembership ?? null,
        });
    });
    return seen;
}

// Resolves once `condition()` holds: checked now and after each of the
// client's sync, room and timeline events, so nothing emitted before the
// call is missed. Fails with `what` after WAIT_MS.
function waitUntil(client, what, condition) {
    const events = [ClientEvent.Sync, ClientEvent.Room, RoomEvent.Timeline, RoomEvent.MyMembership, RoomMemberEvent.Membership];
    return new Promise((resolve, reject) => {
        const finish = (error, value) => {
            clearTimeout(timer);
            for (const name of events) client.off(name, recheck);
            if (error) reject(error);
            else resolve(value);
        };
        const recheck = () => {
            try {
                const value = condition();
                if (value) finish(null, value);
            } catch (err) {
                finish(err);
            }
        };
        const timer = setTimeout(
            () => finish(new StepFailed(`${client.getUserId()}: timed out after ${WAIT_MS} ms waiting for ${what}`)),
            WAIT_MS,
        );
        for (const name of events) client.on(name, recheck);
        recheck();
    });
}

async function startSyncing(client, seen) {
    client.startClient({ initialSyncLimit: 20 });
    await waitUntil(client, "the sync state PREPARED", () => seen.syncStates.includes(SyncState.Prepared)).catch((err) => {
        throw new StepFailed(`${err.message}; sync states ${JSON.stringify(seen.syncStates)}, errors ${JSON.stringify(seen.syncErrors)}`);
    });
}

function liveMessages(client, roomId) {
    const room = client.getRoom(roomId);
    if (!room) return [];
    return room
        .getLiveTimeline()
        .getEvents()
        .filter((e) => e.getType() === "m.room.message")
        .map((e) => ({ event_id: e.getId(), sender: e.getSender(), body: e.getContent().body }));
}

// The event as the client's sync loop delivered it (not a local echo).
function delivered(seen, roomId, eventId) {
    return seen.timeline.find((e) => e.room_id === roomId && e.event_id === eventId && !e.local_echo);
}

const clients = [];

async function main() {
    step("register A and B");
    const a = await registerClient(`jsa${tag}`);
    const b = await registerClient(`jsb${tag}`);
    clients.push(a, b);
    const aId = a.getUserId();
    const bId = b.getUserId();
    result.a = aId;
    result.b = bId;
    const seenA = watch(a, "A");
    const seenB = watch(b, "B");

    step("both clients sync until PREPARED");
    await Promise.all([startSyncing(a, seenA), startSyncing(b, seenB)]);

    step("A creates a room and invites B");
    const { room_id: roomId } = await a.createRoom({ name: roomName, preset: "private_chat" });
    result.room_id = roomId;
    await a.invite(roomId, bId);

    step("B's sync delivers the invite");
    const invited = await waitUntil(b, `the invite to ${roomId}`, () => {
        const room = b.getRoom(roomId);
        return room?.getMyMembership() === "invite" ? room : null;
    });
    const bAsInvitee = invited.getMember(bId);
    result.invite = {
        membership: invited.getMyMembership(),
        inviter: bAsInvitee?.events?.member?.getSender() ?? null,
        room_name: invited.name,
    };

    step("B may not send while only invited");
    // Raw request, so that js-sdk keeps no failed local echo in B's timeline.
    const refused = await expectMatrixError(
        b.http.authedRequest(Method.Put, `/rooms/${encodeURIComponent(roomId)}/send/m.room.message/early`, undefined, {
            msgtype: "m.text",
            body: "sent before joining",
        }),
        "sending while invited",
    );
    result.send_while_invited = refused;

    step("B joins");
    await b.joinRoom(roomId);
    const joined = await waitUntil(b, `membership join in ${roomId}`, () => {
        const room = b.getRoom(roomId);
        return room?.getMyMembership() === "join" ? room : null;
    });
    result.b_membership = joined.getMyMembership();
    result.b_room_name = joined.name;
    await waitUntil(a, `${bId} joined in A's view of ${roomId}`, () => a.getRoom(roomId)?.getMember(bId)?.membership === "join");
    result.a_sees_b = a.getRoom(roomId).getMember(bId).membership;
    result.a_joined_members = a.getRoom(roomId).getJoinedMembers().map((m) => m.userId).sort();

    step("A sends a message; B's timeline receives it");
    const sent = await a.sendTextMessage(roomId, messageBody);
    result.message_event_id = sent.event_id;
    result.message_at_b = await waitUntil(b, `the message ${sent.event_id} in B's timeline`, () => delivered(seenB, roomId, sent.event_id));

    step("B replies; A's timeline receives it");
    const reply = await b.sendTextMessage(roomId, replyBody);
    result.reply_event_id = reply.event_id;
    result.reply_at_a = await waitUntil(a, `the reply ${reply.event_id} in A's timeline`, () => delivered(seenA, roomId, reply.event_id));

    step("read both live timelines");
    // B's own reply reaches its timeline as a local echo first, then its
    // sync replaces it with the event from the server.
    await waitUntil(b, "the reply to come down B's own sync", () => liveMessages(b, roomId).some((e) => e.event_id === reply.event_id));
    result.timeline_a = liveMessages(a, roomId);
    result.timeline_b = liveMessages(b, roomId);
    result.sync_states = { a: seenA.syncStates, b: seenB.syncStates };
    result.sync_errors = { a: seenA.syncErrors, b: seenB.syncErrors };
    result.b_memberships = seenB.memberships.filter((m) => m.room_id === roomId && m.user_id === bId).map((m) => m.membership);
}

let exitCode = 0;
try {
    await main();
    await new Promise((resolve) => process.stdout.write(JSON.stringify(result) + "\n", resolve));
} catch (err) {
    console.error(`sync_flow failed at step: ${currentStep}`);
    console.error(err instanceof StepFailed ? err.message : JSON.stringify(describeError(err), null, 2));
    console.error(`partial result: ${JSON.stringify(result)}`);
    exitCode = 1;
} finally {
    for (const c of clients) c.stopClient();
}
// js-sdk leaves a timer per /sync request (its local timeout: the poll
// timeout plus 80 s) running after stopClient(); do not wait for them.
process.exit(exitCode);
