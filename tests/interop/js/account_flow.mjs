// Drives the real matrix-js-sdk against a running homeserver: register (the
// way Element does it, through the dummy UIA flow), whoami, log in from a fresh
// client, the calls js-sdk makes at start-up, profile, devices, and logout.
//
// Usage: node account_flow.mjs <homeserver base URL>
//
// On success prints one JSON object with what each step returned to stdout and
// exits 0. On failure prints the step and the error to stderr and exits 1.
// Everything js-sdk logs goes to stderr, so stdout holds only the JSON.

// Keep stdout for the result: js-sdk's logger writes through console.*.
for (const level of ["log", "info", "debug", "warn", "trace"]) {
    console[level] = (...args) => console.error(...args);
}

const { createClient, AutoDiscovery, MatrixError, Method } = await import("matrix-js-sdk");

const baseUrl = process.argv[2];
if (!baseUrl) {
    console.error("usage: node account_flow.mjs <homeserver base URL>");
    process.exit(2);
}

const username = `js${Date.now().toString(36)}${Math.floor(Math.random() * 1e6).toString(36)}`;
const password = "correct horse battery staple";
const displayName = "JS SDK Tester ✓";
const result = { username };

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
        return {
            httpStatus: err.httpStatus,
            errcode: err.errcode,
            data: err.data,
            url: err.url,
        };
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
        return { httpStatus: err.httpStatus, errcode: err.errcode, data: err.data };
    }
}

const clients = [];
function client(opts = {}) {
    const c = createClient({ baseUrl, ...opts });
    clients.push(c);
    return c;
}

