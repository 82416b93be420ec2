-- A request's stage and what exists in it, and the request's own words,
-- become one JSON document, `data` (format v1, read and written by
-- src/store/codec.rs for both backends). Real columns stay only for what
-- queries filter or order on (state, requester, jc_user, system_id, …) and
-- for the approval message, which the outbox writes outside transitions.
-- Existing rows are carried over: each stage takes from the object below
-- the keys it has (a superset for every stage), so no row loses anything.
-- Chat user ids gain their platform (`slack:U…`), as the outbox stores them.
ALTER TABLE requests ADD COLUMN data TEXT NOT NULL DEFAULT '{}';

UPDATE requests SET data = json_object(
    'v', 1,
    'reply_to', reply_to,
    'duration_secs', duration_secs,
    'words', json(words),
    'reason', reason,
    'stage', json_object(
        'state', state,
        -- Resolving again after a pick: the picked device, for the account
        -- it was offered to.
        'picked', json(CASE WHEN device IS NOT NULL AND email IS NOT NULL AND jc_user IS NOT NULL
                            THEN json_object('account', json_object('email', email, 'jc_user', jc_user),
                                             'device', json(device)) END),
        'account', json(CASE WHEN email IS NOT NULL AND jc_user IS NOT NULL
                             THEN json_object('email', email, 'jc_user', jc_user) END),
        'device', json(device),
        'candidates', json(candidates),
        'decision', json(CASE WHEN decided_by IS NOT NULL AND decided_at IS NOT NULL
                              THEN json_object('by', platform || ':' || decided_by, 'at', decided_at) END),
        'grant', json(CASE WHEN prior IS NOT NULL AND expires_at IS NOT NULL
                           THEN json_object('prior', json(prior), 'expires_at', expires_at) END),
        'elevated_at', elevated_at,
        -- Every move into revoking set a cause; the revoke job read a
        -- missing one as an expiry.
        'end_cause', COALESCE(end_cause, 'expired'),
        'ended_by', CASE WHEN ended_by IS NOT NULL THEN platform || ':' || ended_by END,
        'ended_at', ended_at,
        'left_alone', json(CASE WHEN left_alone THEN 'true' ELSE 'false' END)
    )
);

ALTER TABLE requests DROP COLUMN reply_to;
ALTER TABLE requests DROP COLUMN duration_secs;
ALTER TABLE requests DROP COLUMN words;
ALTER TABLE requests DROP COLUMN reason;
ALTER TABLE requests DROP COLUMN email;
ALTER TABLE requests DROP COLUMN device;
ALTER TABLE requests DROP COLUMN candidates;
ALTER TABLE requests DROP COLUMN prior;
ALTER TABLE requests DROP COLUMN decided_by;
ALTER TABLE requests DROP COLUMN decided_at;
ALTER TABLE requests DROP COLUMN elevated_at;
ALTER TABLE requests DROP COLUMN expires_at;
ALTER TABLE requests DROP COLUMN ended_at;
ALTER TABLE requests DROP COLUMN ended_by;
ALTER TABLE requests DROP COLUMN end_cause;
ALTER TABLE requests DROP COLUMN left_alone;
