import ControlProtocol
import DHCP
@testable import Netlink
@testable import VTIDaemon
import VTIModel
import XCTest

/// Which L2TP client a ppp link is (pure): the link's peer address is the client's address inside
/// the tunnel; its public address comes from the IPsec transport-mode SAs, and only when that
/// cannot be wrong.
final class L2TPClientsTests: XCTestCase {
    private let gateway = InetAddress("192.0.2.2")!

    private func sa(from source: String, to destination: String, spi: UInt32, mode: UInt8 = 0, selectorProtocol: UInt8 = 17,
                    bytes: UInt64, added: UInt64 = 1_700_000_000, mark: XfrmMark? = nil) -> SecurityAssociation {
        let from = InetAddress(source)!, to = InetAddress(destination)!
        return SecurityAssociation(
            source: from, destination: to, spi: spi, ipProtocol: 50, reqid: 16393, mode: mode,
            selector: XfrmSelector(source: InetPrefix(from, length: 32)!, destination: InetPrefix(to, length: 32)!, ipProtocol: selectorProtocol),
            mark: mark, interfaceID: nil, algorithms: XfrmAlgorithms(), encapsulation: nil, bytes: bytes, packets: bytes / 50, addTime: added)
    }

    private func ppp(_ name: String, client: String?, up: Bool = true) -> PPPLinkView {
        PPPLinkView(name: name, isUp: up, local: InetAddress("10.0.2.1"), peer: client.flatMap { InetAddress($0) })
    }

    func testOneLinkAndOnePeersTransportSAsMatch() {
        let clients = l2tpClients(
            links: [ppp("ppp0", client: "10.0.2.10")],
            associations: [sa(from: "192.0.2.11", to: "192.0.2.2", spi: 0x42b9_3e2a, bytes: 952, added: 1_700_000_100),
                           sa(from: "192.0.2.2", to: "192.0.2.11", spi: 0x0944_f293, bytes: 911, added: 1_700_000_050)],
            localAddresses: [gateway])
        XCTAssertEqual(clients, [L2TPClientRecord(device: "ppp0", state: "up", address: "10.0.2.10", localAddress: "10.0.2.1",
                                                  peerAddress: "192.0.2.11", associations: 2, since: 1_700_000_050, inBytes: 952, outBytes: 911)])
    }

    func testTunnelModeSAsOfRouteBasedConnsAreNotL2TP() {
        // A road warrior on a VTI (tunnel mode, mark) next to the L2TP client: only the transport SAs count.
        let clients = l2tpClients(
            links: [ppp("ppp0", client: "10.0.2.10")],
            associations: [sa(from: "192.0.2.11", to: "192.0.2.2", spi: 1, bytes: 100),
                           sa(from: "192.0.2.2", to: "192.0.2.11", spi: 2, bytes: 200),
                           sa(from: "192.0.2.12", to: "192.0.2.2", spi: 3, mode: 1, selectorProtocol: 0, bytes: 5000, mark: XfrmMark(value: 12, mask: .max)),
                           sa(from: "192.0.2.2", to: "192.0.2.12", spi: 4, mode: 1, selectorProtocol: 0, bytes: 6000, mark: XfrmMark(value: 12, mask: .max))],
            localAddresses: [gateway])
        XCTAssertEqual(clients.map(\.peerAddress), ["192.0.2.11"])
        XCTAssertEqual(clients.map(\.inBytes), [100])
        XCTAssertEqual(clients.map(\.outBytes), [200])
        // A transport SA for another protocol (TCP selectors) is not L2TP either.
        XCTAssertFalse(isL2TPCandidate(sa(from: "192.0.2.13", to: "192.0.2.2", spi: 5, selectorProtocol: 6, bytes: 1)))
    }

