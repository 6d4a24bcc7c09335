-- BIOS settings (API 1.40, registry fields 1.74) and firmware components
-- (API 1.86) of nodes, as their BMCs report them. Keep in step with
-- ../postgres/0007_bios_firmware.sql. Rows go with their node.
CREATE TABLE bios_settings (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    node_uuid TEXT NOT NULL REFERENCES nodes (uuid) ON DELETE CASCADE,
    name TEXT NOT NULL,
    value TEXT,
    attribute_type TEXT,
    allowable_values TEXT,
    lower_bound INTEGER,
    upper_bound INTEGER,
    min_length INTEGER,
    max_length INTEGER,
    read_only INTEGER,
    reset_required INTEGER,
    is_unique INTEGER,
    created_at TEXT NOT NULL,
    updated_at TEXT,
    CONSTRAINT bios_settings_name_key UNIQUE (node_uuid, name)
);

CREATE TABLE firmware_components (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    node_uuid TEXT NOT NULL REFERENCES nodes (uuid) ON DELETE CASCADE,
    component TEXT NOT NULL,
    initial_version TEXT NOT NULL,
    current_version TEXT,
    last_version_flashed TEXT,
    vendor TEXT,
    model TEXT,
    serial_number TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT,
    CONSTRAINT firmware_components_component_key UNIQUE (node_uuid, component)
);
