-- The hardware inventory inspection recorded for a node (one per node,
-- replaced by the next inspection), as GET /v1/nodes/{node}/inventory shows it.
CREATE TABLE node_inventory (
    node_uuid TEXT COLLATE "C" PRIMARY KEY REFERENCES nodes (uuid),
    inventory TEXT COLLATE "C" NOT NULL,
    plugin_data TEXT COLLATE "C" NOT NULL,
    created_at TEXT COLLATE "C" NOT NULL
);
