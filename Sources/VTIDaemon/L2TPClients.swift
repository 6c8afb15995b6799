import ControlProtocol
import Netlink
import VTIModel

// L2TP/IPsec clients (issue 21): Windows' built-in client and xl2tpd/pppd set-ups. pluto protects
// the client's UDP 1701 with an IKEv1 transport-mode SA; xl2tpd carries PPP over it and pppd makes
// a ppp link (ARPHRD_PPP) whose peer address is the client's address inside the tunnel. vtid only
// reads these: pppd owns the link and its routes, and nothing here is ever changed or removed.
//
// Which public peer a ppp link belongs to is not in the link: the kernel's L2TP generic netlink
// family (module l2tp_netlink, which xl2tpd does not use) knows it; reading that is not done yet.
// So the match is made only when it cannot be wrong: one ppp link and the transport-mode SAs of
// one peer. Otherwise the peer is left out and `peerNote` says why.

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
/// when that is unambiguous (see the file's header). `localAddresses`: this host's addresses, to tell
/// inbound SAs (destination ours) from outbound ones.
func l2tpClients(links: [PPPLinkView], associations: [SecurityAssociation], localAddresses: Set<InetAddress>) -> [L2TPClientRecord] {
    let transport = associations.filter(isL2TPCandidate)
    var byPeer: [InetAddress: [SecurityAssociation]] = [:]
    for sa in transport {
        let peer = localAddresses.contains(sa.destination) ? sa.source : sa.destination
        byPeer[peer, default: []].append(sa)
    }
    return links.map { link in
        var record = L2TPClientRecord(device: link.name, state: link.isUp ? "up" : "down", address: link.peer.map { "\($0)" },
                                      localAddress: link.local.map { "\($0)" }, peerAddress: nil)
        if byPeer.isEmpty {
            record.peerNote = "no IPsec transport-mode SA: the L2TP session is not protected by IPsec"
        } else if links.count == 1 && byPeer.count == 1, let (peer, sas) = byPeer.first {
            record.peerAddress = "\(peer)"
            record.associations = sas.count
            for sa in sas {
                if sa.addTime > 0 { record.since = min(record.since ?? Int64.max, Int64(sa.addTime)) }
                if localAddresses.contains(sa.destination) { record.inBytes += sa.bytes } else { record.outBytes += sa.bytes }
            }
        } else {
            record.peerNote = "\(links.count) ppp links and transport-mode SAs with \(byPeer.count) peers: which is whose is not known"
        }
        return record
    }
}
