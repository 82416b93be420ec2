-- What was already accepted from the chat service, so that a signed request
-- sent again within its signature window is answered without acting twice
-- (a replay). Rows are kept until the window has passed and pruned then.
CREATE TABLE replays (
    key TEXT PRIMARY KEY NOT NULL,
    keep_until INTEGER NOT NULL
);
CREATE INDEX replays_keep_until ON replays (keep_until);
