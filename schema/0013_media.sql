-- The media repository: metadata of local media, cached thumbnails and URL
-- previews. The bytes live on disk under <data_dir>/<media.store_path>,
-- named by their SHA-256, so that identical uploads share one file.

-- One row per media id. A row made by POST /_matrix/media/v1/create has no
-- content yet (media_length, sha256 and content_type are NULL) until its
-- creator PUTs it.
CREATE TABLE local_media (
    media_id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL,
    created_ts BIGINT NOT NULL,
    content_type TEXT,
    upload_name TEXT,
    media_length BIGINT,
    sha256 TEXT,
    -- Uploaded while authenticated media was enforced: the legacy
    -- unauthenticated endpoints never serve it (Synapse's freeze).
    authenticated BOOLEAN NOT NULL,
    -- The URL this media was downloaded from for a URL preview; NULL for uploads.
    url_cache TEXT,
    -- Who quarantined it (an admin's user id, or 'system'); NULL if served.
    quarantined_by TEXT,
    -- Protected media cannot be quarantined.
    safe_from_quarantine BOOLEAN NOT NULL DEFAULT FALSE,
    last_access_ts BIGINT,
    CHECK ((media_length IS NULL) = (sha256 IS NULL))
);
CREATE INDEX local_media_user ON local_media (user_id, created_ts);
CREATE INDEX local_media_sha256 ON local_media (sha256) WHERE sha256 IS NOT NULL;

-- Thumbnails made on demand, keyed by the content they were made from so that
-- media ids sharing one file share their thumbnails too.
CREATE TABLE media_thumbnails (
    sha256 TEXT NOT NULL,
    width INTEGER NOT NULL,
    height INTEGER NOT NULL,
    method TEXT NOT NULL,
    content_type TEXT NOT NULL,
    animated BOOLEAN NOT NULL,
    length BIGINT NOT NULL,
    created_ts BIGINT NOT NULL,
    PRIMARY KEY (sha256, width, height, method, content_type, animated)
);

-- URL previews (OpenGraph JSON), reused until they expire.
CREATE TABLE url_previews (
    url TEXT PRIMARY KEY,
    og TEXT NOT NULL,
    expires_ts BIGINT NOT NULL
);
CREATE INDEX url_previews_expires ON url_previews (expires_ts);
