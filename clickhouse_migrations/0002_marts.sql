-- Marts: computed inside ClickHouse from staging (read with FINAL). Names are the BI contract.

CREATE TABLE IF NOT EXISTS fact_qtickets_sales_daily
(
    sales_date          Date,
    event_id            UInt64,
    show_id             UInt64,
    tickets_sold        UInt64,
    revenue             Decimal(18, 2),
    orders_count        UInt64,
    refunded_tickets    UInt64,
    refunds_amount      Decimal(18, 2),
    _loaded_at          DateTime64(3, 'Europe/Moscow'),
    _ver                UInt64,
    _dedup_key          UInt64,
    _deleted            UInt8 DEFAULT 0
)
ENGINE = ReplacingMergeTree(_ver, _deleted)
PARTITION BY toYYYYMM(sales_date)
ORDER BY (sales_date, event_id, show_id);

CREATE TABLE IF NOT EXISTS fact_qtickets_inventory_latest
(
    event_id            UInt64,
    show_id             UInt64,
    capacity            UInt64,
    free_seats          UInt64,
    sold_seats          UInt64,
    snapshot_at         DateTime64(3, 'Europe/Moscow'),
    _loaded_at          DateTime64(3, 'Europe/Moscow'),
    _ver                UInt64,
    _dedup_key          UInt64,
    _deleted            UInt8 DEFAULT 0
)
ENGINE = ReplacingMergeTree(_ver, _deleted)
ORDER BY (event_id, show_id);

-- is_deleted is the event's soft delete in QTickets (kept: its sales history stays);
-- _deleted is our tombstone for a row that vanished from the API.
CREATE TABLE IF NOT EXISTS dim_events
(
    event_id            UInt64,
    show_id             UInt64,
    event_name          String,
    city                LowCardinality(String),
    city_timezone       LowCardinality(String),
    venue               String,
    show_start_at       Nullable(DateTime64(3, 'Europe/Moscow')),
    show_finish_at      Nullable(DateTime64(3, 'Europe/Moscow')),
    is_active           UInt8,
    is_deleted          UInt8,
    _loaded_at          DateTime64(3, 'Europe/Moscow'),
    _ver                UInt64,
    _dedup_key          UInt64,
    _deleted            UInt8 DEFAULT 0
)
ENGINE = ReplacingMergeTree(_ver, _deleted)
ORDER BY (event_id, show_id);
