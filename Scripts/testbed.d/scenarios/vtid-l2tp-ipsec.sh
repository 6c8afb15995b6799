# L2TP/IPsec, the oldest road-warrior set-up (issue 21): Windows' built-in client speaks IKEv1 in
# transport mode to protect UDP 1701, and L2TP carries PPP inside it. The gateway runs pluto (an
# IKEv1 transport conn for 17/1701, PSK) and xl2tpd as LNS with pppd (CHAP, an address range); the
# client runs pluto and xl2tpd as LAC with pppd, through the kernel's L2TP and PPP (l2tp_ppp,
# ppp_generic). The client gets a ppp link with an address from the range and reaches the LAN behind
# the gateway through it; vtid on the gateway sees the ppp link, matches it to the client's SA and
# shows it, and changes nothing of pppd's.
[ -x "$UPDOWN" ] && [ "$UPDOWN" != /usr/libexec/ipsec/_updown ] || fail "this scenario tests vtid: set UPDOWN to vti-updown's path"
for tool in /usr/sbin/xl2tpd /usr/sbin/pppd; do
  [ -x "$tool" ] || fail "$tool is missing: apt-get install xl2tpd ppp (Scripts/install-packages)"
done
# The guest preloads only what every scenario needs; L2TP and PPP are this scenario's alone.
modprobe -d /tmp/mods -a l2tp_ppp l2tp_core ppp_generic pppox 2>&1 | sed 's/^/    /'
for module in l2tp_ppp ppp_generic; do
  [ -d "/sys/module/$module" ] || fail "the kernel module $module did not load (user-mode-linux's /usr/lib/uml/modules)"
done
[ -c /dev/ppp ] || mknod /dev/ppp c 108 0
# pppd reads CHAP secrets only from /etc/ppp/chap-secrets; the guest's root is the host's, read-only:
# lay the scenario's own file over it for the guest alone (undone at the end).
mkdir -p "$TB_RUN" /run/lock
printf '%s\n' '# client  server  secret  addresses' 'road1 l2tp-gw "testbed-l2tp-chap-secret" *' >"$TB_RUN/chap-secrets"
chmod 600 "$TB_RUN/chap-secrets"
mount --bind "$TB_RUN/chap-secrets" /etc/ppp/chap-secrets || fail "could not lay the scenario's chap-secrets over /etc/ppp/chap-secrets"
trap 'umount /etc/ppp/chap-secrets 2>/dev/null' EXIT

tb_switch
tb_host gw 192.0.2.2/24
tb_host road1 192.0.2.11/24
ip netns add lan
ip link add lan0 netns gw type veth peer name eth0 netns lan
ip -n gw addr add 10.3.0.1/24 dev lan0
ip -n gw link set lan0 up
ip -n lan link set lo up
ip -n lan addr add 10.3.0.5/24 dev eth0
ip -n lan link set eth0 up
ip -n lan route add default via 10.3.0.1
ip netns exec gw sysctl -qw net.ipv4.ip_forward=1

# IKEv1 transport mode for L2TP, as Windows asks for it: the client's UDP 1701 from any port to the
# gateway's UDP 1701. Its updown has nothing to do (no routes: transport mode, pppd owns the link).
l2tp_conf() {  # l2tp_conf LEFT RIGHT RIGHT_PROTOPORT
  # Debian's pluto drops IKEv1 unless told otherwise (from 4.5-2 on; 5.x upstream too).
  echo "config setup
    ikev1-policy=accept
conn l2tp
    left=$1
    leftprotoport=17/1701
    right=$2
    rightprotoport=$3
    type=transport
    authby=secret
    ikev2=no
    esp=aes_gcm256
    leftupdown=/bin/true
    rightupdown=/bin/true"
}
secret='PSK "testbed-l2tp-ipsec-psk"'
vtid_config gw "" >/dev/null
tb_pluto gw "$(l2tp_conf 192.0.2.2 %any 17/%any)" "192.0.2.2 %any : $secret"
vtid_start gw
tb_pluto road1 "$(l2tp_conf 192.0.2.11 192.0.2.2 17/1701)" "192.0.2.11 192.0.2.2 : $secret"
tb_add gw l2tp
tb_add road1 l2tp
tb_up road1 l2tp gw

# xl2tpd: the gateway's LNS hands out 10.0.2.10-20 and is 10.0.2.1 itself; the client's LAC dials it.
cat >"$TB_RUN/gw/xl2tpd.conf" <<CONF
[global]
port = 1701
[lns default]
ip range = 10.0.2.10-10.0.2.20
local ip = 10.0.2.1
require chap = yes
refuse pap = yes
require authentication = yes
name = l2tp-gw
pppoptfile = $TB_RUN/gw/options.xl2tpd
length bit = yes
CONF
cat >"$TB_RUN/gw/options.xl2tpd" <<CONF
name l2tp-gw
require-chap
refuse-pap
ipcp-accept-local
ipcp-accept-remote
noccp
nodefaultroute
mtu 1400
mru 1400
ms-dns 10.3.0.53
CONF
cat >"$TB_RUN/road1/xl2tpd.conf" <<CONF
[global]
port = 1701
[lac gw]
lns = 192.0.2.2
require chap = yes
refuse pap = yes
require authentication = no
name = road1
pppoptfile = $TB_RUN/road1/options.xl2tpd
length bit = yes
CONF
cat >"$TB_RUN/road1/options.xl2tpd" <<CONF
name road1
noauth
refuse-pap
ipcp-accept-local
ipcp-accept-remote
noccp
nodefaultroute
mtu 1400
mru 1400
CONF
l2tpd_start() {  # l2tpd_start HOST
  local dir="$TB_RUN/$1"
  mkdir -p "$dir/xl2tpd"
  ip netns exec "$1" /usr/sbin/xl2tpd -D -c "$dir/xl2tpd.conf" -p "$dir/xl2tpd.pid" -C "$dir/xl2tpd/l2tp-control" \
    >>"$dir/xl2tpd.log" 2>&1 &
  disown
  wait_for 10 test -p "$dir/xl2tpd/l2tp-control" >/dev/null || fail "$1: xl2tpd made no control pipe: $(tail -n 5 "$dir/xl2tpd.log")"
}
l2tpd_start gw
l2tpd_start road1
echo "c gw" >"$TB_RUN/road1/xl2tpd/l2tp-control"
took=$(wait_for 30 sh -c "ip -n road1 -4 addr show dev ppp0 | grep -q 'inet 10.0.2.'") \
  || fail "road1: no ppp link with an address from 10.0.2.10-20 within 30 s: $(ip -n road1 -br addr; tail -n 20 "$TB_RUN/road1/xl2tpd.log"; tail -n 20 "$TB_RUN/gw/xl2tpd.log")"
client=$(ip -n road1 -4 -o addr show dev ppp0 | awk '{ sub(/\/.*/, "", $4); print $4 }')
ok "road1: ppp0 up with $client after ${took} s"
ip -n road1 -d addr show dev ppp0 | sed 's/^/    /'
ip -n gw -d addr show | sed 's/^/    /'
ip -n gw route | sed 's/^/    /'
ip -n road1 route add 10.3.0.0/24 dev ppp0
expect_ping road1 "$client" 10.3.0.5 "the LAN host behind the gateway, over L2TP/IPsec"
ip -n gw -s xfrm state | sed 's/^/    /'
vtictl_on gw status | sed 's/^/    /'
