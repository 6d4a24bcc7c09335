-- ferric's initial schema (PostgreSQL). Keep in step with ../sqlite/0001_initial.sql:
-- the same tables, columns and constraint names; only the types differ.
-- UUIDs are TEXT, timestamps are TEXT in a fixed-width UTC form (so text
-- order is time order), JSON values are TEXT, booleans are BOOLEAN.
-- Text columns use the "C" collation: byte order, as in SQLite, so sorting
-- and keyset pagination behave the same whatever the server's locale.

CREATE TABLE chassis (
    id BIGSERIAL PRIMARY KEY,
    uuid TEXT COLLATE "C" NOT NULL UNIQUE,
    description TEXT COLLATE "C",
    extra TEXT COLLATE "C" NOT NULL,
    created_at TEXT COLLATE "C" NOT NULL,
    updated_at TEXT COLLATE "C"
);

CREATE TABLE nodes (
    id BIGSERIAL PRIMARY KEY,
    version BIGINT NOT NULL,
    uuid TEXT COLLATE "C" NOT NULL UNIQUE,
    name TEXT COLLATE "C" UNIQUE,
    driver TEXT COLLATE "C" NOT NULL,
    driver_info TEXT COLLATE "C" NOT NULL,
    driver_internal_info TEXT COLLATE "C" NOT NULL,
    properties TEXT COLLATE "C" NOT NULL,
    instance_info TEXT COLLATE "C" NOT NULL,
    instance_uuid TEXT COLLATE "C" UNIQUE,
    instance_name TEXT COLLATE "C",
    chassis_uuid TEXT COLLATE "C" REFERENCES chassis (uuid),
    extra TEXT COLLATE "C" NOT NULL,
    power_state TEXT COLLATE "C",
    target_power_state TEXT COLLATE "C",
    provision_state TEXT COLLATE "C" NOT NULL,
    target_provision_state TEXT COLLATE "C",
    provision_updated_at TEXT COLLATE "C",
    maintenance BOOLEAN NOT NULL,
    maintenance_reason TEXT COLLATE "C",
    fault TEXT COLLATE "C",
    last_error TEXT COLLATE "C",
    reservation TEXT COLLATE "C",
    console_enabled BOOLEAN NOT NULL,
    inspection_started_at TEXT COLLATE "C",
    inspection_finished_at TEXT COLLATE "C",
    clean_step TEXT COLLATE "C" NOT NULL,
    deploy_step TEXT COLLATE "C" NOT NULL,
    service_step TEXT COLLATE "C" NOT NULL,
    raid_config TEXT COLLATE "C" NOT NULL,
    target_raid_config TEXT COLLATE "C" NOT NULL,
    bios_interface TEXT COLLATE "C",
    boot_interface TEXT COLLATE "C",
    console_interface TEXT COLLATE "C",
    deploy_interface TEXT COLLATE "C",
    firmware_interface TEXT COLLATE "C",
    inspect_interface TEXT COLLATE "C",
    management_interface TEXT COLLATE "C",
    network_interface TEXT COLLATE "C",
    power_interface TEXT COLLATE "C",
    raid_interface TEXT COLLATE "C",
    rescue_interface TEXT COLLATE "C",
    storage_interface TEXT COLLATE "C",
    vendor_interface TEXT COLLATE "C",
    resource_class TEXT COLLATE "C",
    traits TEXT COLLATE "C" NOT NULL,
    conductor_group TEXT COLLATE "C" NOT NULL,
    automated_clean BOOLEAN,
    protected BOOLEAN NOT NULL,
    protected_reason TEXT COLLATE "C",
    owner TEXT COLLATE "C",
    lessee TEXT COLLATE "C",
    description TEXT COLLATE "C",
    allocation_uuid TEXT COLLATE "C",
    retired BOOLEAN NOT NULL,
    retired_reason TEXT COLLATE "C",
    network_data TEXT COLLATE "C" NOT NULL,
    boot_mode TEXT COLLATE "C",
    secure_boot BOOLEAN,
    shard TEXT COLLATE "C",
    parent_node TEXT COLLATE "C",
    disable_power_off BOOLEAN NOT NULL,
    health TEXT COLLATE "C",
    conductor_affinity TEXT COLLATE "C",
    pending_action TEXT COLLATE "C",
    created_at TEXT COLLATE "C" NOT NULL,
    updated_at TEXT COLLATE "C"
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
    id BIGSERIAL PRIMARY KEY,
    uuid TEXT COLLATE "C" NOT NULL UNIQUE,
    name TEXT COLLATE "C" UNIQUE,
    address TEXT COLLATE "C" UNIQUE,
    node_uuid TEXT COLLATE "C" NOT NULL REFERENCES nodes (uuid),
    extra TEXT COLLATE "C" NOT NULL,
    internal_info TEXT COLLATE "C" NOT NULL,
    standalone_ports_supported BOOLEAN NOT NULL,
    mode TEXT COLLATE "C",
    properties TEXT COLLATE "C" NOT NULL,
    physical_network TEXT COLLATE "C",
    category TEXT COLLATE "C",
    created_at TEXT COLLATE "C" NOT NULL,
    updated_at TEXT COLLATE "C"
);

