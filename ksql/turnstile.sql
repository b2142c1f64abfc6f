-- ksqlDB statements whose semantics the worker implements natively (table
-- `turnstile-summary`, changelog topic TURNSTILE_SUMMARY). Run them against ksqlDB to let it
-- compute the same table instead.

-- Every turnstile entry is an event, so the source is a STREAM (a TABLE would keep only the
-- latest entry per key and count keys, not entries).
CREATE STREAM IF NOT EXISTS turnstile (
    station_id INT,
    station_name VARCHAR,
    line VARCHAR
) WITH (
    KAFKA_TOPIC = 'org.chicago.cta.turnstile.v1',
    VALUE_FORMAT = 'AVRO'
);

-- Entries per station. The worker writes the same rows, {"STATION_ID": ..., "COUNT": ...},
-- keyed by the station id in JSON.
CREATE TABLE IF NOT EXISTS turnstile_summary WITH (
    KAFKA_TOPIC = 'TURNSTILE_SUMMARY',
    KEY_FORMAT = 'JSON',
    VALUE_FORMAT = 'JSON'
) AS
    SELECT station_id AS station_key,
           AS_VALUE(station_id) AS station_id,
           COUNT(*) AS count
    FROM turnstile
    GROUP BY station_id
    EMIT CHANGES;
