// Signs in to a homeserver the way Element Web does with the OAuth 2.0 API,
// through matrix-js-sdk's own OIDC helpers: getAuthMetadata,
// registerOidcClient, generateOidcAuthorizationUrl and
// completeAuthorizationCodeGrant.
//
// Usage: node oauth_flow.mjs <homeserver base URL>
//
// Prints {"authorization_url": ...} on one line, then reads the URL the
// browser was redirected to (after sign-in and consent) from stdin, and
// prints one JSON object with what each step returned. Everything js-sdk
// logs goes to stderr.

for (const level of ["log", "info", "debug", "warn", "trace"]) {
    console[level] = (...args) => console.error(...args);
}

const sdk = await import("matrix-js-sdk");

const baseUrl = process.argv[2];
const appOrigin = "https://app.element.example";
const redirectUri = `${appOrigin}/?no_universal_links=true`;

// The browser globals the helpers use: the page's origin and web storage.
class MemoryStorage {
    #items = new Map();
    get length() {
        return this.#items.size;
    }
    key(i) {
        return [...this.#items.keys()][i] ?? null;
    }
    getItem(k) {
        return this.#items.has(k) ? this.#items.get(k) : null;
    }
    setItem(k, v) {
        this.#items.set(k, String(v));
    }
    removeItem(k) {
        this.#items.delete(k);
    }
    clear() {
        this.#items.clear();
    }
}
globalThis.localStorage = new MemoryStorage();
globalThis.sessionStorage = new MemoryStorage();
globalThis.window = {
    location: { origin: appOrigin },
    localStorage: globalThis.localStorage,
    sessionStorage: globalThis.sessionStorage,
};

async function readLine() {
    let data = "";
    for await (const chunk of process.stdin) {
        data += chunk;
        if (data.includes("\n")) break;
    }
    return data.trim();
}

const result = {};
try {
    const client = sdk.createClient({ baseUrl });
    const metadata = await client.getAuthMetadata();
    result.issuer = metadata.issuer;
    const clientId = await sdk.registerOidcClient(metadata, {
        clientName: "Element Web",
        clientUri: appOrigin,
        redirectUris: [redirectUri],
        applicationType: "web",
        contacts: ["admin@element.example"],
        tosUri: `${appOrigin}/terms`,
        policyUri: `${appOrigin}/privacy`,
    });
    result.client_id = clientId;
    const url = await sdk.generateOidcAuthorizationUrl({
        metadata,
        redirectUri,
        clientId,
        homeserverUrl: baseUrl,
        nonce: "nonce-from-element",
    });
    process.stdout.write(JSON.stringify({ authorization_url: url }) + "\n");

    const back = new URL(await readLine());
    const code = back.searchParams.get("code");
    const state = back.searchParams.get("state");
    const grant = await sdk.completeAuthorizationCodeGrant(code, state);
    result.homeserver_url = grant.homeserverUrl;
    result.id_token_claims = grant.idTokenClaims;
    result.scope = grant.tokenResponse.scope;
    result.has_refresh_token = Boolean(grant.tokenResponse.refresh_token);

    const signedIn = sdk.createClient({ baseUrl, accessToken: grant.tokenResponse.access_token });
    result.whoami = await signedIn.whoami();
    process.stdout.write(JSON.stringify(result) + "\n");
    process.exit(0);
} catch (err) {
    console.error("oauth_flow failed:", err?.stack ?? err);
    process.exit(1);
}
