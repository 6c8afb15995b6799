# TCP MSS clamping by vtid (README "MSS clamping"; qemu kernels only: Debian's UML build has no
# nf_tables inet family). A client behind west (10.1.0.10, MTU 1500) opens a TCP connection to a
# server behind east (10.2.0.10, MTU 1500) through vti01 (MTU 1446). Both ends would offer an MSS
# of 1460; west's vtid, with `mss_clamp: auto`, clamps the SYN leaving through vti01 and the SYN-ACK
# arriving from it to 1406 (1446 - 40): each end's TCP_MAXSEG says 1406. East's vtid clamps nothing
# (the one gateway does both directions). The same over IPv6 (fd01::10 to fd02::10, one dual-stack
# Child SA, so libreswan 5.x: `--root debian13`): 1386 (1446 - 60), 1440 without the clamp. A
# foreign table on west (`table inet other`) is untouched.
[ -x "$UPDOWN" ] && [ "$UPDOWN" != /usr/libexec/ipsec/_updown ] || fail "this scenario tests vtid: set UPDOWN to vti-updown's path"
command -v nft >/dev/null || fail "no nft in this root (apt-get install nftables): the scenario cross-checks vtid's table with it"
ipsec --version 2>/dev/null | grep -q 'Libreswan [5-9]' \
  || fail "needs libreswan 5.x for one Child SA with IPv4 and IPv6 selectors (this root has $(ipsec --version 2>&1 | head -1)): run with --root debian13"
tb_switch
tb_host west 192.0.2.1/24
tb_host east 192.0.2.2/24
# The LANs: a client and a server namespace on a veth behind each gateway, which forwards.
for side in west:client:10.1.0 east:server:10.2.0; do
  IFS=: read -r gateway host net <<<"$side"
  ip netns add "$host"
  ip link add lan0 netns "$gateway" type veth peer name eth0 netns "$host"
  ip -n "$gateway" addr add "$net.1/24" dev lan0
  ip -n "$gateway" link set lan0 up
  ip -n "$host" link set lo up
  ip -n "$host" addr add "$net.10/24" dev eth0
  ip -n "$host" link set eth0 up
  ip -n "$host" route add default via "$net.1"
  ip netns exec "$gateway" sh -c "echo 1 >/proc/sys/net/ipv4/ip_forward"
  # IPv6: fdNN::1 on the gateway, fdNN::10 on the host (the same LAN numbering, 01 west, 02 east).
  v6=fd0${net:3:1}
  ip -n "$gateway" -6 addr add "$v6::1/64" dev lan0 nodad
  ip -n "$host" -6 addr add "$v6::10/64" dev eth0 nodad
  ip -n "$host" -6 route add default via "$v6::1"
  ip netns exec "$gateway" sh -c "echo 1 >/proc/sys/net/ipv6/conf/all/forwarding"
  # Without timestamps TCP_MAXSEG is the negotiated MSS itself (with them, 12 bytes less).
  ip netns exec "$host" sh -c "echo 0 >/proc/sys/net/ipv4/tcp_timestamps"
