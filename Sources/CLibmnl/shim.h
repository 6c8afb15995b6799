// The C side of the Netlink module: libmnl plus the kernel UAPI headers it talks about.
// Only Sources/Netlink imports this module.
#ifndef VTICTL_CLIBMNL_SHIM_H
#define VTICTL_CLIBMNL_SHIM_H

// glibc's netinet/in.h first: linux/libc-compat.h then skips its own in6_addr, which would
// clash with Glibc's in Swift.
#include <netinet/in.h>
#include <sys/socket.h>
#include <libmnl/libmnl.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/if_link.h>
#include <linux/if_addr.h>
#include <linux/if_tunnel.h>
#include <linux/fib_rules.h>
#include <linux/neighbour.h>
#include <linux/veth.h>
#include <linux/xfrm.h>
// IFF_* come from linux/if.h (via rtnetlink.h); net/if.h would redefine them.
#include <sys/socket.h>
#include <errno.h>
#include <string.h>
#include <stddef.h>

// NETLINK_EXT_ACK and friends are macros Swift sees, but keep the socket options in one place.
static inline int vtictl_nl_ext_ack(void) { return NETLINK_EXT_ACK; }
static inline int vtictl_nl_cap_ack(void) { return NETLINK_CAP_ACK; }

// Swift cannot call the variadic or macro forms; these give it the alignment rule of netlink.
static inline unsigned vtictl_nlmsg_align(unsigned len) { return MNL_ALIGN(len); }

#endif
