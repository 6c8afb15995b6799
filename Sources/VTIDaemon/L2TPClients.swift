import ControlProtocol
import Glibc
import Netlink
import VTIModel

// L2TP/IPsec clients (issue 21): Windows' built-in client and xl2tpd/pppd set-ups. pluto protects
// the client's UDP 1701 with an IKEv1 transport-mode SA; xl2tpd carries PPP over it and pppd makes
// a ppp link (ARPHRD_PPP) whose peer address is the client's address inside the tunnel. vtid only
// reads these: pppd owns the link and its routes, and nothing here is ever changed or removed.
//
// Which public peer a ppp link belongs to is not in the link, nor in the kernel's L2TP sessions
// (PPPoL2TP sessions carry no interface name). But xl2tpd in kernel mode starts one pppd per session
// with `plugin pppol2tp.so ... pppol2tp_tunnel_id <its tunnel id>`, pppd writes its pid to
// /var/run/<ifname>.pid, and the kernel's L2TP generic netlink family lists each tunnel with its
// id and the address of the peer its UDP socket is connected to. So ppp0 -> /var/run/ppp0.pid ->
// pid -> /proc/<pid>/cmdline -> tunnel id -> the kernel's tunnel -> its peer; that address's
// transport-mode SAs are the link's. (xl2tpd 1.3.18 passes no `ipparam`.) The two files are
// another program's text: parsed strictly, anything odd leaves the link without a peer and
// `peerNote` says why; the address itself comes from the kernel.
// vtid's unit mounts its /proc with hidepid=invisible (ProtectProc=), which still shows it root's
// pppd (likely as hidepid's gid= group, 0 by default, sees every process; cmdline needs no ptrace)
// (scenario vtid-unit-pppd). /proc/PID/ns/net would: so the network namespace is told by
// /proc/PID/net/dev's inode. When a pppd cannot be read, the old rule still holds: one ppp link
// and one peer's SAs match.

/// What a ppp link's pppd and the kernel say about its L2TP peer.
enum PPPPeerSource: Sendable, Hashable {
    /// The public address of the L2TP tunnel the link's session runs in.
    case peer(InetAddress)
    /// Not known, one sentence why.
    case unknown(String)
}

/// The pid in a pppd pid file's text: its first line, decimal digits only, a plausible pid.
func pppdPID(pidFile text: String) -> Int32? {
    let line = text.split(separator: "\n", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
    guard (1...7).contains(line.utf8.count), line.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }),
          let pid = Int32(line), pid > 1, pid <= 4_194_304 else { return nil }
    return pid
}

/// The L2TP tunnel id in a pppd command line (`/proc/PID/cmdline`: NUL-separated words), as
/// xl2tpd's kernel mode passes it: the program must be pppd, `pppol2tp_tunnel_id` must appear once
/// with a tunnel id (1-65535, plain digits) after it.
func l2tpTunnelID(cmdline bytes: [UInt8]) -> Result<UInt32, PairingProblem> {
    let words = bytes.split(separator: 0, omittingEmptySubsequences: false).map { Array($0) }
    guard let program = words.first, program.split(separator: UInt8(ascii: "/")).last.map(Array.init) == Array("pppd".utf8) else {
        return .failure(PairingProblem("the process in the pid file is not pppd"))
    }
    let option = Array("pppol2tp_tunnel_id".utf8)
    let positions = words.indices.filter { words[$0] == option }
    guard let at = positions.first else {
        return .failure(PairingProblem("pppd has no pppol2tp_tunnel_id: not xl2tpd's kernel mode"))
    }
    guard positions.count == 1, at + 1 < words.count else { return .failure(PairingProblem("pppd's pppol2tp_tunnel_id is not one value")) }
    let value = words[at + 1]
    guard (1...5).contains(value.count), value.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }), value.first != 0x30,
          let id = UInt32(String(decoding: value, as: UTF8.self)), id <= 65535 else {
        return .failure(PairingProblem("pppd's pppol2tp_tunnel_id is not a tunnel id"))
    }
    return .success(id)
}

/// Why a ppp link's peer is not known, one sentence.
struct PairingProblem: Error, Equatable {
    var why: String
    init(_ why: String) { self.why = why }
}

