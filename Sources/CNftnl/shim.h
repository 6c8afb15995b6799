// The C side of the NFTables module: libnftnl (Debian libnftnl-dev), libmnl for its socket and
// batch buffer, and the kernel's nf_tables UAPI. Only Sources/NFTables imports this module.
#ifndef VTICTL_CNFTNL_SHIM_H
#define VTICTL_CNFTNL_SHIM_H

// glibc's netinet/in.h first (see CLibmnl/shim.h): linux/libc-compat.h then skips its own in6_addr.
#include <netinet/in.h>
#include <sys/socket.h>
#include <stdint.h>
#include <stddef.h>
#include <errno.h>
#include <string.h>
#include <libmnl/libmnl.h>
#include <linux/netlink.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nf_tables.h>
#include <libnftnl/common.h>
#include <libnftnl/batch.h>
#include <libnftnl/table.h>
#include <libnftnl/chain.h>
#include <libnftnl/rule.h>
#include <libnftnl/expr.h>
#include <libnftnl/udata.h>

// Macros and enum values Swift does not import as plain integers.
static inline uint16_t vtictl_nft_msg(int type) { return (uint16_t)((NFNL_SUBSYS_NFTABLES << 8) | type); }
static inline unsigned vtictl_nft_align(unsigned len) { return MNL_ALIGN(len); }
static inline int vtictl_nlmsg_error(void) { return NLMSG_ERROR; }
static inline int vtictl_nlmsg_done(void) { return NLMSG_DONE; }

#endif
