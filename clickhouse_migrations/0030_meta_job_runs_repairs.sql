-- What the run's repairs re-read (assets/repair.py): keys as "kind:key" (`show:300123`, `day:2026-12-01`),
-- the records re-read from the API, and whether a repair stopped at its cap (keys left unrepaired).
ALTER TABLE meta_job_runs ADD COLUMN IF NOT EXISTS repaired Array(String) AFTER error;
ALTER TABLE meta_job_runs ADD COLUMN IF NOT EXISTS repair_reread UInt64 DEFAULT 0 AFTER repaired;
ALTER TABLE meta_job_runs ADD COLUMN IF NOT EXISTS repair_capped UInt8 DEFAULT 0 AFTER repair_reread;