/// Each ppp link's peer: `pidFiles` maps a link name to its pid file's text (absent: none),
/// `cmdlines` a pid to its command line (absent: not readable), `foreign` holds pids known to run
/// in another network namespace (a pppd there writes the same /var/run names for its own links),
/// `tunnels` the kernel's L2TP tunnels or why they could not be read.
func pppPeers(links: [String], pidFiles: [String: String], cmdlines: [Int32: [UInt8]], foreign: Set<Int32> = [],
              tunnels: Result<[L2TPTunnel], PairingProblem>) -> [String: PPPPeerSource] {
    var peers: [String: PPPPeerSource] = [:]
    for link in links {
        guard let text = pidFiles[link] else { peers[link] = .unknown("no pppd pid file /var/run/\(link).pid"); continue }
        guard let pid = pppdPID(pidFile: text) else { peers[link] = .unknown("/var/run/\(link).pid holds no pid"); continue }
        guard !foreign.contains(pid) else {
            peers[link] = .unknown("pppd \(pid) of /var/run/\(link).pid runs in another network namespace")
            continue
        }
        guard let cmdline = cmdlines[pid], !cmdline.isEmpty else {
            peers[link] = .unknown("pppd \(pid)'s command line is not readable (gone, or hidden by /proc's hidepid)")
            continue
        }
        switch l2tpTunnelID(cmdline: cmdline) {
        case .failure(let problem):
            peers[link] = .unknown(problem.why)
        case .success(let id):
            let known: [L2TPTunnel]
            switch tunnels {
            case .success(let all): known = all
            case .failure(let problem): peers[link] = .unknown(problem.why); continue
            }
            let matching = known.filter { $0.id == id }
            guard matching.count == 1, let peer = matching[0].peer, !peer.isUnspecified else {
                peers[link] = .unknown(matching.isEmpty ? "the kernel has no L2TP tunnel \(id) (pppd's)" : "the kernel's L2TP tunnel \(id) names no single peer")
                continue
            }
            peers[link] = .peer(peer)
        }
    }
    return peers
}

/// A ppp link with its addresses, as read from rtnetlink.
struct PPPLinkView: Sendable, Hashable {
    var name: String
    var isUp: Bool
    /// This host's end (`IFA_LOCAL`).
    var local: InetAddress?
    /// The client's end (`IFA_ADDRESS`, differing from the local address on a point-to-point link).
    var peer: InetAddress?
}

/// The ppp links among `links`, each with its IPv4 local and peer address from `addresses`.
func pppLinks(_ links: [Link], addresses: [InterfaceAddress]) -> [PPPLinkView] {
    links.filter(\.isPPP).map { link in
        let address = addresses.first { $0.interfaceIndex == link.index && $0.prefix.family == .ipv4 }
        return PPPLinkView(name: link.name, isUp: link.isUp, local: address?.prefix.address, peer: address?.peer)
    }.sorted { $0.name < $1.name }
}

/// An SA that may carry L2TP: transport mode (XFRM_MODE_TRANSPORT, 0), ESP, between this host and a
/// peer; UDP selectors or none (pluto 4.x installs the protoport in the policy, not always in the SA).
func isL2TPCandidate(_ sa: SecurityAssociation) -> Bool {
    sa.mode == 0 && sa.ipProtocol == 50 && (sa.selector.ipProtocol == 17 || sa.selector.ipProtocol == 0)
}

