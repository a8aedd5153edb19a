-- Sales days a run changed outside its own partitions: a late payment, the watermark read or a webhook
-- re-read rewrote an order whose (old or new) Moscow payment day lies elsewhere. The orders staging marks
-- the day before it rewrites the order; the next materialization of fact_qtickets_sales_daily rebuilds
-- every marked day, reports it as materialized, then tombstones the marks it applied (same _ver), so a
-- day marked meanwhile, or left by a run that failed before its fact step, stays for the next one.
CREATE TABLE IF NOT EXISTS meta_sales_days_to_rebuild
(
    sales_date          Date,
    marked_by_run       String,
    _loaded_at          DateTime64(3, 'Europe/Moscow'),
    _ver                UInt64,
    _deleted            UInt8 DEFAULT 0
)
ENGINE = ReplacingMergeTree(_ver, _deleted)
ORDER BY sales_date;
