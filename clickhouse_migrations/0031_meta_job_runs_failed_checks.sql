-- The run's failed asset checks ("asset:check: description"): no check blocks a run (assets/checks.py),
-- so a run can be `ok` and still have found something wrong.
ALTER TABLE meta_job_runs ADD COLUMN IF NOT EXISTS failed_checks Array(String) AFTER repair_capped;
