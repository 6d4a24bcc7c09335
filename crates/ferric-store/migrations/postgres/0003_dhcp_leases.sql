-- DHCP leases of ferric's DHCP server, so that a restart remembers them.
-- The server answers from memory and writes every change here behind the
-- packet path; at start it reads the unexpired rows back.
-- `mac` is lower-case colon form, `ip` dotted quad; times are Unix seconds.
CREATE TABLE dhcp_leases (
    mac TEXT COLLATE "C" PRIMARY KEY,
    ip TEXT COLLATE "C" NOT NULL UNIQUE,
    expires BIGINT NOT NULL,
    state TEXT COLLATE "C" NOT NULL,
    hostname TEXT COLLATE "C",
    relay TEXT COLLATE "C",
    updated_at TEXT COLLATE "C" NOT NULL
);

-- Addresses a client declined (in use by something else), kept out of use
-- until `until`.
CREATE TABLE dhcp_declines (
    ip TEXT COLLATE "C" PRIMARY KEY,
    until BIGINT NOT NULL
);
