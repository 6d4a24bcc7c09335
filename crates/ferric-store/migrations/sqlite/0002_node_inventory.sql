-- The hardware inventory inspection recorded for a node (one per node,
-- replaced by the next inspection), as GET /v1/nodes/{node}/inventory shows it.
CREATE TABLE node_inventory (
    node_uuid TEXT PRIMARY KEY REFERENCES nodes (uuid),
    inventory TEXT NOT NULL,
    plugin_data TEXT NOT NULL,
    created_at TEXT NOT NULL
);
