-- DHCP leases of ferric's DHCP server, so that a restart remembers them.
-- The server answers from memory and writes every change here behind the
-- packet path; at start it reads the unexpired rows back.
-- `mac` is lower-case colon form, `ip` dotted quad; times are Unix seconds.
CREATE TABLE dhcp_leases (
    mac TEXT PRIMARY KEY,
    ip TEXT NOT NULL UNIQUE,
    expires INTEGER NOT NULL,
    state TEXT NOT NULL,
    hostname TEXT,
    relay TEXT,
    updated_at TEXT NOT NULL
);

-- Addresses a client declined (in use by something else), kept out of use
-- until `until`.
CREATE TABLE dhcp_declines (
    ip TEXT PRIMARY KEY,
    until INTEGER NOT NULL
);