    func testSeveralClientsAreListedWithoutGuessingWhoseSAsAreWhose() {
        let clients = l2tpClients(
            links: [ppp("ppp1", client: "10.0.2.11"), ppp("ppp0", client: "10.0.2.10")],
            associations: [sa(from: "192.0.2.11", to: "192.0.2.2", spi: 1, bytes: 100), sa(from: "192.0.2.2", to: "192.0.2.11", spi: 2, bytes: 200),
                           sa(from: "192.0.2.12", to: "192.0.2.2", spi: 3, bytes: 300), sa(from: "192.0.2.2", to: "192.0.2.12", spi: 4, bytes: 400)],
            localAddresses: [gateway])
        XCTAssertEqual(clients.map(\.device), ["ppp1", "ppp0"], "in the order given (pppLinks sorts by name)")
        XCTAssertEqual(clients.map(\.address), ["10.0.2.11", "10.0.2.10"])
        XCTAssertEqual(clients.map(\.peerAddress), [nil, nil])
        XCTAssertEqual(clients.map(\.inBytes), [0, 0])
        XCTAssertEqual(clients.first?.peerNote, "2 ppp links and transport-mode SAs with 2 peers: which is whose is not known")
    }

    func testALinkWithoutIPsecSaysSo() {
        let clients = l2tpClients(links: [ppp("ppp0", client: nil, up: false)], associations: [], localAddresses: [gateway])
        XCTAssertEqual(clients, [L2TPClientRecord(device: "ppp0", state: "down", address: nil, localAddress: "10.0.2.1", peerAddress: nil,
                                                  peerNote: "no IPsec transport-mode SA: the L2TP session is not protected by IPsec")])
    }

    func testPPPLinksAreFoundByHardwareTypeWithTheirPeerAddress() {
        var ppp0 = Link(index: 7, name: "ppp0", kind: nil, mtu: 1400, isUp: true, hasCarrier: true, parentIndex: 0)
        ppp0.hardwareType = Link.pppHardwareType
        // Named like a ppp link but an Ethernet device: not pppd's.
        var fake = Link(index: 8, name: "ppp9", kind: "veth", mtu: 1500, isUp: true, hasCarrier: true, parentIndex: 0)
        fake.hardwareType = 1
        let addresses = [InterfaceAddress(interfaceIndex: 7, prefix: InetPrefix(InetAddress("10.0.2.1")!, length: 32)!, peer: InetAddress("10.0.2.10")),
                         InterfaceAddress(interfaceIndex: 8, prefix: InetPrefix(InetAddress("10.9.0.1")!, length: 24)!)]
        XCTAssertEqual(pppLinks([fake, ppp0], addresses: addresses),
                       [PPPLinkView(name: "ppp0", isUp: true, local: InetAddress("10.0.2.1"), peer: InetAddress("10.0.2.10"))])
    }

    /// `l2tp.dhcp_inform`'s one target stands for every link named ppp*: one socket each.
    func testTheL2TPInformTargetCoversEachPPPLink() {
        let parameters = InformParameters(routes: [IPv4Network(address: IPv4Address("10.3.0.0")!, length: 24)!], router: .server,
                                          dnsServers: [], domainName: nil, searchDomains: [])
        let vti = DHCPInformTarget(connection: "rw", device: "vti02", parameters: parameters, serverIdentifier: nil)
        let l2tp = DHCPInformTarget(connection: "l2tp", device: "ppp*", parameters: parameters, serverIdentifier: nil)
        let expanded = DHCPInformTarget.expanded([vti, l2tp], linkNames: ["lo", "eth0", "ppp10", "ppp1", "vti02", "ppp0", "pppoe-wan", "ppp"])
        XCTAssertEqual(expanded.map(\.device), ["vti02", "ppp0", "ppp1", "ppp10"], "pppd's names only")
        XCTAssertEqual(expanded.map(\.connection), ["rw", "l2tp", "l2tp", "l2tp"])
        XCTAssertEqual(DHCPInformTarget.expanded([l2tp], linkNames: ["eth0"]), [], "no ppp link, no socket")
    }
}
