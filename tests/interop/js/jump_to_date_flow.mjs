// Jumps to a date the way Element's /jumptodate command does: matrix-js-sdk's
// timestampToEvent (stable v1 path, falling back to MSC3030's unstable one
// only when the server does not know the stable path), both directions, and
// a room with nothing at that time.
//
// Usage: node jump_to_date_flow.mjs <homeserver base URL> <user id> <device id>
//        <access token> <room id> <timestamp>
//
// Prints {"forward": ..., "backward": ..., "requests": [...], "after_last"}
// (or {"error": ...}) and exits 0.

for (const level of ["log", "info", "debug", "warn", "trace"]) {
    console[level] = (...args) => console.error(...args);
}

const { createClient, MatrixError } = await import("matrix-js-sdk");

const [baseUrl, userId, deviceId, accessToken, roomId, ts] = process.argv.slice(2);
const requests = [];
const fetchFn = (url, init) => {
    requests.push(String(url));
    return fetch(url, init);
};
const client = createClient({ baseUrl, userId, deviceId, accessToken, fetchFn });
const result = { requests };
const described = (err) =>
    err instanceof MatrixError
        ? { httpStatus: err.httpStatus, errcode: err.errcode }
        : { message: String(err?.stack ?? err) };
try {
    result.forward = await client.timestampToEvent(roomId, Number(ts), "f");
    result.backward = await client.timestampToEvent(roomId, Number(ts), "b");
    try {
        result.after_last = await client.timestampToEvent(roomId, Date.now() + 3600000, "f");
    } catch (err) {
        result.after_last = described(err);
    }
} catch (err) {
    result.error = described(err);
}
process.stdout.write(JSON.stringify(result));
