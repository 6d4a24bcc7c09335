-- Allocations (API 1.52): requests for a node of a resource class with some
-- traits. Keep in step with ../sqlite/0004_allocations.sql.
-- A node is reserved for at most one allocation (node_uuid is UNIQUE), and
-- the reservation itself is the node's instance_uuid/allocation_uuid, set in
-- the same transaction that records the allocation as active.
CREATE TABLE allocations (
    id BIGSERIAL PRIMARY KEY,
    uuid TEXT COLLATE "C" NOT NULL UNIQUE,
    name TEXT COLLATE "C" UNIQUE,
    node_uuid TEXT COLLATE "C" UNIQUE REFERENCES nodes (uuid),
    state TEXT COLLATE "C" NOT NULL,
    last_error TEXT COLLATE "C",
    resource_class TEXT COLLATE "C",
    traits TEXT COLLATE "C" NOT NULL,
    candidate_nodes TEXT COLLATE "C" NOT NULL,
    extra TEXT COLLATE "C" NOT NULL,
    owner TEXT COLLATE "C",
    created_at TEXT COLLATE "C" NOT NULL,
    updated_at TEXT COLLATE "C"
);

CREATE INDEX allocations_state_idx ON allocations (state);
CREATE INDEX allocations_owner_idx ON allocations (owner);
CREATE INDEX nodes_allocation_uuid_idx ON nodes (allocation_uuid);
