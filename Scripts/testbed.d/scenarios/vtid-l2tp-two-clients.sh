# L2TP/IPsec with two clients at once (issue 21): the gateway runs Profiles/l2tp-ipsec (pluto's
# IKEv1 transport conn for UDP 1701, xl2tpd as LNS, one pppd per session) and vtid; road1 and road2,
# each with its own public address, run pluto and xl2tpd/pppd as LAC. vtid tells the two ppp links
# apart by the L2TP tunnel each link's pppd was started for (`pppol2tp_tunnel_id N`, found through
# pppd's /var/run/pppN.pid and /proc/PID/cmdline) and that tunnel's peer in the kernel's L2TP
# generic netlink family, and shows each link with its own peer and its own SAs' bytes; when road1
# hangs up only its row goes.
[ -x "$UPDOWN" ] && [ "$UPDOWN" != /usr/libexec/ipsec/_updown ] || fail "this scenario tests vtid: set UPDOWN to vti-updown's path"
. "$here/l2tp.sh"
[ -x /usr/bin/unshare ] || fail "/usr/bin/unshare is missing: apt-get install util-linux (Scripts/install-packages)"
l2tp_prepare 'road1 l2tp-gw "testbed-l2tp-chap-secret-1" *' 'road2 l2tp-gw "testbed-l2tp-chap-secret-2" *'
# The kernel's L2TP tunnels come from l2tp_netlink, which needs CONFIG_L2TP_V3: Debian's kernels
# have it, user-mode-linux's does not (run with --kernel debian12). l2tp_ppp loads it there (it
# registers its session operations with it).
modprobe -d "$L2TP_MODULES" l2tp_netlink 2>/dev/null
[ -d /sys/module/l2tp_netlink ] || fail "this kernel has no module l2tp_netlink (CONFIG_L2TP_V3; user-mode-linux's has none): run with --kernel debian12"

tb_switch
tb_host gw 192.0.2.2/24
tb_host road1 192.0.2.11/24
tb_host road2 192.0.2.12/24
profile="$here/../../Profiles/l2tp-ipsec"
secret='PSK "testbed-l2tp-ipsec-psk"'
l2tp_gateway "$profile" "$secret"

l2tp_lns "$profile"

# client NAME ADDRESS: pluto with the IKEv1 transport conn, then xl2tpd (LAC) with its own /run.
# Each client is another machine: its pppd must not write /var/run/ppp0.pid into the gateway's
# /run (the guest's, shared by every namespace), so its xl2tpd runs in a mount namespace of its own
# with a fresh /run, the test bed's directory bound back into it.
client() {
  local name=$1 address=$2 dir="$TB_RUN/$1"
  l2tp_client_pluto "$name" "$address" "$secret"
  # Under TCG pluto may still be finding its interfaces when whack asks: an initiate then fails at once.
  wait_for 60 grep -q 'loading secrets' "$dir/pluto.log" >/dev/null || fail "$name: pluto did not finish starting: $(tail -n 5 "$dir/pluto.log")"
  tb_add "$name" l2tp-psk
  tb_up "$name" l2tp-psk gw 120  # qemu under TCG on a loaded machine is slow
  printf '%s\n' '[global]' 'port = 1701' '[lac gw]' 'lns = 192.0.2.2' 'refuse pap = yes' 'require authentication = no' \
    "name = $name" "pppoptfile = $dir/options.xl2tpd" 'length bit = yes' >"$dir/xl2tpd.conf"
  printf '%s\n' "name $name" noauth refuse-pap ipcp-accept-local ipcp-accept-remote \
    noccp nodefaultroute 'mtu 1400' 'mru 1400' >"$dir/options.xl2tpd"
  mkdir -p "$dir/xl2tpd"
  ip netns exec "$name" /usr/bin/unshare -m --propagation private /bin/sh -c '
    mount --bind "$1" /mnt && mount -t tmpfs client-run /run && mkdir -p "$1" /run/lock && mount --move /mnt "$1" || exit 1
    exec /usr/sbin/xl2tpd -D -c "$2/xl2tpd.conf" -p "$2/xl2tpd.pid" -C "$2/xl2tpd/l2tp-control"' sh "$TB_RUN" "$dir" \
    >>"$dir/xl2tpd.log" 2>&1 &
  disown
  wait_for 10 test -p "$dir/xl2tpd/l2tp-control" >/dev/null || fail "$name: xl2tpd made no control pipe: $(tail -n 5 "$dir/xl2tpd.log")"
}
client road1 192.0.2.11
client road2 192.0.2.12

