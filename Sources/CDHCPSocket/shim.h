// The C side of vtid's DHCP sockets (Sources/VTIDaemon/DHCPSocket.swift): a UDP socket on port 67
// bound to one device (SO_BINDTODEVICE), and datagrams with their addresses and interface
// (IP_PKTINFO), which Swift cannot spell (cmsg macros). No raw sockets. Every function returns -1
// with errno on failure; only VTIDaemon imports this module, and it links no library.
#ifndef VTICTL_CDHCPSOCKET_SHIM_H
#define VTICTL_CDHCPSOCKET_SHIM_H

#include <sys/socket.h>
#include <netinet/in.h>
#include <net/if.h>
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

// A non-blocking, close-on-exec UDP socket bound to 0.0.0.0:`port` on device `device` only.
// SO_REUSEADDR lets one socket per device share the port, and a DHCP server on other devices
// (bound to its own, or to none, with SO_REUSEADDR too) share it as well.
static inline int vtictl_dhcp_socket(const char *device, uint16_t port) {
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) return -1;
    int on = 1;
    size_t length = strnlen(device, IFNAMSIZ);
    struct sockaddr_in address = { .sin_family = AF_INET, .sin_port = htons(port), .sin_addr = { htonl(INADDR_ANY) } };
    if (length == 0 || length >= IFNAMSIZ
        || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on) != 0
        || setsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, device, (socklen_t)length) != 0
        || setsockopt(fd, IPPROTO_IP, IP_PKTINFO, &on, sizeof on) != 0
        || bind(fd, (struct sockaddr *)&address, sizeof address) != 0) {
        int saved = errno;
        close(fd);
        errno = length == 0 || length >= IFNAMSIZ ? EINVAL : saved;
        return -1;
    }
    return fd;
}

// One datagram into `buffer` (at most `capacity` bytes; a longer one is cut and `*truncated`
// set). Addresses in host byte order: the sender and its port, the destination it was sent to
// (a local address, or a broadcast), and the interface it arrived on. Returns the length
// received, or -1 with errno (EAGAIN: none waiting).
static inline ssize_t vtictl_dhcp_receive(int fd, uint8_t *buffer, size_t capacity, uint32_t *source, uint16_t *sourcePort,
                                          uint32_t *destination, int *interfaceIndex, int *truncated) {
    struct sockaddr_in from;
    struct iovec vector = { .iov_base = buffer, .iov_len = capacity };
    union { char bytes[CMSG_SPACE(sizeof(struct in_pktinfo))]; struct cmsghdr align; } control;
    struct msghdr message = {
        .msg_name = &from, .msg_namelen = sizeof from, .msg_iov = &vector, .msg_iovlen = 1,
        .msg_control = control.bytes, .msg_controllen = sizeof control.bytes,
    };
    ssize_t count = recvmsg(fd, &message, MSG_DONTWAIT);
    if (count < 0) return -1;
    *source = ntohl(from.sin_addr.s_addr);
    *sourcePort = ntohs(from.sin_port);
    *destination = 0;
    *interfaceIndex = 0;
    *truncated = (message.msg_flags & MSG_TRUNC) != 0;
    for (struct cmsghdr *header = CMSG_FIRSTHDR(&message); header != NULL; header = CMSG_NXTHDR(&message, header)) {
        if (header->cmsg_level == IPPROTO_IP && header->cmsg_type == IP_PKTINFO) {
            struct in_pktinfo info;
            memcpy(&info, CMSG_DATA(header), sizeof info);
            *destination = ntohl(info.ipi_addr.s_addr);
            *interfaceIndex = info.ipi_ifindex;
        }
    }
    return count;
}

// Sends `length` bytes to `destination`:`port` (host byte order) from local address `source`,
// out of the socket's device.
static inline ssize_t vtictl_dhcp_send(int fd, const uint8_t *bytes, size_t length, uint32_t destination, uint16_t port, uint32_t source) {
    struct sockaddr_in to = { .sin_family = AF_INET, .sin_port = htons(port), .sin_addr = { htonl(destination) } };
    struct iovec vector = { .iov_base = (void *)bytes, .iov_len = length };
    union { char bytes[CMSG_SPACE(sizeof(struct in_pktinfo))]; struct cmsghdr align; } control;
    memset(&control, 0, sizeof control);
    struct msghdr message = {
        .msg_name = &to, .msg_namelen = sizeof to, .msg_iov = &vector, .msg_iovlen = 1,
        .msg_control = control.bytes, .msg_controllen = sizeof control.bytes,
    };
    struct cmsghdr *header = CMSG_FIRSTHDR(&message);
    header->cmsg_level = IPPROTO_IP;
    header->cmsg_type = IP_PKTINFO;
    header->cmsg_len = CMSG_LEN(sizeof(struct in_pktinfo));
    struct in_pktinfo info = { .ipi_ifindex = 0, .ipi_spec_dst = { htonl(source) } };
    memcpy(CMSG_DATA(header), &info, sizeof info);
    return sendmsg(fd, &message, MSG_DONTWAIT | MSG_NOSIGNAL);
}

#endif
