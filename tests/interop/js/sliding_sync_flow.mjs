// Simplified sliding sync (MSC4186) as Element Web's sliding-sync mode uses
// it: matrix-js-sdk clients started with its SlidingSync class (which speaks
// /_matrix/client/unstable/org.matrix.simplified_msc3575/sync), never /sync.
//
// 1. C is in three rooms with activity in the order R1, R2, R3; C's list has
//    range [0, 1]: C gets R3 and R2 (the two most active), not R1. A message
//    into R1 brings it into the list, on top by bump_stamp.
// 2. A and B (Rust crypto, in memory) only sync with sliding sync: A creates
//    an encrypted room and invites B (B sees the invite through invite_state),
//    B joins, A sends; B decrypts with the room key that reached it over the
//    to_device extension, having claimed and counted keys over e2ee. B
//    replies and A decrypts. Every request path is recorded, to prove /sync v2
//    was never used.
//
// Usage: node sliding_sync_flow.mjs <homeserver base URL>
// Prints one JSON object to stdout and exits 0; on failure prints the step
// and error to stderr and exits 1.

for (const level of ["log", "info", "debug", "warn", "trace"]) {
    console[level] = (...args) => console.error(...args);
}

const { createClient, ClientEvent, MatrixError, SyncState } = await import("matrix-js-sdk");
const { SlidingSync } = await import("matrix-js-sdk/lib/sliding-sync.js");

const baseUrl = process.argv[2];
if (!baseUrl) {
    console.error("usage: node sliding_sync_flow.mjs <homeserver base URL>");
    process.exit(2);
}

const WAIT_MS = 30_000;
const POLL_MS = 50;
const password = "correct horse battery staple";
const tag = `${Date.now().toString(36)}${Math.floor(Math.random() * 1e6).toString(36)}`;
const result = { paths: [] };

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

async function waitFor(what, condition) {
    const deadline = Date.now() + WAIT_MS;
    for (;;) {
        const value = await condition();
        if (value) return value;
        if (Date.now() > deadline) throw new StepFailed(`timed out after ${WAIT_MS} ms waiting for ${what}`);
        await new Promise((resolve) => setTimeout(resolve, POLL_MS));
    }
}

// Every request path a client makes, so the test can tell which sync it used.
function recordingFetch(url, init) {
    result.paths.push(new URL(url).pathname);
    return fetch(url, init);
}

async function registerClient(localpart) {
    const anon = createClient({ baseUrl });
    let session;
    try {
        await anon.registerRequest({ username: localpart, password });
    } catch (err) {
        session = err.data?.session;
    }
    const reg = await anon.registerRequest({
        username: localpart,
        password,
        auth: { type: "m.login.dummy", session },
    });
    return createClient({
        baseUrl,
        accessToken: reg.access_token,
        userId: reg.user_id,
        deviceId: reg.device_id,
        fetchFn: recordingFetch,
    });
}

const REQUIRED_STATE = [
    ["m.room.create", ""],
    ["m.room.name", ""],
    ["m.room.encryption", ""],
    ["m.room.member", "$LAZY"],
    ["m.room.member", "$ME"],
];

// Starts the client on sliding sync with one list; resolves once PREPARED.
async function start(client, { crypto, range }) {
    if (crypto) await client.initRustCrypto({ useIndexedDB: false });
    const lists = new Map([
        ["all", { ranges: [range], timeline_limit: 10, required_state: REQUIRED_STATE }],
    ]);
    const slidingSync = new SlidingSync(baseUrl, lists, { timeline_limit: 10, required_state: REQUIRED_STATE }, client, 10_000);
    const prepared = new Promise((resolve) => {
        client.on(ClientEvent.Sync, (state) => {
            if (state === SyncState.Prepared) resolve();
        });
    });
    client.startClient({ slidingSync });
    await prepared;
    return slidingSync;
}

