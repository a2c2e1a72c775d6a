// End-to-end encryption as Element does it: two matrix-js-sdk clients with
// the Rust crypto stack (initRustCrypto, in memory) against a running
// homeserver. A bootstraps cross-signing (which signs its device), secret
// storage and a key backup. A creates an encrypted room and invites B; B
// joins; A sends a message that B decrypts; B replies and A decrypts the
// reply. A's megolm session reaches its key backup on the server, and B
// sees A's cross-signing keys and A's device signed by them.
//
// Usage: node e2e_flow.mjs <homeserver base URL>
//
// On success prints one JSON object with what each client saw to stdout and
// exits 0. On failure prints the step and the error to stderr and exits 1.
// Everything js-sdk logs goes to stderr, so stdout holds only the JSON.

for (const level of ["log", "info", "debug", "warn", "trace"]) {
    console[level] = (...args) => console.error(...args);
}

const { createClient, ClientEvent, MatrixError, Method, SyncState } = await import("matrix-js-sdk");

const baseUrl = process.argv[2];
if (!baseUrl) {
    console.error("usage: node e2e_flow.mjs <homeserver base URL>");
    process.exit(2);
}

const WAIT_MS = 30_000;
const POLL_MS = 100;
const password = "correct horse battery staple";
const tag = `${Date.now().toString(36)}${Math.floor(Math.random() * 1e6).toString(36)}`;
const messageBody = "Encrypted hello from A 🔒";
const replyBody = "Encrypted reply from B";
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

// Polls `condition()` until it returns something truthy; fails with `what` after WAIT_MS.
async function waitFor(what, condition) {
    const deadline = Date.now() + WAIT_MS;
    for (;;) {
        const value = await condition();
        if (value) return value;
        if (Date.now() > deadline) throw new StepFailed(`timed out after ${WAIT_MS} ms waiting for ${what}`);
        await new Promise((resolve) => setTimeout(resolve, POLL_MS));
    }
}

// The secret storage key A creates, handed back whenever its crypto asks for it.
let recoveryKey = null;
const cryptoCallbacks = {
    getSecretStorageKey: async ({ keys }) => {
        const keyId = Object.keys(keys).find(() => recoveryKey !== null);
        return keyId ? [keyId, recoveryKey.privateKey] : null;
    },
};

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
        cryptoCallbacks,
    });
}

// Starts the client's crypto and sync loop; resolves once it is PREPARED.
async function start(client) {
    await client.initRustCrypto({ useIndexedDB: false });
    const prepared = new Promise((resolve) => {
        client.on(ClientEvent.Sync, (state) => {
            if (state === SyncState.Prepared) resolve();
        });
    });
    client.startClient({ initialSyncLimit: 20 });
    await prepared;
}

// The room's messages as the client sees them: decrypted where it could.
function messages(client, roomId) {
    const room = client.getRoom(roomId);
    if (!room) return [];
    return room
        .getLiveTimeline()
        .getEvents()
        .filter((e) => e.isEncrypted())
        .map((e) => ({
            event_id: e.getId(),
            sender: e.getSender(),
            wire_type: e.getWireType(),
            type: e.getType(),
            body: e.getContent()?.body ?? null,
            decryption_failed: e.isDecryptionFailure(),
        }));
}

async function decrypted(client, roomId, eventId) {
    return waitFor(`${client.getUserId()} decrypting ${eventId}`, () =>
        messages(client, roomId).find((m) => m.event_id === eventId && m.type === "m.room.message"),
    );
}

const clients = [];