# dial NAME: the client's ppp0 up; prints its address.
dial() {
  echo "c gw" >"$TB_RUN/$1/xl2tpd/l2tp-control"
  wait_for 90 sh -c "ip -n $1 -4 addr show dev ppp0 2>/dev/null | grep -q 'inet 10.20.0.'" >/dev/null \
    || fail "$1: no ppp link with an address from 10.20.0.10-250 within 90 s: $(ip -n "$1" -br addr; tail -n 20 "$TB_RUN/$1/xl2tpd.log"; tail -n 20 "$TB_RUN/gw/xl2tpd.log")"
  ip -n "$1" -4 -o addr show dev ppp0 | awk '{ sub(/\/.*/, "", $4); print $4 }'
}
# gw_link ADDRESS: the gateway's ppp link whose peer is ADDRESS.
gw_link() { ip -n gw -4 -o addr show | awk -v c="$1" '$2 ~ /^ppp/ && $0 ~ ("peer " c "/") { print $2; exit }'; }
c1=$(dial road1); l1=$(wait_for 10 sh -c "ip -n gw -4 -o addr show | grep -q 'peer $c1/'" >/dev/null && gw_link "$c1")
[ -n "$l1" ] || fail "gw: no ppp link with peer $c1"
c2=$(dial road2); l2=$(wait_for 10 sh -c "ip -n gw -4 -o addr show | grep -q 'peer $c2/'" >/dev/null && gw_link "$c2")
[ -n "$l2" ] || fail "gw: no ppp link with peer $c2"
[ "$l1" != "$l2" ] && [ "$c1" != "$c2" ] || fail "gw: the two clients share a link or an address: $l1 $c1, $l2 $c2"
ok "both clients connected at once: road1 (192.0.2.11) is $c1 on gw's $l1, road2 (192.0.2.12) is $c2 on gw's $l2"
# What vtid reads: each gateway link's pppd pid file, and that pppd's command line with ipparam.
for link in "$l1" "$l2"; do
  pid=$(head -n 1 "/run/$link.pid") || fail "gw: pppd wrote no /run/$link.pid"
  echo "    /run/$link.pid: $pid; /proc/$pid/cmdline: $(tr '\0' ' ' <"/proc/$pid/cmdline")"
  tunnel=$(tr '\0' '\n' <"/proc/$pid/cmdline" | awk 'found { print; exit } $0 == "pppol2tp_tunnel_id" { found = 1 }')
  # iproute2's own reading of the same kernel family, for comparison (its tunnel_id filter lists all).
  echo "    ip l2tp show tunnel: $(ip -n gw l2tp show tunnel | awk -v t="$tunnel," '$1 == "Tunnel" { show = ($2 == t) } show' | tr -s ' \n' ' ')"
  # The clients' pppd write their own /run: this one must be the gateway's.
  [ "$(readlink "/proc/$pid/ns/net")" = "$(ip netns exec gw readlink /proc/self/ns/net)" ] || fail "gw: /run/$link.pid names a pppd of another namespace"
done
for link in "$l1" "$l2"; do grep -q "l2tp: ppp link $link appeared" "$TB_RUN/gw/vtid.log" || fail "gw: vtid did not notice $link"; done
ok "gw: vtid noticed $l1 and $l2"

# Different traffic on each: road2 sends much more, so the rows cannot be mixed up unnoticed.
ip netns exec road1 ping -c 2 -s 100 -W 2 -I ppp0 10.20.0.1 >/dev/null || fail "road1: no answer from 10.20.0.1 over ppp0"
ip netns exec road2 ping -c 10 -s 1000 -W 2 -I ppp0 10.20.0.1 >/dev/null || fail "road2: no answer from 10.20.0.1 over ppp0"
ok "road1 pinged the gateway's end over ppp0 twice (100 bytes), road2 ten times (1000 bytes)"

