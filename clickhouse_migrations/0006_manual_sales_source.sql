-- Where a staged ticket came from: 'api' (the QTickets API, the default) or 'manual' (a CSV import of the
-- manual fallback, assets/manual.py). API runs never tombstone manual rows; an API row with the same
-- (order_id, basket_id) replaces a manual one.
ALTER TABLE stg_qtickets_api_orders_raw ADD COLUMN IF NOT EXISTS source LowCardinality(String) DEFAULT 'api' AFTER utm_campaign;
