"""The work queue and its transitions: claim, submit, skip, flag, leases, stored drafts; the hot pair as
single statements (`sql`); the item page."""
