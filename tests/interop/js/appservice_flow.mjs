// A bridge's receiving side on matrix-appservice, the Node.js appservice
// framework under matrix-appservice-bridge (whose AppService it is): it
// listens for the homeserver's transactions while the flow sends through the
// client-server API as a user and as a ghost, goes away for a while and comes
// back on the same port.
//
// Usage: node appservice_flow.mjs <homeserver URL> <JSON: port, hs_token,
//   as_token, appservice_id, alice_token, ghost_token, room_id>
//
// Prints one JSON object (what the appservice saw, in order) and exits 0; on
// failure prints the step and the error to stderr and exits 1.

for (const level of ["log", "info", "debug", "warn", "trace"]) {
    console[level] = (...args) => console.error(...args);
}

const { AppService } = await import("matrix-appservice");

const baseUrl = process.argv[2];
const setup = JSON.parse(process.argv[3] ?? "{}");
const seen = { events: [], ephemeral: [] };
let step = "start";
let txn = 0;

function listen() {
    const service = new AppService({ homeserverToken: setup.hs_token });
    service.on("event", (ev) => seen.events.push(ev));
    service.on("ephemeral", (ev) => seen.ephemeral.push(ev));
    return service.listen(setup.port, "127.0.0.1", 10).then(() => service);
}

async function call(method, path, token, body) {
    const resp = await fetch(`${baseUrl}${path}`, {
        method,
        headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" },
        body: body === undefined ? undefined : JSON.stringify(body),
    });
    const json = await resp.json();
    if (!resp.ok) throw new Error(`${method} ${path}: ${resp.status} ${JSON.stringify(json)}`);
    return json;
}

function say(token, text) {
    txn += 1;
    const room = encodeURIComponent(setup.room_id);
    return call("PUT", `/_matrix/client/v3/rooms/${room}/send/m.room.message/node${txn}`, token, {
        msgtype: "m.text",
        body: text,
    });
}

async function until(check, what) {
    const deadline = Date.now() + 20000;
    while (!check()) {
        if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
        await new Promise((resolve) => setTimeout(resolve, 20));
    }
}

const bodies = () =>
    seen.events.filter((e) => e.type === "m.room.message").map((e) => e.content.body);

try {
    step = "listen";
    let service = await listen();

    step = "messages";
    for (const text of ["a0", "a1", "a2"]) await say(setup.alice_token, text);
    await say(setup.ghost_token, "from the ghost");
    await until(() => bodies().length >= 4, "four messages");

    step = "typing";
    const alice = encodeURIComponent("@alice:localhost");
    const room = encodeURIComponent(setup.room_id);
    await call("PUT", `/_matrix/client/v3/rooms/${room}/typing/${alice}`, setup.alice_token, {
        typing: true,
        timeout: 30000,
    });
    await until(() => seen.ephemeral.some((e) => e.type === "m.typing"), "typing");

    step = "receipt";
    const { event_id: last } = await say(setup.alice_token, "read me");
    await call(
        "POST",
        `/_matrix/client/v3/rooms/${room}/receipt/m.read/${encodeURIComponent(last)}`,
        setup.alice_token,
        {},
    );
    await until(() => seen.ephemeral.some((e) => e.type === "m.receipt"), "receipt");

    step = "away";
    await service.close();
    for (const text of ["missed 0", "missed 1", "missed 2"]) await say(setup.alice_token, text);
    service = await listen();
    await until(() => bodies().includes("missed 2"), "the missed messages");
    await service.close();

    console.error("done");
    process.stdout.write(JSON.stringify({ ...seen, bodies: bodies(), last_read: last }) + "\n");
    process.exit(0);
} catch (err) {
    console.error(`step ${step} failed:`, err);
    process.exit(1);
}
