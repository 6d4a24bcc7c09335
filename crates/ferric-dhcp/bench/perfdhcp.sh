#!/bin/bash
# Full-DORA load test with ISC perfdhcp (Debian package kea-admin) against
# ferric's DHCP server, kea-dhcp4 (memfile, not persisted) and dnsmasq, each
# alone in a server namespace; perfdhcp runs in a client namespace and acts
# as a relay (giaddr 198.18.0.2). Addresses only from 198.18.0.0/15.
# Needs root. Usage: [PERIOD=10] [SERVERS="ferric kea dnsmasq"] bench/perfdhcp.sh TESTSERVER_BINARY [RATES...]
# Prints one line per (server, rate): sent/received DORA counts and delays.
set -u
BIN=${1:?path to ferric-dhcp-testserver (release build)}; shift
RATES=${*:-500 1000 2000 4000 8000}
PERIOD=${PERIOD:-10}
S=fdb-s-$$; C=fdb-c-$$; SV=fdbs$$; CV=fdbc$$
W=$(mktemp -d)
cleanup() {
  for ns in $C $S; do
    for p in $(ip netns pids $ns 2>/dev/null); do kill -9 "$p" 2>/dev/null; done
    ip netns del $ns 2>/dev/null
  done
  rm -rf "$W"
}
trap cleanup EXIT
ip netns add $S; ip netns add $C
ip link add name $SV netns $S type veth peer name $CV netns $C
for pair in "$S $SV 198.18.0.1/16" "$C $CV 198.18.0.2/16"; do
  set -- $pair; ip -n $1 link set lo up; ip -n $1 link set $2 up; ip -n $1 addr add $3 dev $2
done

start() { # name
  case $1 in
    ferric) ip netns exec $S "$BIN" --iface $SV --server-ip 198.18.0.1 --subnet 198.18.0.0/16 \
              --range 198.18.1.0-198.18.255.254 --router 198.18.0.1 --lease-time 3600 --any-mac \
              > "$W/server.out" 2> "$W/server.err" & ;;
    kea) cat > "$W/kea.json" <<JSON
{ "Dhcp4": { "interfaces-config": { "interfaces": [ "$SV" ] },
  "lease-database": { "type": "memfile", "persist": false, "lfc-interval": 0 },
  "valid-lifetime": 3600,
  "subnet4": [ { "id": 1, "subnet": "198.18.0.0/16", "pools": [ { "pool": "198.18.1.0 - 198.18.255.254" } ],
                 "option-data": [ { "name": "routers", "data": "198.18.0.1" } ] } ],
  "loggers": [ { "name": "kea-dhcp4", "severity": "WARN", "output_options": [ { "output": "stderr" } ] } ] } }
JSON
         KEA_PIDFILE_DIR=$W KEA_LOCKFILE_DIR=$W ip netns exec $S kea-dhcp4 -c "$W/kea.json" > "$W/server.out" 2> "$W/server.err" & ;;
    dnsmasq) ip netns exec $S dnsmasq --keep-in-foreground --port=0 --no-resolv --no-hosts --no-ping \
              --bind-interfaces --interface=$SV --except-interface=lo --dhcp-authoritative --leasefile-ro \
              --dhcp-range=198.18.1.0,198.18.255.254,255.255.0.0,1h --dhcp-lease-max=100000 \
              --dhcp-option=3,198.18.0.1 --pid-file="$W/dnsmasq.pid" --log-facility="$W/dnsmasq.log" \
              > "$W/server.out" 2> "$W/server.err" & ;;
  esac
  for _ in $(seq 50); do ip netns exec $S ss -Hlnu "sport = :67" | grep -q . && break; sleep 0.1; done
  sleep 0.3
}
stop() { for p in $(ip netns pids $S); do kill "$p" 2>/dev/null; done; sleep 0.5; for p in $(ip netns pids $S); do kill -9 "$p" 2>/dev/null; done; }

for server in ${SERVERS:-ferric kea dnsmasq}; do
  for rate in $RATES; do
    start $server   # fresh server (empty lease table) per rate
    out=$(ip netns exec $C perfdhcp -4 -l 198.18.0.2 -r $rate -p $PERIOD -R 1000000 -W 2000000 198.18.0.1 2>&1)
    sent=$(echo "$out" | awk '/^sent packets/{print $3}' | paste -sd/)
    recv=$(echo "$out" | awk '/^received packets/{print $3}' | paste -sd/)
    drops=$(echo "$out" | awk '/^drops ratio/{print $3}' | paste -sd/)
    avg=$(echo "$out" | awk '/^avg delay/{print $3}' | paste -sd/)
    max=$(echo "$out" | awk '/^max delay/{print $3}' | paste -sd/)
    echo "server=$server rate=$rate period=${PERIOD}s sent(D/R)=$sent received(O/A)=$recv drops=$drops avg_ms=$avg max_ms=$max"
    stop
  done
done