/// The L2TP clients: one record per ppp link, matched to the transport-mode SAs of its public peer
/// as its pppd's L2TP tunnel names it (`peers`, from `pppPeers`), or, when that is not known, when one link and
/// one peer make it unambiguous (see the file's header). `localAddresses`: this host's addresses,
/// to tell inbound SAs (destination ours) from outbound ones.
func l2tpClients(links: [PPPLinkView], associations: [SecurityAssociation], localAddresses: Set<InetAddress>,
                 peers: [String: PPPPeerSource] = [:]) -> [L2TPClientRecord] {
    let transport = associations.filter(isL2TPCandidate)
    var byPeer: [InetAddress: [SecurityAssociation]] = [:]
    for sa in transport {
        let peer = localAddresses.contains(sa.destination) ? sa.source : sa.destination
        byPeer[peer, default: []].append(sa)
    }
    // Clients behind one NAT share a public address: its SAs cannot be split between their links.
    var linksOfPeer: [InetAddress: Int] = [:]
    for case .peer(let address)? in links.map({ peers[$0.name] }) { linksOfPeer[address, default: 0] += 1 }
    return links.map { link in
        var record = L2TPClientRecord(device: link.name, state: link.isUp ? "up" : "down", address: link.peer.map { "\($0)" },
                                      localAddress: link.local.map { "\($0)" }, peerAddress: nil)
        func pair(_ peer: InetAddress, _ sas: [SecurityAssociation]) {
            record.peerAddress = "\(peer)"
            record.associations = sas.count
            for sa in sas {
                if sa.addTime > 0 { record.since = min(record.since ?? Int64.max, Int64(sa.addTime)) }
                if localAddresses.contains(sa.destination) { record.inBytes += sa.bytes } else { record.outBytes += sa.bytes }
            }
        }
        func matchIfUnambiguous(because why: String?) {
            let because = why.map { "\($0); " } ?? ""
            if byPeer.isEmpty {
                record.peerNote = because + "no IPsec transport-mode SA: the L2TP session is not protected by IPsec"
            } else if links.count == 1 && byPeer.count == 1, let (peer, sas) = byPeer.first {
                pair(peer, sas)
            } else {
                record.peerNote = because + "\(links.count) ppp links and transport-mode SAs with \(byPeer.count) peers: which is whose is not known"
            }
        }
        switch peers[link.name] {
        case .peer(let peer)?:
            if let sas = byPeer[peer], linksOfPeer[peer] == 1 {
                pair(peer, sas)
            } else if let sas = byPeer[peer] {
                record.peerAddress = "\(peer)"
                record.peerNote = "\(linksOfPeer[peer] ?? 0) ppp links come from \(peer) (one NAT?): its \(sas.count) SAs are not split between them"
            } else {
                record.peerNote = "the L2TP tunnel's peer \(peer) has no IPsec transport-mode SA: the L2TP session is not protected by IPsec"
            }
        case .unknown(let why)?:
            matchIfUnambiguous(because: why)
        case nil:
            matchIfUnambiguous(because: nil)
        }
        return record
    }
}

/// Reads each ppp link's pppd pid file (pppd's `/var/run/<ifname>.pid`) and that pid's command
/// line, for `pppPeers`; what cannot be read is left out. Names that are not plain interface
/// names are not turned into paths. A pppd is `foreign` when its /proc/PID/net/dev is another
/// entry than vtid's own: each network namespace has its own proc entries (own inode numbers),
/// and unlike /proc/PID/ns/net this needs no ptrace access.
func readPPPDFiles(links: [String], directory: String = "/var/run")
    -> (pidFiles: [String: String], cmdlines: [Int32: [UInt8]], foreign: Set<Int32>) {
    var pidFiles: [String: String] = [:], cmdlines: [Int32: [UInt8]] = [:], foreign: Set<Int32> = []
    let ownNet = inode("/proc/self/net/dev")
    for link in links where isPlainInterfaceName(link) {
        guard let bytes = readSmallFile("\(directory)/\(link).pid", limit: 64) else { continue }
        let text = String(decoding: bytes, as: UTF8.self)
        pidFiles[link] = text
        guard let pid = pppdPID(pidFile: text) else { continue }
        if let cmdline = readSmallFile("/proc/\(pid)/cmdline", limit: 16384) { cmdlines[pid] = cmdline }
        if let own = ownNet, let theirs = inode("/proc/\(pid)/net/dev"), theirs != own { foreign.insert(pid) }
    }
    return (pidFiles, cmdlines, foreign)
}

private func inode(_ path: String) -> UInt64? {
    var status = stat()
    guard stat(path, &status) == 0 else { return nil }
    return UInt64(status.st_ino)
}

private func isPlainInterfaceName(_ name: String) -> Bool {
    (1...15).contains(name.utf8.count) && name.utf8.first != UInt8(ascii: ".")
        && name.utf8.allSatisfy { ($0 >= 0x30 && $0 <= 0x39) || ($0 | 0x20 >= 0x61 && $0 | 0x20 <= 0x7a) || $0 == 0x2d || $0 == 0x5f || $0 == 0x2e }
}

/// At most `limit` bytes of a file (proc files report size 0: read to the end); nil if unreadable.
private func readSmallFile(_ path: String, limit: Int) -> [UInt8]? {
    let fd = Glibc.open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)
    guard fd >= 0 else { return nil }
    defer { Glibc.close(fd) }
    var result: [UInt8] = [], chunk = [UInt8](repeating: 0, count: 4096)
    while result.count < limit {
        let count = Glibc.read(fd, &chunk, min(chunk.count, limit - result.count))
        if count < 0 && errno == EINTR { continue }
        guard count >= 0 else { return nil }
        if count == 0 { break }
        result += chunk.prefix(count)
    }
    return result
}
