-- Requests, their durable timers (jobs), the chat outbox and the audit trail,
-- shared by every replica. The same tables as migrations/sqlite/0001-0003,
-- folded into one file because this backend starts here.
--
-- Times are Unix milliseconds (UTC), as on SQLite: every time comes from the
-- engine's Clock (a manual one in tests), never from the database's now(),
-- so both backends store and compare exactly the same numbers.
-- JSON values are TEXT: the store only round-trips them, never queries inside.

CREATE TABLE requests (
    id               TEXT PRIMARY KEY,
    platform         TEXT NOT NULL DEFAULT 'slack',
    requester        TEXT NOT NULL,
    reply_to         TEXT,
    duration_secs    BIGINT NOT NULL,
    words            TEXT NOT NULL,              -- JSON array of strings
    reason           TEXT NOT NULL,
    state            TEXT NOT NULL,
    created_at       BIGINT NOT NULL,
    email            TEXT,
    jc_user          TEXT,
    system_id        TEXT,                       -- copy of device.id, for look-ups
    device           TEXT,                       -- JSON
    candidates       TEXT NOT NULL DEFAULT '[]', -- JSON array
    prior            TEXT,                       -- JSON, written once before elevating
    decided_by       TEXT,
    decided_at       BIGINT,
    elevated_at      BIGINT,
    expires_at       BIGINT,
    ended_at         BIGINT,
    ended_by         TEXT,
    end_cause        TEXT,
    left_alone       BOOLEAN NOT NULL DEFAULT FALSE,
    approval_message TEXT,
    version          BIGINT NOT NULL
);
CREATE INDEX requests_by_requester ON requests (requester, state);
CREATE INDEX requests_by_device ON requests (jc_user, system_id, state);
-- At most one request per person and device may be waiting for approval or
-- hold (or be restoring) an elevation; closes the race between two
-- simultaneous requests, on any replica.
CREATE UNIQUE INDEX requests_one_open_per_device ON requests (jc_user, system_id)
    WHERE state IN ('pending_approval', 'approved', 'active', 'revoking');

-- locked_until is the lease; locked_by names the process that holds it, so a
-- replica shutting down releases its own leases and nobody else's.
CREATE TABLE jobs (
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    request_id   TEXT NOT NULL REFERENCES requests (id),
    kind         TEXT NOT NULL,
    arg          BIGINT NOT NULL DEFAULT 0,
    due_at       BIGINT NOT NULL,
    attempts     BIGINT NOT NULL DEFAULT 0,
    locked_until BIGINT,
    locked_by    TEXT,
    done_at      BIGINT,
    last_error   TEXT
);
CREATE INDEX jobs_pending ON jobs (due_at) WHERE done_at IS NULL;
CREATE INDEX jobs_by_request ON jobs (request_id) WHERE done_at IS NULL;

CREATE TABLE outbox (
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    request_id   TEXT NOT NULL REFERENCES requests (id),
    notice       TEXT NOT NULL,                  -- JSON domain::Notice
    due_at       BIGINT NOT NULL,
    attempts     BIGINT NOT NULL DEFAULT 0,
    locked_until BIGINT,
    locked_by    TEXT,
    delivered_at BIGINT,
    failed_at    BIGINT,
    last_error   TEXT
);
CREATE INDEX outbox_pending ON outbox (request_id, id) WHERE delivered_at IS NULL AND failed_at IS NULL;

CREATE TABLE audit (
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at           BIGINT NOT NULL,
    actor        TEXT NOT NULL,
    action       TEXT NOT NULL,
    request_id   TEXT NOT NULL,
    before_state TEXT,
    after_state  TEXT,
    detail       TEXT NOT NULL                   -- JSON
);
CREATE INDEX audit_by_time ON audit (at);

-- Append-only for everybody who connects as the application, whatever tool
-- they use: rows can be neither changed nor deleted, nor the table emptied.
CREATE FUNCTION audit_is_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the audit trail is append-only';
END
$$;
CREATE TRIGGER audit_no_update_or_delete BEFORE UPDATE OR DELETE ON audit
    FOR EACH ROW EXECUTE FUNCTION audit_is_append_only();
CREATE TRIGGER audit_no_truncate BEFORE TRUNCATE ON audit
    FOR EACH STATEMENT EXECUTE FUNCTION audit_is_append_only();
