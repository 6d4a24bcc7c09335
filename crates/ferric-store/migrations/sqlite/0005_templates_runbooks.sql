-- Deploy templates (1.55) and runbooks (1.92). Steps (and a runbook's
-- traits) are JSON text: they are always read and written whole.
CREATE TABLE deploy_templates (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    uuid TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL UNIQUE,
    steps TEXT NOT NULL,
    extra TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT
);

CREATE TABLE runbooks (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    uuid TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL UNIQUE,
    description TEXT,
    steps TEXT NOT NULL,
    disable_ramdisk INTEGER NOT NULL,
    public INTEGER NOT NULL,
    owner TEXT,
    traits TEXT NOT NULL,
    extra TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT
);

CREATE INDEX runbooks_owner_idx ON runbooks (owner);
