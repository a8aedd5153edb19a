-- Occupancy that survives the show, and the sales pace (docs/BI.md).
-- The inventory fact keeps a show's last snapshot after the show has started; is_final flags it: the show is
-- no longer on sale in QTickets (started, switched off or deleted), so its counters will not change.
ALTER TABLE fact_qtickets_inventory_latest ADD COLUMN IF NOT EXISTS is_final UInt8 DEFAULT 0 AFTER snapshot_at;

-- v_sales_latest, columns only added: capacity now counts every show with inventory (on sale and final),
-- free_seats only the shows on sale (seats that can still be sold); sold_seats, capacity_on_sale,
-- shows_on_sale and shows_final are new.
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
        SELECT
            event_id,
            sum(capacity) AS all_capacity,
            sumIf(free_seats, NOT is_final) AS on_sale_free_seats,
            sum(sold_seats) AS all_sold_seats,
            sumIf(capacity, NOT is_final) AS on_sale_capacity,
            countIf(NOT is_final) AS on_sale_shows,
            countIf(is_final) AS final_shows
        FROM fact_qtickets_inventory_latest FINAL
        GROUP BY event_id
    ),
    event_ids AS (
        SELECT event_id FROM sales
        UNION DISTINCT
        SELECT event_id FROM inventory
    )
SELECT
    event_ids.event_id AS event_id,
    events.event_name AS event_name,
    sales.tickets_sold_total AS tickets_sold_total,
    sales.revenue_total AS revenue_total,
    sales.tickets_sold_today AS tickets_sold_today,
    sales.revenue_today AS revenue_today,
    inventory.all_capacity AS capacity,
    inventory.on_sale_free_seats AS free_seats,
    inventory.all_sold_seats AS sold_seats,
    inventory.on_sale_capacity AS capacity_on_sale,
    inventory.on_sale_shows AS shows_on_sale,
    inventory.final_shows AS shows_final
FROM event_ids
LEFT JOIN sales ON sales.event_id = event_ids.event_id
LEFT JOIN events ON events.event_id = event_ids.event_id
LEFT JOIN inventory ON inventory.event_id = event_ids.event_id;

-- One row per show with inventory: its last snapshot, live while on sale, final once the show has started.
CREATE OR REPLACE VIEW v_show_occupancy AS
SELECT
    inventory.event_id AS event_id,
    shows.name AS event_name,
    inventory.show_id AS show_id,
    shows.show_city AS city,
    shows.show_venue AS venue,
    shows.start_at AS show_start_at,
    inventory.capacity AS capacity,
    inventory.sold_seats AS sold_seats,
    inventory.free_seats AS free_seats,
    if(inventory.capacity = 0, 0, round(inventory.sold_seats / inventory.capacity, 4)) AS occupancy,
    if(inventory.is_final, 'final', 'on_sale') AS status,
    inventory.is_final AS is_final,
    inventory.snapshot_at AS snapshot_at
FROM fact_qtickets_inventory_latest AS inventory FINAL
LEFT JOIN (
    SELECT show_id, any(event_name) AS name, any(city) AS show_city, any(venue) AS show_venue,
           any(show_start_at) AS start_at
    FROM dim_events FINAL
    GROUP BY show_id
) AS shows ON shows.show_id = inventory.show_id;

-- Per (event, show, sales date): the day's sales and the running totals, by whole Moscow days before the
-- show's start (0 = the day of the show; negative = paid after that day).
CREATE OR REPLACE VIEW v_sales_pace AS
SELECT
    sales.event_id AS event_id,
    shows.name AS event_name,
    sales.show_id AS show_id,
    shows.start_at AS show_start_at,
    sales.sales_date AS sales_date,
    toInt32(dateDiff('day', sales.sales_date, toDate(shows.start_at, 'Europe/Moscow'))) AS days_before_show,
    sales.tickets_sold AS tickets_sold,
    sales.revenue AS revenue,
    sum(sales.tickets_sold) OVER (PARTITION BY sales.event_id, sales.show_id ORDER BY sales.sales_date
                                  ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS tickets_sold_cumulative,
    sum(sales.revenue) OVER (PARTITION BY sales.event_id, sales.show_id ORDER BY sales.sales_date
                             ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS revenue_cumulative
FROM (
    SELECT sales_date, event_id, show_id, sum(tickets_sold) AS tickets_sold, sum(revenue) AS revenue
    FROM fact_qtickets_sales_daily FINAL
    GROUP BY sales_date, event_id, show_id
) AS sales
INNER JOIN (
    SELECT show_id, any(event_name) AS name, assumeNotNull(any(show_start_at)) AS start_at
    FROM dim_events FINAL
    WHERE show_start_at IS NOT NULL
    GROUP BY show_id
) AS shows ON shows.show_id = sales.show_id;