CREATE INDEX portgroups_node_uuid_idx ON portgroups (node_uuid);

CREATE TABLE ports (
    id BIGSERIAL PRIMARY KEY,
    uuid TEXT COLLATE "C" NOT NULL UNIQUE,
    address TEXT COLLATE "C" NOT NULL UNIQUE,
    node_uuid TEXT COLLATE "C" NOT NULL REFERENCES nodes (uuid),
    portgroup_uuid TEXT COLLATE "C" REFERENCES portgroups (uuid),
    name TEXT COLLATE "C",
    description TEXT COLLATE "C",
    extra TEXT COLLATE "C" NOT NULL,
    internal_info TEXT COLLATE "C" NOT NULL,
    local_link_connection TEXT COLLATE "C" NOT NULL,
    pxe_enabled BOOLEAN NOT NULL,
    physical_network TEXT COLLATE "C",
    is_smartnic BOOLEAN NOT NULL,
    vendor TEXT COLLATE "C",
    category TEXT COLLATE "C",
    available_for_dynamic_portgroup BOOLEAN NOT NULL,
    created_at TEXT COLLATE "C" NOT NULL,
    updated_at TEXT COLLATE "C"
);

CREATE INDEX ports_node_uuid_idx ON ports (node_uuid);
CREATE INDEX ports_portgroup_uuid_idx ON ports (portgroup_uuid);

CREATE TABLE conductors (
    id BIGSERIAL PRIMARY KEY,
    hostname TEXT COLLATE "C" NOT NULL UNIQUE,
    conductor_group TEXT COLLATE "C" NOT NULL,
    online BOOLEAN NOT NULL,
    created_at TEXT COLLATE "C" NOT NULL,
    updated_at TEXT COLLATE "C"
);

CREATE TABLE conductor_hardware_interfaces (
    id BIGSERIAL PRIMARY KEY,
    conductor TEXT COLLATE "C" NOT NULL REFERENCES conductors (hostname) ON DELETE CASCADE,
    hardware_type TEXT COLLATE "C" NOT NULL,
    interface_type TEXT COLLATE "C" NOT NULL,
    implementation TEXT COLLATE "C" NOT NULL,
    is_default BOOLEAN NOT NULL,
    UNIQUE (conductor, hardware_type, interface_type, implementation)
);

CREATE TABLE node_history (
    id BIGSERIAL PRIMARY KEY,
    uuid TEXT COLLATE "C" NOT NULL UNIQUE,
    node_uuid TEXT COLLATE "C" NOT NULL REFERENCES nodes (uuid),
    severity TEXT COLLATE "C" NOT NULL,
    event TEXT COLLATE "C" NOT NULL,
    event_type TEXT COLLATE "C" NOT NULL,
    conductor TEXT COLLATE "C",
    user_name TEXT COLLATE "C",
    state TEXT COLLATE "C",
    target_provision_state TEXT COLLATE "C",
    duration_seconds DOUBLE PRECISION,
    created_at TEXT COLLATE "C" NOT NULL
);

CREATE INDEX node_history_node_uuid_idx ON node_history (node_uuid, created_at);
