-- How to reach a person when the bot speaks first (Teams: the serviceUrl
-- of their region, the bot's 1:1 conversation with them, their tenant), as
-- last heard from their own activities. One row per person; the newest
-- sighting wins, and one without a conversation or tenant keeps the known one.
CREATE TABLE conversation_references (
    platform        TEXT NOT NULL,
    user_id         TEXT NOT NULL,
    service_url     TEXT NOT NULL,
    conversation_id TEXT,
    tenant_id       TEXT,
    seen_at         INTEGER NOT NULL,
    PRIMARY KEY (platform, user_id)
);
