# The L2TP/IPsec scenarios' common part (vtid-l2tp-ipsec, vtid-l2tp-two-clients), sourced by them
# after lib.sh: the tools and kernel modules, the CHAP secrets, and the gateway running
# Profiles/l2tp-ipsec.

# l2tp_prepare SECRET_LINE...: xl2tpd and pppd present; the kernel's L2TP and PPP modules loaded
# from the guest's module tree (UML's /tmp/mods, qemu's $testbed_modules: the guest preloads only
# what every scenario needs); /dev/ppp; and SECRET_LINEs as /etc/ppp/chap-secrets, laid over the
# read-only root's file for the guest alone (pppd reads no other file) and undone at exit.
l2tp_prepare() {
  local tool module
  for tool in /usr/sbin/xl2tpd /usr/sbin/pppd; do
    [ -x "$tool" ] || fail "$tool is missing: apt-get install xl2tpd ppp (Scripts/install-packages)"
  done
  L2TP_MODULES=${testbed_modules:-/tmp/mods}
  modprobe -d "$L2TP_MODULES" -a l2tp_ppp l2tp_core ppp_generic pppox 2>&1 | sed 's/^/    /'
  for module in l2tp_ppp ppp_generic; do
    [ -d "/sys/module/$module" ] || fail "the kernel module $module did not load (from $L2TP_MODULES)"
  done
  [ -c /dev/ppp ] || mknod /dev/ppp c 108 0
  mkdir -p "$TB_RUN" /run/lock
  printf '%s\n' '# client  server  secret  addresses' "$@" >"$TB_RUN/chap-secrets"
  chmod 600 "$TB_RUN/chap-secrets"
  mount --bind "$TB_RUN/chap-secrets" /etc/ppp/chap-secrets || fail "could not lay the scenario's chap-secrets over /etc/ppp/chap-secrets"
  trap 'umount /etc/ppp/chap-secrets 2>/dev/null' EXIT
}

# l2tp_gateway PROFILE PSK: the gateway gw (192.0.2.2, on the switch already) running PROFILE
# (Profiles/l2tp-ipsec) as shipped, only its file paths and vtid's directories changed for the test
# bed: vtid with its vtid.yaml, pluto with its ipsec.conf (4.x) and the conn added. The conn takes
# %defaultroute for left= and runs libreswan's stock updown (nothing to route in transport mode):
# the gateway gets a default route (a router that is not there, 192.0.2.254).
l2tp_gateway() {
  local profile=$1 secret=$2
  ip -n gw route add default via 192.0.2.254 dev eth0
  ip netns exec gw sh -c 'echo 1 >/proc/sys/net/ipv4/ip_forward'
  vtid_config gw "$(cat "$profile/vtid.yaml")" >/dev/null
  tb_pluto gw "$(cat "$profile/ipsec.conf")" "192.0.2.2 %any : $secret"
  vtid_start gw
  tb_add gw l2tp-psk
}

# l2tp_lns PROFILE: the gateway's xl2tpd as LNS with PROFILE's xl2tpd.conf and options.xl2tpd (its
# range 10.20.0.10-250, itself 10.20.0.1, MS-CHAPv2), ready once its control pipe is there.
l2tp_lns() {
  local profile=$1 dir="$TB_RUN/gw"
  sed "s|/etc/ppp/options.xl2tpd|$dir/options.xl2tpd|" "$profile/xl2tpd.conf" >"$dir/xl2tpd.conf"
  cp "$profile/options.xl2tpd" "$dir/options.xl2tpd"
  grep -q "pppoptfile = $dir/options.xl2tpd" "$dir/xl2tpd.conf" || fail "the profile's xl2tpd.conf names no pppoptfile /etc/ppp/options.xl2tpd"
  mkdir -p "$dir/xl2tpd"
  ip netns exec gw /usr/sbin/xl2tpd -D -c "$dir/xl2tpd.conf" -p "$dir/xl2tpd.pid" -C "$dir/xl2tpd/l2tp-control" \
    >>"$dir/xl2tpd.log" 2>&1 &
  disown
  wait_for 10 test -p "$dir/xl2tpd/l2tp-control" >/dev/null || fail "gw: xl2tpd made no control pipe: $(tail -n 5 "$dir/xl2tpd.log")"
}

# l2tp_client_pluto NAME ADDRESS PSK: NAME's pluto with the client's IKEv1 transport conn
# `l2tp-psk` to the gateway, offering what Windows offers with NegotiateDH2048_AES256 set: main mode
# AES256-SHA1 with MODP2048 (Debian's 4.10 has no MODP1024), ESP AES256-SHA1 in transport mode for
# its UDP 1701.
l2tp_client_pluto() {
  local name=$1 address=$2 secret=$3
  tb_pluto "$name" "config setup
    ikev1-policy=accept
conn l2tp-psk
    left=$address
    leftprotoport=17/1701
    right=192.0.2.2
    rightprotoport=17/1701
    type=transport
    authby=secret
    ikev2=no
    ike=aes256-sha1;modp2048
    esp=aes256-sha1
    leftupdown=/bin/true
    rightupdown=/bin/true" "$address 192.0.2.2 : $secret"
}
