-- Media of other servers, fetched over federation on first request and kept:
-- later requests are served from here without asking the origin again. The
-- bytes share the content-addressed store of local media (named by SHA-256).
CREATE TABLE remote_media (
    origin TEXT NOT NULL,
    media_id TEXT NOT NULL,
    content_type TEXT NOT NULL,
    upload_name TEXT,
    media_length BIGINT NOT NULL,
    sha256 TEXT NOT NULL,
    created_ts BIGINT NOT NULL,
    PRIMARY KEY (origin, media_id)
);
CREATE INDEX remote_media_sha256 ON remote_media (sha256);
