-- Event data model (Segment-spec naming). One DuckDB file; all timestamps UTC.
CREATE TABLE users (
    user_id             VARCHAR PRIMARY KEY,
    signed_up_at        TIMESTAMP,
    country             VARCHAR,
    acquisition_channel VARCHAR,
    plan                VARCHAR
);

CREATE TABLE events (
    event_id      VARCHAR NOT NULL,
    ts            TIMESTAMP NOT NULL,
    user_id       VARCHAR NOT NULL,
    session_id    VARCHAR,
    event         VARCHAR NOT NULL,
    platform      VARCHAR,
    os            VARCHAR,
    app_version   VARCHAR,
    browser       VARCHAR,
    country       VARCHAR,
    page          VARCHAR,
    product_id    VARCHAR,
    category      VARCHAR,
    price         DOUBLE,
    revenue       DOUBLE,
    search_query  VARCHAR,
    results_count INTEGER,
    error_code    VARCHAR,
    load_time_ms  INTEGER,
    properties    JSON
);

CREATE TABLE experiments (
    experiment_id  VARCHAR PRIMARY KEY,
    name           VARCHAR,
    started_at     TIMESTAMP,
    ended_at       TIMESTAMP,
    hypothesis     VARCHAR,
    primary_metric VARCHAR
);

CREATE TABLE assignments (
    experiment_id VARCHAR NOT NULL,
    user_id       VARCHAR NOT NULL,
    variant       VARCHAR NOT NULL,
    assigned_at   TIMESTAMP
);

CREATE TABLE products (
    product_id VARCHAR PRIMARY KEY,
    name       VARCHAR,
    category   VARCHAR,
    price      DOUBLE
);
