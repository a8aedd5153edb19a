-- v_sales_latest lists every event that has sales or inventory: 0003 started from sales only, so an event
-- on sale with no ticket sold yet (inventory, no sales) was missing from the dashboard.

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
    inventory.capacity AS capacity,
    inventory.free_seats AS free_seats
FROM event_ids
LEFT JOIN sales ON sales.event_id = event_ids.event_id
LEFT JOIN events ON events.event_id = event_ids.event_id
LEFT JOIN inventory ON inventory.event_id = event_ids.event_id;
