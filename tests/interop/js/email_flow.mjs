// Drives the real matrix-js-sdk through the email flows the way Element does:
// register with a validated email (requestRegisterEmailToken, then retrying
// the m.login.email.identity stage until the person clicked the link), add a
// second address (requestAdd3pidEmailToken, addThreePidOnly), reset the
// password by email (requestPasswordEmailToken, setPassword without a login)
// and log in with an address. The test reads the mails and opens their links
// meanwhile.
//
// Usage: node email_flow.mjs <homeserver base URL> <first address> <second address>
//
// Prints one JSON object to stdout and exits 0; on failure prints the step and
// the error to stderr and exits 1.

for (const level of ["log", "info", "debug", "warn", "trace"]) {
    console[level] = (...args) => console.error(...args);
}

const { createClient, MatrixError } = await import("matrix-js-sdk");

const [baseUrl, first, second] = process.argv.slice(2);
if (!second) {
    console.error("usage: node email_flow.mjs <homeserver base URL> <address> <address>");
    process.exit(2);
}

const username = `em${Date.now().toString(36)}`;
const password = "first password";
const newPassword = "second password";
const result = { username };
let currentStep = "start";

function describeError(err) {
    if (err instanceof MatrixError) {
        return { httpStatus: err.httpStatus, errcode: err.errcode, data: err.data };
    }
    return { message: String(err?.stack ?? err) };
}

async function errorOf(promise) {
    try {
        await promise;
    } catch (err) {
        return describeError(err);
    }
    return null;
}

// Retries `attempt` while it fails with M_THREEPID_AUTH_FAILED (the link not
// opened yet), as Element polls; returns its result and the failures seen.
async function untilValidated(attempt) {
    const failures = [];
    for (let i = 0; i < 100; i++) {
        try {
            return { value: await attempt(), failures };
        } catch (err) {
            const described = describeError(err);
            if (described.errcode !== "M_THREEPID_AUTH_FAILED") throw err;
            failures.push(described);
            await new Promise((resolve) => setTimeout(resolve, 200));
        }
    }
    throw new Error("the address was never validated");
}

try {
    const anonymous = createClient({ baseUrl });

    currentStep = "bad address";
    result.bad_address = await errorOf(anonymous.requestRegisterEmailToken("no address", "bad1", 1));

    currentStep = "register";
    const regToken = await anonymous.requestRegisterEmailToken(first, "regsecret", 1);
    result.register_sid = regToken.sid;
    result.register_retry_sid = (await anonymous.requestRegisterEmailToken(first, "regsecret", 1)).sid;
    let session;
    try {
        await anonymous.registerRequest({ username, password });
    } catch (err) {
        result.register_flows = err.data?.flows;
        session = err.data?.session;
    }
    const creds = { sid: regToken.sid, client_secret: "regsecret" };
    const registered = await untilValidated(() =>
        anonymous.registerRequest({
            auth: { type: "m.login.email.identity", threepid_creds: creds, session },
        }),
    );
    result.register = registered.value;
    result.register_waited = registered.failures.length > 0;

    const client = createClient({
        baseUrl,
        userId: registered.value.user_id,
        accessToken: registered.value.access_token,
        deviceId: registered.value.device_id,
    });
    currentStep = "capabilities";
    result.capabilities = (await client.getCapabilities())["m.3pid_changes"];

    currentStep = "add an address";
    const addToken = await client.requestAdd3pidEmailToken(second, "addsecret", 1);
    const passwordAuth = {
        type: "m.login.password",
        identifier: { type: "m.id.user", user: username },
        password,
    };
    await untilValidated(() =>
        client.addThreePidOnly({ sid: addToken.sid, client_secret: "addsecret", auth: passwordAuth }),
    );
    result.threepids = (await client.getThreePids()).threepids.map((t) => t.address).sort();

    currentStep = "reset the password";
    const resetToken = await anonymous.requestPasswordEmailToken(first, "resetsecret", 1);
    const resetAuth = {
        type: "m.login.email.identity",
        threepid_creds: { sid: resetToken.sid, client_secret: "resetsecret" },
    };
    await untilValidated(() => anonymous.setPassword(resetAuth, newPassword));
    result.old_token_after_reset = await errorOf(client.whoami());

    currentStep = "log in with an address";
    const login = await anonymous.loginRequest({
        type: "m.login.password",
        identifier: { type: "m.id.thirdparty", medium: "email", address: second },
        password: newPassword,
    });
    result.login_user_id = login.user_id;
    result.unknown_reset = await errorOf(
        anonymous.requestPasswordEmailToken("nobody@example.test", "s", 1),
    );
} catch (err) {
    console.error(`step ${currentStep} failed:`, JSON.stringify(describeError(err)));
    process.exit(1);
}
process.stdout.write(JSON.stringify(result));
