-- Allocations (API 1.52): requests for a node of a resource class with some
-- traits. Keep in step with ../postgres/0004_allocations.sql.
-- A node is reserved for at most one allocation (node_uuid is UNIQUE), and
-- the reservation itself is the node's instance_uuid/allocation_uuid, set in
-- the same transaction that records the allocation as active.
CREATE TABLE allocations (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    uuid TEXT NOT NULL UNIQUE,
    name TEXT UNIQUE,
    node_uuid TEXT UNIQUE REFERENCES nodes (uuid),
    state TEXT NOT NULL,
    last_error TEXT,
    resource_class TEXT,
    traits TEXT NOT NULL,
    candidate_nodes TEXT NOT NULL,
    extra TEXT NOT NULL,
    owner TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT
);

CREATE INDEX allocations_state_idx ON allocations (state);
CREATE INDEX allocations_owner_idx ON allocations (owner);
CREATE INDEX nodes_allocation_uuid_idx ON nodes (allocation_uuid);
