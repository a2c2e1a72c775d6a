// Device dehydration (MSC3814) as Element does it, with matrix-js-sdk's Rust
// crypto: A sets up cross-signing and secret storage and starts dehydration
// (a dehydrated device, its key kept in secret storage). B shares an
// encrypted room with A and sends a message; B's crypto encrypts the room key
// to every device of A's, the dehydrated one included. Then A signs in on a
// new device, which rehydrates the dehydrated device (reading its to-device
// messages from the server, page by page) and so decrypts B's message, sent
// before that device existed; it leaves a fresh dehydrated device behind.
//
// Usage: node dehydration_flow.mjs <homeserver base URL>
//
// On success prints one JSON object with what the clients saw to stdout and
// exits 0. On failure prints the step and the error to stderr and exits 1.

for (const level of ["log", "info", "debug", "warn", "trace"]) {
    console[level] = (...args) => console.error(...args);
}

const { createClient, ClientEvent, MatrixError, Method, SyncState } = await import("matrix-js-sdk");
const { CryptoEvent } = await import("matrix-js-sdk/lib/crypto-api/index.js");

const baseUrl = process.argv[2];
if (!baseUrl) {
    console.error("usage: node dehydration_flow.mjs <homeserver base URL>");
    process.exit(2);
}

const WAIT_MS = 30_000;
const POLL_MS = 100;
const PREFIX = "/_matrix/client/unstable/org.matrix.msc3814.v1";
const password = "correct horse battery staple";
const tag = `${Date.now().toString(36)}${Math.floor(Math.random() * 1e6).toString(36)}`;
const messageBody = "Sent while A had no client running";
const result = {};

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

// A's secret storage key, handed to both of A's devices when they ask.
let recoveryKey = null;
const cryptoCallbacks = {
    getSecretStorageKey: async ({ keys }) => {
        const keyId = Object.keys(keys).find(() => recoveryKey !== null);
        return keyId ? [keyId, recoveryKey.privateKey] : null;
    },
};

async function register(localpart) {
    const anon = createClient({ baseUrl });
    let session;
    try {
        await anon.registerRequest({ username: localpart, password });
    } catch (err) {
        session = err.data?.session;
    }
    const reg = await anon.registerRequest({ username: localpart, password, auth: { type: "m.login.dummy", session } });
    return client(reg);
}

function client(session) {
    return createClient({
        baseUrl,
        accessToken: session.access_token,
        userId: session.user_id,
        deviceId: session.device_id,
        cryptoCallbacks,
    });
}

async function start(c) {
    await c.initRustCrypto({ useIndexedDB: false });
    const prepared = new Promise((resolve) => {
        c.on(ClientEvent.Sync, (state) => {
            if (state === SyncState.Prepared) resolve();
        });
    });
    c.startClient({ initialSyncLimit: 20 });
    await prepared;
}

async function dehydratedDeviceId(c) {
    const found = await c.http.authedRequest(Method.Get, "/dehydrated_device", undefined, undefined, { prefix: PREFIX });
    return found.device_id;
}

function decrypted(c, roomId, eventId) {
    return waitFor(`${c.getDeviceId()} decrypting ${eventId}`, () => {
        const event = c.getRoom(roomId)?.findEventById(eventId);
        return event && event.getType() === "m.room.message" && !event.isDecryptionFailure()
            ? { body: event.getContent().body, sender: event.getSender(), wire_type: event.getWireType() }
            : null;
    });
}

const clients = [];

async function main() {
    step("register A and B, start their crypto");
    const a = await register(`dehya${tag}`);
    const b = await register(`dehyb${tag}`);
    clients.push(a, b);
    result.a = a.getUserId();
    await Promise.all([start(a), start(b)]);

    step("A bootstraps cross-signing and secret storage");
    const aCrypto = a.getCrypto();
    await aCrypto.bootstrapCrossSigning({ authUploadDeviceSigningKeys: async (makeRequest) => makeRequest(null) });
    await aCrypto.bootstrapSecretStorage({
        createSecretStorageKey: async () => {
            recoveryKey = await aCrypto.createRecoveryKeyFromPassphrase();
            return recoveryKey;
        },
    });

    step("A starts dehydration");
    result.supported = await aCrypto.isDehydrationSupported();
    await aCrypto.startDehydration({ createNewKey: true });
    result.first_dehydrated = await dehydratedDeviceId(a);

    step("A creates an encrypted room and B joins");
    const { room_id: roomId } = await a.createRoom({
        preset: "private_chat",
        invite: [b.getUserId()],
        initial_state: [
            { type: "m.room.encryption", state_key: "", content: { algorithm: "m.megolm.v1.aes-sha2" } },
        ],
    });
    await waitFor("B's invite", () => b.getRoom(roomId)?.getMyMembership() === "invite");
    await b.joinRoom(roomId);
    await waitFor("B's crypto knowing the room is encrypted", () => b.getCrypto().isEncryptionEnabledInRoom(roomId));

    step("B sees A's dehydrated device");
    const devices = await waitFor("B knowing A's dehydrated device", async () => {
        const found = (await b.getCrypto().getUserDeviceInfo([result.a], true)).get(result.a);
        return found?.has(result.first_dehydrated) ? found : null;
    });
    result.a_devices_at_b = [...devices.keys()].sort();

    step("A's client stops; B sends");
    a.stopClient();
    const sent = await b.sendTextMessage(roomId, messageBody);

    step("A signs in on a new device, which rehydrates");
    const login = await createClient({ baseUrl }).loginRequest({
        type: "m.login.password",
        identifier: { type: "m.id.user", user: result.a },
        password,
    });
    const a2 = client(login);
    clients.push(a2);
    result.new_device = a2.getDeviceId();
    await start(a2);
    const progress = [];
    a2.on(CryptoEvent.RehydrationProgress, (roomKeys, toDevice) => progress.push([roomKeys, toDevice]));
    // Its cross-signing keys come from secret storage, as after "verify with recovery key".
    await waitFor("the new device knowing A's cross-signing keys", () =>
        a2.getCrypto().userHasCrossSigningKeys(result.a, true),
    );
    await a2.getCrypto().bootstrapCrossSigning({});
    await a2.getCrypto().startDehydration();
    result.rehydration_progress = progress;
    result.message_at_new_device = await decrypted(a2, roomId, sent.event_id);
    result.second_dehydrated = await dehydratedDeviceId(a2);
}

let exitCode = 0;
try {
    await main();
    await new Promise((resolve) => process.stdout.write(JSON.stringify(result) + "\n", resolve));
} catch (err) {
    console.error(`dehydration_flow failed at step: ${currentStep}`);
    console.error(err instanceof StepFailed ? err.message : JSON.stringify(describeError(err), null, 2));
    console.error(`partial result: ${JSON.stringify(result)}`);
    exitCode = 1;
} finally {
    for (const c of clients) c.stopClient();
}
process.exit(exitCode);
