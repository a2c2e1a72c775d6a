// Asks for the rooms a signed-in user shares with another one the way
// Element's user info panel does: matrix-js-sdk's _unstable_getSharedRooms,
// which picks the endpoint from /versions' unstable_features and follows the
// pages itself.
//
// Usage: node mutual_rooms_flow.mjs <homeserver base URL> <user id> <device id>
//        <access token> <other user id>
//
// Prints {"versions": ..., "rooms": [...]} (or {"error": ...}) and exits 0.

for (const level of ["log", "info", "debug", "warn", "trace"]) {
    console[level] = (...args) => console.error(...args);
}

const { createClient, MatrixError } = await import("matrix-js-sdk");

const [baseUrl, userId, deviceId, accessToken, other] = process.argv.slice(2);
const client = createClient({ baseUrl, userId, deviceId, accessToken });
const result = {};
try {
    result.versions = await client.getVersions();
    result.rooms = await client._unstable_getSharedRooms(other);
} catch (err) {
    result.error =
        err instanceof MatrixError
            ? { httpStatus: err.httpStatus, errcode: err.errcode }
            : { message: String(err?.stack ?? err) };
}
process.stdout.write(JSON.stringify(result));
