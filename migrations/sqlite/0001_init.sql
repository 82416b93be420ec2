-- Requests, their durable timers (jobs), the chat outbox and the audit trail.
-- Times are Unix milliseconds (UTC).

CREATE TABLE requests (
    id               TEXT PRIMARY KEY,
    platform         TEXT NOT NULL DEFAULT 'slack',
    requester        TEXT NOT NULL,
    reply_to         TEXT,
    duration_secs    INTEGER NOT NULL,
    words            TEXT NOT NULL,              -- JSON array of strings
    reason           TEXT NOT NULL,
    state            TEXT NOT NULL,
    created_at       INTEGER NOT NULL,
    email            TEXT,
    jc_user          TEXT,
    system_id        TEXT,                       -- copy of device.id, for look-ups
    device           TEXT,                       -- JSON
    candidates       TEXT NOT NULL DEFAULT '[]', -- JSON array
    prior            TEXT,                       -- JSON, written once before elevating
    decided_by       TEXT,
    decided_at       INTEGER,
    elevated_at      INTEGER,
    expires_at       INTEGER,
    ended_at         INTEGER,
    ended_by         TEXT,
    end_cause        TEXT,
    approval_message TEXT,
    version          INTEGER NOT NULL
);
CREATE INDEX requests_by_requester ON requests (requester, state);
CREATE INDEX requests_by_device ON requests (jc_user, system_id, state);

CREATE TABLE jobs (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    request_id   TEXT NOT NULL REFERENCES requests (id),
    kind         TEXT NOT NULL,
    arg          INTEGER NOT NULL DEFAULT 0,
    due_at       INTEGER NOT NULL,
    attempts     INTEGER NOT NULL DEFAULT 0,
    locked_until INTEGER,
    done_at      INTEGER,
    last_error   TEXT
);
CREATE INDEX jobs_pending ON jobs (due_at) WHERE done_at IS NULL;
CREATE INDEX jobs_by_request ON jobs (request_id) WHERE done_at IS NULL;

CREATE TABLE outbox (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    request_id   TEXT NOT NULL REFERENCES requests (id),
    notice       TEXT NOT NULL,                  -- JSON domain::Notice
    due_at       INTEGER NOT NULL,
    attempts     INTEGER NOT NULL DEFAULT 0,
    locked_until INTEGER,
    delivered_at INTEGER,
    failed_at    INTEGER,
    last_error   TEXT
);
CREATE INDEX outbox_pending ON outbox (request_id, id) WHERE delivered_at IS NULL AND failed_at IS NULL;

CREATE TABLE audit (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    at           INTEGER NOT NULL,
    actor        TEXT NOT NULL,
    action       TEXT NOT NULL,
    request_id   TEXT NOT NULL,
    before_state TEXT,
    after_state  TEXT,
    detail       TEXT NOT NULL                   -- JSON
);
CREATE INDEX audit_by_time ON audit (at);

CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
BEGIN
    SELECT RAISE(ABORT, 'the audit trail is append-only');
END;
CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
BEGIN
    SELECT RAISE(ABORT, 'the audit trail is append-only');
END;
