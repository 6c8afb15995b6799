// The C side of the LocalIPC module: what Swift does not see of glibc's Unix socket API
// (enum-typed flags, struct ucred behind _GNU_SOURCE) is spelled here. Only Sources/LocalIPC
// imports this module; it links no library (glibc's calls, inline).
#ifndef VTICTL_CLOCALIPC_SHIM_H
#define VTICTL_CLOCALIPC_SHIM_H

#include <sys/socket.h>
#include <sys/un.h>
#include <fcntl.h>
#include <unistd.h>
#include <string.h>
#include <stddef.h>

static inline int vtictl_unix_stream_socket(void) { return socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0); }
// accept4 is a GNU extension (and defining _GNU_SOURCE here clashes with Glibc's module).
static inline int vtictl_accept_cloexec(int fd) {
    int client = accept(fd, 0, 0);
    if (client >= 0) fcntl(client, F_SETFD, FD_CLOEXEC);
    return client;
}
static inline int vtictl_peer_credentials(int fd, int *pid, unsigned *uid, unsigned *gid) {
    struct { int pid; unsigned uid; unsigned gid; } credentials;  // struct ucred's layout
    socklen_t length = sizeof credentials;
    int result = getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &credentials, &length);
    if (result == 0) { *pid = credentials.pid; *uid = credentials.uid; *gid = credentials.gid; }
    return result;
}
// The peer's supplementary groups as the kernel recorded them at connect (SO_PEERGROUPS, Linux
// 4.13; 59 on every architecture but a few that this project does not build for). Returns the
// number of groups (at most `capacity`), or -1 with errno.
#ifndef SO_PEERGROUPS
#define SO_PEERGROUPS 59
#endif
static inline int vtictl_peer_groups(int fd, unsigned *groups, int capacity) {
    socklen_t length = (socklen_t)(capacity * sizeof(unsigned));
    if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups, &length) != 0) return -1;
    return (int)(length / sizeof(unsigned));
}
// One datagram to systemd's notification socket (sd_notify's protocol: a path, or a name in the
// abstract namespace when it starts with '@').
static inline int vtictl_notify_datagram(const char *path, const char *text, size_t length) {
    struct sockaddr_un address = { .sun_family = AF_UNIX };
    size_t pathLength = strlen(path);
    if (pathLength == 0 || pathLength >= sizeof address.sun_path) return -1;
    memcpy(address.sun_path, path, pathLength);
    if (path[0] == '@') address.sun_path[0] = 0;
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    ssize_t sent = sendto(fd, text, length, MSG_NOSIGNAL, (struct sockaddr *)&address,
                          (socklen_t)(offsetof(struct sockaddr_un, sun_path) + pathLength));
    close(fd);
    return sent == (ssize_t)length ? 0 : -1;
}


#endif
