// Drives matrix-js-sdk (which asks /sync for `org.matrix.msc4222.use_state_after`
// and then takes room state only from `state_after`) through an initial sync
// and a gappy incremental sync with lazy-loaded members, and reports the room
// state the client ends with.
//
// Usage: node state_after_flow.mjs <base URL> <A's token> <A's id> <B's token> <room id>
// A's room exists (its name and topic set by the test); the script syncs A
// (an initial sync whose timeline leaves the last rename out), has B join,
// change the topic and send messages while A keeps syncing (incremental
// syncs, members lazily loaded), and prints one JSON object of what A saw.

for (const level of ["log", "info", "debug", "warn", "trace"]) {
    console[level] = (...args) => console.error(...args);
}

const { createClient, ClientEvent, Filter, SyncState } = await import("matrix-js-sdk");

const [baseUrl, aToken, aId, bToken, roomId] = process.argv.slice(2);
const WAIT_MS = 20_000;
const result = { requests: [] };

async function asB(method, path, body) {
    const resp = await fetch(`${baseUrl}/_matrix/client/v3${path}`, {
        method,
        headers: { Authorization: `Bearer ${bToken}`, "Content-Type": "application/json" },
        body: JSON.stringify(body ?? {}),
    });
    if (!resp.ok) throw new Error(`${method} ${path}: ${resp.status} ${await resp.text()}`);
    return resp.json();
}

function waitFor(client, what, condition) {
    return new Promise((resolve, reject) => {
        const recheck = () => {
            const value = condition();
            if (value) {
                clearTimeout(timer);
                client.off(ClientEvent.Sync, recheck);
                resolve(value);
            }
        };
        const timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), WAIT_MS);
        client.on(ClientEvent.Sync, recheck);
        recheck();
    });
}

function roomState(client) {
    const room = client.getRoom(roomId);
    const state = room.getLiveTimeline().getState("f");
    const topic = state.getStateEvents("m.room.topic", "");
    const name = state.getStateEvents("m.room.name", "");
    return {
        topic: topic?.getContent().topic ?? null,
        name: name?.getContent().name ?? null,
        members: Object.fromEntries(state.getMembers().map((m) => [m.userId, m.membership])),
        timeline: room.getLiveTimeline().getEvents().map((e) => e.getType()),
    };
}

async function main() {
    const a = createClient({ baseUrl, accessToken: aToken, userId: aId });
    // Record which /sync parameters the SDK sends.
    const fetchFn = globalThis.fetch;
    a.http.opts.fetchFn = (url, init) => {
        if (String(url).includes("/sync?")) result.requests.push(String(url));
        return fetchFn(url, init);
    };
    const filter = new Filter(aId);
    filter.setDefinition({ room: { timeline: { limit: 2 }, state: { lazy_load_members: true } } });
    const options = { filter, lazyLoadMembers: true, initialSyncLimit: 2 };
    a.startClient(options);
    await waitFor(a, "PREPARED", () => a.getSyncState() === SyncState.Prepared);
    result.initial = roomState(a);

    await asB("POST", `/rooms/${encodeURIComponent(roomId)}/join`);
    await asB("PUT", `/rooms/${encodeURIComponent(roomId)}/state/m.room.topic/`, { topic: "second topic" });
    for (let n = 0; n < 4; n++) {
        await asB("PUT", `/rooms/${encodeURIComponent(roomId)}/send/m.room.message/m${n}`, {
            msgtype: "m.text",
            body: `from B ${n}`,
        });
    }
    await waitFor(a, "the second topic and B's last message", () => {
        const room = a.getRoom(roomId);
        const last = room.getLiveTimeline().getEvents().at(-1);
        return roomState(a).topic === "second topic" && last?.getContent().body === "from B 3";
    }).catch((err) => {
        throw new Error(`${err.message}: ${JSON.stringify(roomState(a))}`);
    });
    result.after_gap = roomState(a);
    a.stopClient();
}

try {
    await main();
    process.stdout.write(JSON.stringify(result) + "\n");
    process.exit(0);
} catch (err) {
    console.error(String(err?.stack ?? err));
    process.exit(1);
}
