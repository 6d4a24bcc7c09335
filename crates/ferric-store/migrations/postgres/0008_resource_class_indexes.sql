-- Indexes for the resource-class list filters and allocation matching that a
-- large fleet hits.
CREATE INDEX nodes_resource_class_idx ON nodes (resource_class);
CREATE INDEX allocations_resource_class_idx ON allocations (resource_class);