// The client's rooms, most recently active first, by the server's bump_stamp.
function byActivity(client) {
    return client
        .getRooms()
        .filter((r) => r.getMyMembership() === "join")
        .sort((x, y) => (y.getBumpStamp() ?? 0) - (x.getBumpStamp() ?? 0))
        .map((r) => r.roomId);
}

function message(client, roomId, eventId) {
    const event = client.getRoom(roomId)?.findEventById(eventId);
    if (!event || event.isDecryptionFailure() || event.getType() !== "m.room.message") return null;
    return {
        sender: event.getSender(),
        wire_type: event.getWireType(),
        body: event.getContent()?.body ?? null,
    };
}

const clients = [];

async function activityFlow() {
    step("C's three rooms, active in the order R1, R2, R3");
    const c = await registerClient(`ssc${tag}`);
    clients.push(c);
    const rooms = [];
    for (const name of ["R1", "R2", "R3"]) {
        const { room_id } = await c.createRoom({ name, preset: "private_chat" });
        await c.sendTextMessage(room_id, `hello ${name}`);
        rooms.push(room_id);
    }
    result.activity_rooms = rooms;

    step("C syncs a list of the two most active rooms");
    const slidingSync = await start(c, { crypto: false, range: [0, 1] });
    result.first_seen = await waitFor("C's first two rooms", () => {
        const seen = byActivity(c);
        return seen.length === 2 ? seen : null;
    });
    result.list_count = slidingSync.getListData("all")?.joinedCount ?? null;

    step("a message into R1 brings it to the top");
    await c.sendTextMessage(rooms[0], "bump R1");
    result.after_bump = await waitFor("R1 on top", () => {
        const seen = byActivity(c);
        return seen[0] === rooms[0] ? seen : null;
    });
    c.stopClient();
}

async function encryptionFlow() {
    step("register A and B; start Rust crypto and sliding sync on both");
    const a = await registerClient(`ssa${tag}`);
    const b = await registerClient(`ssb${tag}`);
    clients.push(a, b);
    result.a = a.getUserId();
    result.b = b.getUserId();
    await Promise.all([start(a, { crypto: true, range: [0, 19] }), start(b, { crypto: true, range: [0, 19] })]);

    step("A creates an encrypted room and invites B");
    const { room_id: roomId } = await a.createRoom({
        preset: "private_chat",
        invite: [result.b],
        initial_state: [
            { type: "m.room.encryption", state_key: "", content: { algorithm: "m.megolm.v1.aes-sha2" } },
        ],
    });
    result.room_id = roomId;

    step("B sees the invite (invite_state) and joins");
    result.invite_seen = await waitFor("B's invite", () => b.getRoom(roomId)?.getMyMembership() === "invite");
    await b.joinRoom(roomId);
    await waitFor("A seeing B joined", () => a.getRoom(roomId)?.getMember(result.b)?.membership === "join");
    await waitFor("B's room encrypted", () => b.getCrypto().isEncryptionEnabledInRoom(roomId));

    step("A sends; B decrypts");
    const sent = await a.sendTextMessage(roomId, "Encrypted over sliding sync 🔒");
    result.message_at_b = await waitFor("B decrypting A's message", () => message(b, roomId, sent.event_id));

    step("B replies; A decrypts");
    const reply = await b.sendTextMessage(roomId, "Encrypted reply over sliding sync");
    result.reply_at_a = await waitFor("A decrypting B's reply", () => message(a, roomId, reply.event_id));
}

let exitCode = 0;
try {
    await activityFlow();
    await encryptionFlow();
    await new Promise((resolve) => process.stdout.write(JSON.stringify(result) + "\n", resolve));
} catch (err) {
    console.error(`sliding_sync_flow failed at step: ${currentStep}`);
    console.error(err instanceof StepFailed ? err.message : JSON.stringify(describeError(err), null, 2));
    const { paths, ...rest } = result;
    console.error(`partial result: ${JSON.stringify(rest)}`);
    exitCode = 1;
} finally {
    for (const c of clients) c.stopClient();
}
process.exit(exitCode);
