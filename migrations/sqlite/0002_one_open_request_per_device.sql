-- At most one request per person and device may be waiting for approval or
-- hold (or be restoring) an elevation. The engine checks this before posting
-- to approvers; the index closes the race between two simultaneous requests.
CREATE UNIQUE INDEX requests_one_open_per_device ON requests (jc_user, system_id)
    WHERE state IN ('pending_approval', 'approved', 'active', 'revoking');
