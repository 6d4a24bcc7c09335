-- Volume connectors and targets (API 1.32) and inspection rules (API 1.96).
-- Keep in step with ../postgres/0006_volumes_inspection_rules.sql.
-- Connectors and targets go with their node (ON DELETE CASCADE). The
-- composite unique constraints are named <table>_<last column>_key, the
-- name PostgreSQL gives a one-column UNIQUE, so the store reports a
-- duplicate connector_id / boot_index the same way on both backends.
CREATE TABLE volume_connectors (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    uuid TEXT NOT NULL UNIQUE,
    node_uuid TEXT NOT NULL REFERENCES nodes (uuid) ON DELETE CASCADE,
    connector_type TEXT NOT NULL,
    connector_id TEXT NOT NULL,
    extra TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT,
    CONSTRAINT volume_connectors_connector_id_key UNIQUE (connector_type, connector_id)
);

CREATE INDEX volume_connectors_node_uuid_idx ON volume_connectors (node_uuid);

CREATE TABLE volume_targets (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    uuid TEXT NOT NULL UNIQUE,
    node_uuid TEXT NOT NULL REFERENCES nodes (uuid) ON DELETE CASCADE,
    volume_type TEXT NOT NULL,
    properties TEXT NOT NULL,
    boot_index INTEGER NOT NULL,
    volume_id TEXT NOT NULL,
    extra TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT,
    CONSTRAINT volume_targets_boot_index_key UNIQUE (node_uuid, boot_index)
);

CREATE INDEX volume_targets_node_uuid_idx ON volume_targets (node_uuid);

CREATE TABLE inspection_rules (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    uuid TEXT NOT NULL UNIQUE,
    description TEXT,
    priority INTEGER NOT NULL,
    sensitive INTEGER NOT NULL,
    phase TEXT NOT NULL,
    conditions TEXT NOT NULL,
    actions TEXT NOT NULL,
    built_in INTEGER NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT
);

CREATE INDEX inspection_rules_phase_idx ON inspection_rules (phase);
