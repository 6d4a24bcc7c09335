-- Volume connectors and targets (API 1.32) and inspection rules (API 1.96).
-- Keep in step with ../sqlite/0006_volumes_inspection_rules.sql.
-- Connectors and targets go with their node (ON DELETE CASCADE). The
-- composite unique constraints are named <table>_<last column>_key, the
-- name PostgreSQL gives a one-column UNIQUE, so the store reports a
-- duplicate connector_id / boot_index the same way on both backends.
CREATE TABLE volume_connectors (
    id BIGSERIAL PRIMARY KEY,
    uuid TEXT COLLATE "C" NOT NULL UNIQUE,
    node_uuid TEXT COLLATE "C" NOT NULL REFERENCES nodes (uuid) ON DELETE CASCADE,
    connector_type TEXT COLLATE "C" NOT NULL,
    connector_id TEXT COLLATE "C" NOT NULL,
    extra TEXT COLLATE "C" NOT NULL,
    created_at TEXT COLLATE "C" NOT NULL,
    updated_at TEXT COLLATE "C",
    CONSTRAINT volume_connectors_connector_id_key UNIQUE (connector_type, connector_id)
);

CREATE INDEX volume_connectors_node_uuid_idx ON volume_connectors (node_uuid);

CREATE TABLE volume_targets (
    id BIGSERIAL PRIMARY KEY,
    uuid TEXT COLLATE "C" NOT NULL UNIQUE,
    node_uuid TEXT COLLATE "C" NOT NULL REFERENCES nodes (uuid) ON DELETE CASCADE,
    volume_type TEXT COLLATE "C" NOT NULL,
    properties TEXT COLLATE "C" NOT NULL,
    boot_index BIGINT NOT NULL,
    volume_id TEXT COLLATE "C" NOT NULL,
    extra TEXT COLLATE "C" NOT NULL,
    created_at TEXT COLLATE "C" NOT NULL,
    updated_at TEXT COLLATE "C",
    CONSTRAINT volume_targets_boot_index_key UNIQUE (node_uuid, boot_index)
);

CREATE INDEX volume_targets_node_uuid_idx ON volume_targets (node_uuid);

CREATE TABLE inspection_rules (
    id BIGSERIAL PRIMARY KEY,
    uuid TEXT COLLATE "C" NOT NULL UNIQUE,
    description TEXT COLLATE "C",
    priority BIGINT NOT NULL,
    sensitive BOOLEAN NOT NULL,
    phase TEXT COLLATE "C" NOT NULL,
    conditions TEXT COLLATE "C" NOT NULL,
    actions TEXT COLLATE "C" NOT NULL,
    built_in BOOLEAN NOT NULL,
    created_at TEXT COLLATE "C" NOT NULL,
    updated_at TEXT COLLATE "C"
);

CREATE INDEX inspection_rules_phase_idx ON inspection_rules (phase);
