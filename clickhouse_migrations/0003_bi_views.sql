-- BI views: the dashboards read exactly these names and columns.

CREATE OR REPLACE VIEW v_sales_14d AS
SELECT
    sales_date,
    event_id,
    sum(tickets_sold) AS tickets_sold,
    sum(revenue)      AS revenue
FROM fact_qtickets_sales_daily FINAL
WHERE sales_date > toDate(now(), 'Europe/Moscow') - 14
GROUP BY sales_date, event_id;

CREATE OR REPLACE VIEW v_sales_latest AS
WITH
    sales AS (
        SELECT
            event_id,
            sum(tickets_sold) AS tickets_sold_total,
            sum(revenue) AS revenue_total,
            sumIf(tickets_sold, sales_date = toDate(now(), 'Europe/Moscow')) AS tickets_sold_today,
            sumIf(revenue, sales_date = toDate(now(), 'Europe/Moscow')) AS revenue_today
        FROM fact_qtickets_sales_daily FINAL
        GROUP BY event_id
    ),
    events AS (
        SELECT event_id, any(event_name) AS event_name
        FROM dim_events FINAL
        GROUP BY event_id
    ),
    inventory AS (
        SELECT event_id, sum(capacity) AS capacity, sum(free_seats) AS free_seats
        FROM fact_qtickets_inventory_latest FINAL
        GROUP BY event_id
    )
SELECT
    sales.event_id AS event_id,
    events.event_name AS event_name,
    sales.tickets_sold_total AS tickets_sold_total,
    sales.revenue_total AS revenue_total,
    sales.tickets_sold_today AS tickets_sold_today,
    sales.revenue_today AS revenue_today,
    inventory.capacity AS capacity,
    inventory.free_seats AS free_seats
FROM sales
LEFT JOIN events ON events.event_id = sales.event_id
LEFT JOIN inventory ON inventory.event_id = sales.event_id;

CREATE TABLE IF NOT EXISTS meta_job_runs
(
    run_id              String,
    job_name            LowCardinality(String),
    started_at          DateTime64(3, 'Europe/Moscow'),
    finished_at         DateTime64(3, 'Europe/Moscow'),
    status              LowCardinality(String),
    partition_range     String,
    rows                Map(String, UInt64),
    error               String,
    _ver                UInt64
)
ENGINE = ReplacingMergeTree(_ver)
PARTITION BY toYYYYMM(started_at)
ORDER BY (job_name, run_id);
