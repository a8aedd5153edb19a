-- Staging: what the QTickets API returned, typed, with the raw JSON kept.
-- Technical columns everywhere: _ver (version of the write), _dedup_key (hash of the business key),
-- _deleted (tombstone for a key that vanished), _loaded_at.

-- One row per basket (ticket); an order without baskets keeps one row with basket_id = 0.
CREATE TABLE IF NOT EXISTS stg_qtickets_api_orders_raw
(
    order_id            UInt64,
    basket_id           UInt64,
    order_uniqid        String,
    event_id            UInt64,
    show_id             UInt64,
    order_created_at    DateTime64(3, 'Europe/Moscow'),
    order_updated_at    DateTime64(3, 'Europe/Moscow'),
    order_deleted_at    Nullable(DateTime64(3, 'Europe/Moscow')),
    payed               UInt8,
    payed_at            Nullable(DateTime64(3, 'Europe/Moscow')),
    currency_id         LowCardinality(String),
    payment_type_id     LowCardinality(String),
    client_id           UInt64,
    seat_id             String,
    seat_name           String,
    multiprice_code     LowCardinality(String),
    quantity            UInt32,
    price               Decimal(18, 2),
    original_price      Decimal(18, 2),
    discount_value      Decimal(18, 2),
    basket_created_at   Nullable(DateTime64(3, 'Europe/Moscow')),
    basket_updated_at   Nullable(DateTime64(3, 'Europe/Moscow')),
    basket_deleted_at   Nullable(DateTime64(3, 'Europe/Moscow')),
    checked_at          Nullable(DateTime64(3, 'Europe/Moscow')),
    refunded_at         Nullable(DateTime64(3, 'Europe/Moscow')),
    refunded_amount     Decimal(18, 2),
    utm_source          LowCardinality(String),
    utm_medium          LowCardinality(String),
    utm_campaign        String,
    order_json          String CODEC(ZSTD(3)),
    basket_json         String CODEC(ZSTD(3)),
    _loaded_at          DateTime64(3, 'Europe/Moscow'),
    _ver                UInt64,
    _dedup_key          UInt64,
    _deleted            UInt8 DEFAULT 0
)
ENGINE = ReplacingMergeTree(_ver, _deleted)
PARTITION BY toYYYYMM(order_created_at)
ORDER BY (order_id, basket_id);

-- One row per (event, show); an event without shows keeps one row with show_id = 0.
CREATE TABLE IF NOT EXISTS stg_qtickets_api_events_raw
(
    event_id            UInt64,
    show_id             UInt64,
    event_name          String,
    event_is_active     UInt8,
    event_deleted_at    Nullable(DateTime64(3, 'Europe/Moscow')),
    city                LowCardinality(String),
    city_timezone       LowCardinality(String),
    venue               String,
    show_start_at       Nullable(DateTime64(3, 'Europe/Moscow')),
    show_finish_at      Nullable(DateTime64(3, 'Europe/Moscow')),
    show_is_active      UInt8,
    show_deleted_at     Nullable(DateTime64(3, 'Europe/Moscow')),
    event_json          String CODEC(ZSTD(3)),
    _loaded_at          DateTime64(3, 'Europe/Moscow'),
    _ver                UInt64,
    _dedup_key          UInt64,
    _deleted            UInt8 DEFAULT 0
)
ENGINE = ReplacingMergeTree(_ver, _deleted)
ORDER BY (event_id, show_id);

-- Latest seat/offer counters of each polled show (one row per offer id, several per root_id).
CREATE TABLE IF NOT EXISTS stg_qtickets_api_inventory_raw
(
    show_id             UInt64,
    event_id            UInt64,
    offer_id            String,
    root_id             String,
    zone_root_id        String,
    admission           UInt8,
    max_quantity        UInt32,
    free_quantity       UInt32,
    ordered_quantity    UInt32,
    payed_quantity      UInt32,
    in_basket_quantity  UInt32,
    price               Decimal(18, 2),
    multiprice_code     LowCardinality(String),
    snapshot_at         DateTime64(3, 'Europe/Moscow'),
    row_json            String CODEC(ZSTD(3)),
    _loaded_at          DateTime64(3, 'Europe/Moscow'),
    _ver                UInt64,
    _dedup_key          UInt64,
    _deleted            UInt8 DEFAULT 0
)
ENGINE = ReplacingMergeTree(_ver, _deleted)
ORDER BY (show_id, offer_id);
