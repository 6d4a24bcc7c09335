-- BIOS settings (API 1.40, registry fields 1.74) and firmware components
-- (API 1.86) of nodes, as their BMCs report them. Keep in step with
-- ../sqlite/0007_bios_firmware.sql. Rows go with their node.
CREATE TABLE bios_settings (
    id BIGSERIAL PRIMARY KEY,
    node_uuid TEXT COLLATE "C" NOT NULL REFERENCES nodes (uuid) ON DELETE CASCADE,
    name TEXT COLLATE "C" NOT NULL,
    value TEXT COLLATE "C",
    attribute_type TEXT COLLATE "C",
    allowable_values TEXT COLLATE "C",
    lower_bound BIGINT,
    upper_bound BIGINT,
    min_length BIGINT,
    max_length BIGINT,
    read_only BOOLEAN,
    reset_required BOOLEAN,
    is_unique BOOLEAN,
    created_at TEXT COLLATE "C" NOT NULL,
    updated_at TEXT COLLATE "C",
    CONSTRAINT bios_settings_name_key UNIQUE (node_uuid, name)
);

CREATE TABLE firmware_components (
    id BIGSERIAL PRIMARY KEY,
    node_uuid TEXT COLLATE "C" NOT NULL REFERENCES nodes (uuid) ON DELETE CASCADE,
    component TEXT COLLATE "C" NOT NULL,
    initial_version TEXT COLLATE "C" NOT NULL,
    current_version TEXT COLLATE "C",
    last_version_flashed TEXT COLLATE "C",
    vendor TEXT COLLATE "C",
    model TEXT COLLATE "C",
    serial_number TEXT COLLATE "C",
    created_at TEXT COLLATE "C" NOT NULL,
    updated_at TEXT COLLATE "C",
    CONSTRAINT firmware_components_component_key UNIQUE (node_uuid, component)
);