async function main() {
    // (0) What Element does when the user types a homeserver URL: validate it.
    step("discovery");
    const discovery = await AutoDiscovery.fromDiscoveryConfig({ "m.homeserver": { base_url: baseUrl } });
    result.discovery = {
        state: discovery["m.homeserver"].state,
        error: discovery["m.homeserver"].error ?? null,
        base_url: discovery["m.homeserver"].base_url,
    };
    check(
        discovery["m.homeserver"].state === AutoDiscovery.SUCCESS,
        `AutoDiscovery rejected the server: ${JSON.stringify(discovery["m.homeserver"])}`,
    );

    // (a) Registration, dummy flow, the way Element does it.
    step("register: first request without auth (expects 401 with UIA flows)");
    const anon = client();
    const uia = await expectMatrixError(anon.registerRequest({ username, password }), "register without auth");
    check(uia.httpStatus === 401, `register without auth: expected HTTP 401, got ${uia.httpStatus}`);
    const flows = uia.data?.flows;
    const session = uia.data?.session;
    check(Array.isArray(flows), `register 401 body has no flows array: ${JSON.stringify(uia.data)}`);
    check(typeof session === "string" && session, `register 401 body has no session: ${JSON.stringify(uia.data)}`);
    const flowStages = flows.map((f) => f.stages);
    check(
        flowStages.some((stages) => stages.length === 1 && stages[0] === "m.login.dummy"),
        `no single-stage m.login.dummy flow offered: ${JSON.stringify(flows)}`,
    );
    result.uia = { httpStatus: uia.httpStatus, flows: flowStages, has_session: true, params: uia.data.params ?? null };

    step("register: second request with m.login.dummy auth");
    const reg = await anon.registerRequest({
        username,
        password,
        initial_device_display_name: "js-sdk register",
        auth: { type: "m.login.dummy", session },
    });
    check(reg.user_id && reg.access_token && reg.device_id, `register response incomplete: ${JSON.stringify(reg)}`);
    result.register = { user_id: reg.user_id, device_id: reg.device_id, has_access_token: true };

    // (b) whoami with the new token.
    step("whoami with the registration token");
    const first = client({ accessToken: reg.access_token, userId: reg.user_id, deviceId: reg.device_id });
    const who = await first.whoami();
    result.whoami = who;
    check(who.user_id === reg.user_id, `whoami says ${who.user_id}, registered ${reg.user_id}`);

    // (c) Log in from fresh clients: loginRequest, then the older login().
    step("loginRequest with m.login.password / m.id.user");
    const fresh = client();
    const login = await fresh.loginRequest({
        type: "m.login.password",
        identifier: { type: "m.id.user", user: username },
        password,
        initial_device_display_name: "js-sdk login",
    });
    check(login.access_token && login.device_id, `login response incomplete: ${JSON.stringify(login)}`);
    result.login = {
        user_id: login.user_id,
        device_id: login.device_id,
        has_access_token: true,
        well_known: login.well_known ?? null,
    };

    step("login('m.login.password') on a fresh client");
    const legacy = client();
    const legacyLogin = await legacy.login("m.login.password", {
        identifier: { type: "m.id.user", user: username },
        password,
    });
    result.legacy_login = {
        user_id: legacyLogin.user_id,
        device_id: legacyLogin.device_id,
        client_user_id: legacy.getUserId(),
        client_has_token: Boolean(legacy.getAccessToken()),
    };
    check(legacy.getAccessToken() === legacyLogin.access_token, "login() did not set the token on the client");

    step("wrong password is refused");
    const wrong = await expectMatrixError(
        client().loginRequest({
            type: "m.login.password",
            identifier: { type: "m.id.user", user: username },
            password: "not the password",
        }),
        "login with a wrong password",
    );
    result.wrong_password = { httpStatus: wrong.httpStatus, errcode: wrong.errcode };

    // (d) What js-sdk needs at start-up, and profile/devices.
    const second = client({ accessToken: login.access_token, userId: login.user_id, deviceId: login.device_id });

    step("getVersions / doesServerSupportUnstableFeature / isVersionSupported");
    const versions = await second.getVersions();
    check(Array.isArray(versions.versions), `/versions has no versions array: ${JSON.stringify(versions)}`);
    const unstable = await second.doesServerSupportUnstableFeature("org.matrix.msc3916.stable");
    check(typeof unstable === "boolean", "doesServerSupportUnstableFeature did not return a boolean");
    result.versions = {
        versions: versions.versions,
        unstable_features: versions.unstable_features ?? null,
        supports_v1_1: await second.isVersionSupported("v1.1"),
        msc3916_stable: unstable,
    };

    step("getCapabilities");
    const caps = await second.getCapabilities();
    result.capabilities = caps;

    step("getPushRules");
    const rawRules = await second.http.authedRequest(Method.Get, "/pushrules/");
    const rules = await second.getPushRules();
    const ids = (list) => (list ?? []).map((r) => r.rule_id);
    result.push_rules = {
        // What the server sent, before js-sdk merges in its own defaults.
        server: {
            override: ids(rawRules?.global?.override),
            content: ids(rawRules?.global?.content),
            room: ids(rawRules?.global?.room),
            sender: ids(rawRules?.global?.sender),
            underride: ids(rawRules?.global?.underride),
        },
        // What js-sdk keeps after its fix-ups.
        client: {
            override: ids(rules?.global?.override),
            underride: ids(rules?.global?.underride),
        },
    };

    step("setDisplayName from the first client, getProfileInfo from the second");
    await first.setDisplayName(displayName);
    result.display_name_set = displayName;
    const profile = await second.getProfileInfo(reg.user_id);
    result.profile = profile;
    const profileName = await second.getProfileInfo(reg.user_id, "displayname");
    result.profile_displayname = profileName;
    check(profile.displayname === displayName, `profile displayname is ${JSON.stringify(profile.displayname)}`);

    step("getDevices");
    const devices = await second.getDevices();
    result.devices = devices.devices.map((d) => ({ device_id: d.device_id, display_name: d.display_name ?? null }));
    const deviceIds = result.devices.map((d) => d.device_id);
    for (const id of [reg.device_id, login.device_id, legacyLogin.device_id]) {
        check(deviceIds.includes(id), `device ${id} missing from getDevices: ${JSON.stringify(deviceIds)}`);
    }

    // (e) Log the first client out; its token must stop working.
    step("logout of the first client");
    const loggedOut = await first.logout();
    result.logout = loggedOut;

    step("whoami with the logged-out token");
    const dead = await expectMatrixError(first.whoami(), "whoami after logout");
    result.after_logout = { httpStatus: dead.httpStatus, errcode: dead.errcode, soft_logout: dead.data?.soft_logout ?? null };
    check(dead.errcode === "M_UNKNOWN_TOKEN", `after logout expected M_UNKNOWN_TOKEN, got ${dead.errcode}`);

    step("the other session still works");
    const stillAlive = await second.whoami();
    result.other_session_after_logout = stillAlive;
    check(stillAlive.device_id === login.device_id, "the second session stopped working after the first logged out");
}

try {
    await main();
    process.stdout.write(JSON.stringify(result) + "\n");
    process.exitCode = 0;
} catch (err) {
    console.error(`account_flow failed at step: ${currentStep}`);
    console.error(err instanceof StepFailed ? err.message : JSON.stringify(describeError(err), null, 2));
    console.error(`partial result: ${JSON.stringify(result)}`);
    process.exitCode = 1;
} finally {
    for (const c of clients) c.stopClient();
}
