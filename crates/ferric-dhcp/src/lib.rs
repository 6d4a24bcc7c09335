//! A DHCPv4 server for network boot, part of ferric's boot infrastructure.
