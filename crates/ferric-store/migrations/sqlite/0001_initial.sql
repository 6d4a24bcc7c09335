-- ferric's initial schema (SQLite). Keep in step with ../postgres/0001_initial.sql:
-- the same tables, columns and constraint names; only the types differ.
-- UUIDs are TEXT, timestamps are TEXT in a fixed-width UTC form (so text
-- order is time order), JSON values are TEXT, booleans are INTEGER 0/1.

CREATE TABLE chassis (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    uuid TEXT NOT NULL UNIQUE,
    description TEXT,
    extra TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT
);

CREATE TABLE nodes (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    version INTEGER NOT NULL,
    uuid TEXT NOT NULL UNIQUE,
    name TEXT UNIQUE,
    driver TEXT NOT NULL,
    driver_info TEXT NOT NULL,
    driver_internal_info TEXT NOT NULL,
    properties TEXT NOT NULL,
    instance_info TEXT NOT NULL,
    instance_uuid TEXT UNIQUE,
    instance_name TEXT,
    chassis_uuid TEXT REFERENCES chassis (uuid),
    extra TEXT NOT NULL,
    power_state TEXT,
    target_power_state TEXT,
    provision_state TEXT NOT NULL,
    target_provision_state TEXT,
    provision_updated_at TEXT,
    maintenance INTEGER NOT NULL,
    maintenance_reason TEXT,
    fault TEXT,
    last_error TEXT,
    reservation TEXT,
    console_enabled INTEGER NOT NULL,
    inspection_started_at TEXT,
    inspection_finished_at TEXT,
    clean_step TEXT NOT NULL,
    deploy_step TEXT NOT NULL,
    service_step TEXT NOT NULL,
    raid_config TEXT NOT NULL,
    target_raid_config TEXT NOT NULL,
    bios_interface TEXT,
    boot_interface TEXT,
    console_interface TEXT,
    deploy_interface TEXT,
    firmware_interface TEXT,
    inspect_interface TEXT,
    management_interface TEXT,
    network_interface TEXT,
    power_interface TEXT,
    raid_interface TEXT,
    rescue_interface TEXT,
    storage_interface TEXT,
    vendor_interface TEXT,
    resource_class TEXT,
    traits TEXT NOT NULL,
    conductor_group TEXT NOT NULL,
    automated_clean INTEGER,
    protected INTEGER NOT NULL,
    protected_reason TEXT,
    owner TEXT,
    lessee TEXT,
    description TEXT,
    allocation_uuid TEXT,
    retired INTEGER NOT NULL,
    retired_reason TEXT,
    network_data TEXT NOT NULL,
    boot_mode TEXT,
    secure_boot INTEGER,
    shard TEXT,
    parent_node TEXT,
    disable_power_off INTEGER NOT NULL,
    health TEXT,
    conductor_affinity TEXT,
    pending_action TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT
);

CREATE INDEX nodes_provision_state_idx ON nodes (provision_state);
CREATE INDEX nodes_reservation_idx ON nodes (reservation);
CREATE INDEX nodes_conductor_group_idx ON nodes (conductor_group);
CREATE INDEX nodes_chassis_uuid_idx ON nodes (chassis_uuid);
CREATE INDEX nodes_driver_idx ON nodes (driver);
CREATE INDEX nodes_owner_idx ON nodes (owner);
CREATE INDEX nodes_lessee_idx ON nodes (lessee);
CREATE INDEX nodes_shard_idx ON nodes (shard);
CREATE INDEX nodes_parent_node_idx ON nodes (parent_node);
CREATE INDEX nodes_provision_updated_at_idx ON nodes (provision_updated_at);

CREATE TABLE portgroups (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    uuid TEXT NOT NULL UNIQUE,
    name TEXT UNIQUE,
    address TEXT UNIQUE,
    node_uuid TEXT NOT NULL REFERENCES nodes (uuid),
    extra TEXT NOT NULL,
    internal_info TEXT NOT NULL,
    standalone_ports_supported INTEGER NOT NULL,
    mode TEXT,
    properties TEXT NOT NULL,
    physical_network TEXT,
    category TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT
);

CREATE INDEX portgroups_node_uuid_idx ON portgroups (node_uuid);

CREATE TABLE ports (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    uuid TEXT NOT NULL UNIQUE,
    address TEXT NOT NULL UNIQUE,
    node_uuid TEXT NOT NULL REFERENCES nodes (uuid),
    portgroup_uuid TEXT REFERENCES portgroups (uuid),
    name TEXT,
    description TEXT,
    extra TEXT NOT NULL,
    internal_info TEXT NOT NULL,
    local_link_connection TEXT NOT NULL,
    pxe_enabled INTEGER NOT NULL,
    physical_network TEXT,
    is_smartnic INTEGER NOT NULL,
    vendor TEXT,
    category TEXT,
    available_for_dynamic_portgroup INTEGER NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT
);

CREATE INDEX ports_node_uuid_idx ON ports (node_uuid);
CREATE INDEX ports_portgroup_uuid_idx ON ports (portgroup_uuid);

CREATE TABLE conductors (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    hostname TEXT NOT NULL UNIQUE,
    conductor_group TEXT NOT NULL,
    online INTEGER NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT
);

CREATE TABLE conductor_hardware_interfaces (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    conductor TEXT NOT NULL REFERENCES conductors (hostname) ON DELETE CASCADE,
    hardware_type TEXT NOT NULL,
    interface_type TEXT NOT NULL,
    implementation TEXT NOT NULL,
    is_default INTEGER NOT NULL,
    UNIQUE (conductor, hardware_type, interface_type, implementation)
);

CREATE TABLE node_history (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    uuid TEXT NOT NULL UNIQUE,
    node_uuid TEXT NOT NULL REFERENCES nodes (uuid),
    severity TEXT NOT NULL,
    event TEXT NOT NULL,
    event_type TEXT NOT NULL,
    conductor TEXT,
    user_name TEXT,
    state TEXT,
    target_provision_state TEXT,
    duration_seconds REAL,
    created_at TEXT NOT NULL
);

CREATE INDEX node_history_node_uuid_idx ON node_history (node_uuid, created_at);