done
ip netns exec west nft -f - <<'NFT'
table inet other {
    chain forward {
        type filter hook forward priority 0; policy accept;
        oifname "vti01" counter comment "vtictl:vti01"
    }
}
NFT
foreign_before=$(ip netns exec west nft -j list table inet other | sed 's/"packets": [0-9]*, "bytes": [0-9]*//')
west_updown=$(vtid_config west "conns:
  s2s:
    mss_clamp: auto")
east_updown=$(vtid_config east)
tb_pluto west "$(s2s_conf "$west_updown" 10.1.0.0/24,fd01::/64 10.2.0.0/24,fd02::/64 yes)" '@west @east : PSK "testbed-vtid-mss"'
tb_pluto east "$(s2s_conf "$east_updown" 10.1.0.0/24,fd01::/64 10.2.0.0/24,fd02::/64 yes)" '@west @east : PSK "testbed-vtid-mss"'
vtid_start west
vtid_start east
tb_add west s2s
tb_add east s2s
s2s_up
expect_route west 10.2.0.0/24 vti01
grep -q "dev vti01 proto 157" <<<"$(ip -n west -6 route show fd02::/64)" || fail "west: no route fd02::/64 dev vti01 proto 157 (IPv6 routes: $(ip -n west -6 route | tr '\n' ';'))"
expect_mtu west vti01 1446 "AES-GCM-16 over IPv4 without NAT-T"
# The event batch that set the MTU also made the rules; a reconcile pass would too.
took=$(wait_for 10 sh -c "[ \"\$(ip netns exec west nft list chain inet vtictl forward 2>/dev/null | grep -c 'maxseg size set 1406 ')\" = 2 ]") \
  || fail "west: vtid's clamp rules for vti01 are not there: $(ip netns exec west nft list table inet vtictl 2>&1)"
ok "west: vtid's table holds the clamp rules of vti01 (IPv4 1406, IPv6 1386, both directions) after ${took} s"
grep -q vtictl <<<"$(ip netns exec east nft list tables)" && fail "east: vtid made a clamp table although no conn clamps"
clamp=$(vtictl_json west status | grep -o '"mssClamp":"[^"]*"') || fail "west: vtictl status --json shows no clamp"
[ "$clamp" = '"mssClamp":"auto: 1406/1386"' ] || fail "west: vtictl status shows $clamp"
ok "west: vtictl status shows the clamp: $clamp"
# tcp_mss ADDRESS: one TCP connection from the client to the server's ADDRESS (10.2.0.10 or
# fd02::10) through the tunnel; prints "CLIENT SERVER", each end's TCP_MAXSEG once connected. The
# server says when it listens (no sleep racing its start).
tcp_mss() {
  local address=$1 ready="$TB_RUN/server-listening" server client_mss
  rm -f "$ready"
  ip netns exec server python3 -c '
import socket, sys
s = socket.socket(socket.AF_INET6 if ":" in sys.argv[2] else socket.AF_INET)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[2], 5001)); s.listen(1); open(sys.argv[1], "w").close()
c, _ = s.accept(); print(c.getsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG)); c.recv(1)
' "$ready" "$address" >"$TB_RUN/server-mss" 2>&1 &
  server=$!
  wait_for 10 test -e "$ready" >/dev/null || fail "server: did not listen within 10 s: $(cat "$TB_RUN/server-mss")"
  client_mss=$(ip netns exec client timeout 10 python3 -c '
import socket, sys
c = socket.create_connection((sys.argv[1], 5001), timeout=8)
print(c.getsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG)); c.send(b"x")
' "$address") || fail "client: no TCP connection to [$address]:5001 through the tunnel"
  wait "$server" || fail "server: $(cat "$TB_RUN/server-mss")"
  echo "$client_mss $(cat "$TB_RUN/server-mss")"
}
read -r client_mss server_mss <<<"$(tcp_mss 10.2.0.10)"
[ "$client_mss" = 1406 ] || fail "client: TCP_MAXSEG $client_mss, expected 1406 (the SYN-ACK clamped on west's way in from vti01)"
[ "$server_mss" = 1406 ] || fail "server: TCP_MAXSEG $server_mss, expected 1406 (the SYN clamped on west's way out through vti01)"
ok "client and server: TCP through vti01 negotiated MSS 1406 (client $client_mss, server $server_mss)"
read -r client_mss server_mss <<<"$(tcp_mss fd02::10)"
[ "$client_mss $server_mss" = "1386 1386" ] || fail "IPv6: TCP_MAXSEG client $client_mss server $server_mss, expected 1386 1386 (1446 - 60, clamped both ways on west)"
ok "client and server: TCP over IPv6 through vti01 negotiated MSS 1386 (client $client_mss, server $server_mss)"
# Turned off: the rules go, and the same connection negotiates what both ends offer (1460).
vtid_config west >/dev/null
vtictl_on west reload >/dev/null || fail "west: vtictl reload failed"
vtictl_on west reconcile >/dev/null || fail "west: vtictl reconcile failed"
[ "$(ip netns exec west nft list chain inet vtictl forward 2>/dev/null | grep -c maxseg)" = 0 ] \
  || fail "west: clamp rules left after mss_clamp was removed: $(ip netns exec west nft list table inet vtictl)"
grep -q 'inet vtictl' <<<"$(ip netns exec west nft list tables)" && fail "west: vtid's table stayed after its last clamp went: $(ip netns exec west nft list table inet vtictl)"
read -r client_mss server_mss <<<"$(tcp_mss 10.2.0.10)"
[ "$client_mss $server_mss" = "1460 1460" ] || fail "without the clamp: TCP_MAXSEG client $client_mss server $server_mss, expected 1460 1460"
read -r client_mss server_mss <<<"$(tcp_mss fd02::10)"
[ "$client_mss $server_mss" = "1440 1440" ] || fail "IPv6 without the clamp: TCP_MAXSEG client $client_mss server $server_mss, expected 1440 1440"
ok "west: without mss_clamp the rules and the table are gone and the same connections negotiate 1460 (IPv4) and 1440 (IPv6), both ends' offer"
foreign_after=$(ip netns exec west nft -j list table inet other | sed 's/"packets": [0-9]*, "bytes": [0-9]*//')
[ "$foreign_after" = "$foreign_before" ] || fail "west: the foreign table changed: $foreign_before -> $foreign_after"
ok "west: the foreign table inet other is untouched (its rule named vtictl:vti01 too)"
