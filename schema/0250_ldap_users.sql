-- Accounts created at their first sign-in through LDAP / Active Directory
-- (homeserver/accounts/ldap/): their password lives in the directory, so it
-- cannot be changed here. The DN and email are what the directory said then.
CREATE TABLE ldap_users (
    user_id TEXT PRIMARY KEY,
    dn TEXT NOT NULL,
    email TEXT,
    created_ts BIGINT NOT NULL
);
