-- `_dedup_key` is computed by ClickHouse from the business key (the hash `rebuild` gives the marts),
-- instead of a Python hash per row: an insert that leaves the column out gets it.
ALTER TABLE stg_qtickets_api_orders_raw MODIFY COLUMN _dedup_key UInt64 DEFAULT cityHash64(order_id, basket_id);
ALTER TABLE stg_qtickets_api_events_raw MODIFY COLUMN _dedup_key UInt64 DEFAULT cityHash64(event_id, show_id);
ALTER TABLE stg_qtickets_api_inventory_raw MODIFY COLUMN _dedup_key UInt64 DEFAULT cityHash64(show_id, offer_id);