vtictl_on gw status | sed 's/^/    /'
# kernel_bytes PEER: the gateway's transport-mode SA bytes from and to PEER, summed (ip -s xfrm state).
kernel_bytes() {
  ip -n gw -s xfrm state | awk -v p="$1" '
    /^src / { dir = ($2 == p) ? "in" : (($4 == p) ? "out" : "") }
    /lifetime current:/ { getline; if (dir != "") bytes[dir] += $1 }
    END { print bytes["in"] + 0, bytes["out"] + 0 }'
}
rows() {
  vtictl_json gw status | /usr/bin/python3 -c '
import json, sys
for c in json.load(sys.stdin)["vtid"]["l2tpClients"]:
    print(c["device"], c["state"], c.get("address"), c.get("peerAddress"), c["associations"], c["inBytes"], c["outBytes"], c.get("peerNote", "-").replace(" ", "_"))
'
}
out=$(rows) || fail "gw: vtictl status --json has no l2tpClients"
echo "$out" | sed 's/^/    /'
[ "$(wc -l <<<"$out")" = 2 ] || fail "gw: expected two L2TP clients: $out"
check_row() {  # check_row LINK CLIENT PEER
  local dev state address peer sas in out note kin kout
  read -r dev state address peer sas in out note < <(awk -v d="$1" '$1 == d' <<<"$rows_now")
  [ "$dev $state $address $peer $note" = "$1 up $2 $3 -" ] && [ "${sas:-0}" -ge 2 ] && [ "$in" -gt 0 ] && [ "$out" -gt 0 ] \
    || fail "gw: the row of $1 is '$dev $state $address $peer $sas $in $out $note', expected $1 up $2 $3 with 2 SAs, bytes both ways and no note"
  read -r kin kout <<<"$(kernel_bytes "$3")"
  [ "$in" -le "$kin" ] && [ "$out" -le "$kout" ] && [ "$((kin - in))" -lt 400 ] && [ "$((kout - out))" -lt 400 ] \
    || fail "gw: $1's bytes $in in, $out out are not $3's SA bytes in the kernel ($kin in, $kout out)"
  ok "gw: $1 is $2 from $3: $sas SAs, $in bytes in, $out out (the kernel's SAs with $3 now: $kin, $kout)"
  eval "in_$4=$in"
}
rows_now=$out
check_row "$l1" "$c1" 192.0.2.11 1
check_row "$l2" "$c2" 192.0.2.12 2
[ "$in_2" -gt $((in_1 + 5000)) ] || fail "gw: road2's row ($in_2 bytes in) does not carry its ten 1000-byte pings more than road1's ($in_1)"
ok "gw: road2's row carries its larger pings ($in_2 bytes in against road1's $in_1): the SAs are not swapped"
leases=$(vtictl_on gw leases) || fail "gw: vtictl leases failed: $leases"
echo "$leases" | sed 's/^/    /'
for want in "$c1 $l1 192.0.2.11" "$c2 $l2 192.0.2.12"; do
  read -r a d p <<<"$want"
  awk -v a="$a" -v d="$d" -v p="$p" '$1 == a && $2 == d && $3 == "up" && $4 == p { found = 1 } END { exit !found }' <<<"$leases" \
    || fail "gw: vtictl leases has no L2TP row $a on $d from $p"
done
ok "gw: vtictl leases lists both L2TP clients with their own public peers"

# road1 hangs up: its link goes, road2's row stays as it was, with its peer.
echo "d gw" >"$TB_RUN/road1/xl2tpd/l2tp-control"
wait_for 20 sh -c "! ip -n gw link show $l1 2>/dev/null" >/dev/null || fail "gw: $l1 still there 20 s after road1 hung up"
wait_for 10 grep -q "l2tp: ppp link $l1 removed" "$TB_RUN/gw/vtid.log" >/dev/null || fail "gw: vtid did not notice that $l1 went"
out=$(rows)
echo "$out" | sed 's/^/    /'
read -r dev state address peer sas in out note <<<"$out"
[ "$(wc -l <<<"$out")" = 1 ] && [ "$dev $address $peer $note" = "$l2 $c2 192.0.2.12 -" ] && [ "$in" -ge "$in_2" ] \
  || fail "gw: after road1's hang-up expected only $l2 ($c2 from 192.0.2.12), got: $out"
ok "gw: road1 hung up: $l1 went from vtid's list; $l2 stays, $c2 from 192.0.2.12 with $in bytes in"
