-- The upstream OpenID Connect sign-in (upstream_sign_ins.handle_hash) of the
-- browser that approved an OAuth grant, if it signed in through a provider:
-- the device the grant creates is then recorded in upstream_devices, so the
-- provider's back-channel logout ends it too.
ALTER TABLE oauth_authorizations ADD COLUMN upstream_sign_in BYTEA;
ALTER TABLE oauth_device_grants ADD COLUMN upstream_sign_in BYTEA;
