-- Deploy templates (1.55) and runbooks (1.92). Keep in step with
-- ../sqlite/0005_templates_runbooks.sql. Steps (and a runbook's traits) are
-- JSON text: they are always read and written whole.
CREATE TABLE deploy_templates (
    id BIGSERIAL PRIMARY KEY,
    uuid TEXT COLLATE "C" NOT NULL UNIQUE,
    name TEXT COLLATE "C" NOT NULL UNIQUE,
    steps TEXT COLLATE "C" NOT NULL,
    extra TEXT COLLATE "C" NOT NULL,
    created_at TEXT COLLATE "C" NOT NULL,
    updated_at TEXT COLLATE "C"
);

CREATE TABLE runbooks (
    id BIGSERIAL PRIMARY KEY,
    uuid TEXT COLLATE "C" NOT NULL UNIQUE,
    name TEXT COLLATE "C" NOT NULL UNIQUE,
    description TEXT COLLATE "C",
    steps TEXT COLLATE "C" NOT NULL,
    disable_ramdisk BOOLEAN NOT NULL,
    public BOOLEAN NOT NULL,
    owner TEXT COLLATE "C",
    traits TEXT COLLATE "C" NOT NULL,
    extra TEXT COLLATE "C" NOT NULL,
    created_at TEXT COLLATE "C" NOT NULL,
    updated_at TEXT COLLATE "C"
);

CREATE INDEX runbooks_owner_idx ON runbooks (owner);