async function main() {
    step("register A and B");
    const a = await registerClient(`e2ea${tag}`);
    const b = await registerClient(`e2eb${tag}`);
    clients.push(a, b);
    result.a = a.getUserId();
    result.b = b.getUserId();

    step("start Rust crypto and sync on both");
    await Promise.all([start(a), start(b)]);
    result.keys_uploaded = {
        a: (await a.getCrypto().getOwnDeviceKeys()).ed25519,
        b: (await b.getCrypto().getOwnDeviceKeys()).ed25519,
    };

    step("A bootstraps cross-signing, secret storage and key backup");
    const aCrypto = a.getCrypto();
    // The first upload of cross-signing keys needs no user-interactive auth.
    await aCrypto.bootstrapCrossSigning({ authUploadDeviceSigningKeys: async (makeRequest) => makeRequest(null) });
    await aCrypto.bootstrapSecretStorage({
        createSecretStorageKey: async () => {
            recoveryKey = await aCrypto.createRecoveryKeyFromPassphrase();
            return recoveryKey;
        },
        setupNewKeyBackup: true,
    });
    result.cross_signing_ready = await aCrypto.isCrossSigningReady();
    result.backup_version = await waitFor("A's key backup to be active", () => aCrypto.getActiveSessionBackupVersion());
    const ownDevice = await aCrypto.getDeviceVerificationStatus(result.a, a.getDeviceId());
    result.a_device_signed_by_owner = ownDevice?.signedByOwner ?? null;

    step("A creates an encrypted room and invites B");
    const { room_id: roomId } = await a.createRoom({
        preset: "private_chat",
        invite: [result.b],
        initial_state: [
            { type: "m.room.encryption", state_key: "", content: { algorithm: "m.megolm.v1.aes-sha2" } },
        ],
    });
    result.room_id = roomId;

    step("B joins");
    await waitFor("B's invite", () => b.getRoom(roomId)?.getMyMembership() === "invite");
    await b.joinRoom(roomId);
    await waitFor("A seeing B joined", () => a.getRoom(roomId)?.getMember(result.b)?.membership === "join");
    // B's own sync brings the joined room's state (with its encryption).
    await waitFor("B seeing itself joined", () => b.getRoom(roomId)?.getMyMembership() === "join");
    result.encrypted = {
        a: await a.getCrypto().isEncryptionEnabledInRoom(roomId),
        b: await b.getCrypto().isEncryptionEnabledInRoom(roomId),
    };

    step("A sends; B decrypts");
    const sent = await a.sendTextMessage(roomId, messageBody);
    result.message_at_b = await decrypted(b, roomId, sent.event_id);

    step("B replies; A decrypts");
    const reply = await b.sendTextMessage(roomId, replyBody);
    result.reply_at_a = await decrypted(a, roomId, reply.event_id);

    step("A's session reaches its key backup");
    const sessionId = a.getRoom(roomId).findEventById(sent.event_id).getWireContent().session_id;
    const path = `/room_keys/keys/${encodeURIComponent(roomId)}`;
    const backedUp = await waitFor(`A's megolm session ${sessionId} in the key backup`, async () => {
        const keys = await a.http.authedRequest(Method.Get, path, { version: result.backup_version });
        return keys.sessions?.[sessionId];
    });
    result.backed_up_session = Object.keys(backedUp).sort();

    step("B sees A's cross-signing keys and A's device signed by them");
    result.a_has_cross_signing_at_b = await b.getCrypto().userHasCrossSigningKeys(result.a, true);
    const aDeviceAtB = await waitFor("B seeing A's device signed by A's self-signing key", async () => {
        const status = await b.getCrypto().getDeviceVerificationStatus(result.a, a.getDeviceId());
        return status?.signedByOwner ? status : null;
    });
    result.a_device_signed_by_owner_at_b = aDeviceAtB.signedByOwner;

    step("B's device as A's crypto knows it");
    const devices = await a.getCrypto().getUserDeviceInfo([result.b]);
    result.b_devices_at_a = [...(devices.get(result.b)?.keys() ?? [])];
    result.b_device_id = b.getDeviceId();
}

let exitCode = 0;
try {
    await main();
    await new Promise((resolve) => process.stdout.write(JSON.stringify(result) + "\n", resolve));
} catch (err) {
    console.error(`e2e_flow failed at step: ${currentStep}`);
    console.error(err instanceof StepFailed ? err.message : JSON.stringify(describeError(err), null, 2));
    console.error(`partial result: ${JSON.stringify(result)}`);
    exitCode = 1;
} finally {
    for (const c of clients) c.stopClient();
}
process.exit(exitCode);
