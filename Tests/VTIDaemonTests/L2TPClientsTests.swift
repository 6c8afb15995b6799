import ControlProtocol
import DHCP
@testable import Netlink
@testable import VTIDaemon
import VTIModel
import Foundation
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

    // pppd's command line as xl2tpd 1.3.18 starts it on the LNS in kernel mode (read from /proc in
    // the test bed, scenario vtid-l2tp-two-clients).
    private func cmdline(_ words: [String]) -> [UInt8] { words.flatMap { Array($0.utf8) + [0] } }
    private func lnsPPPD(tunnel: String) -> [UInt8] {
        cmdline(["/usr/sbin/pppd", "plugin", "pppol2tp.so", "pppol2tp", "7", "pppol2tp_lns_mode", "pppol2tp_tunnel_id", tunnel,
                 "pppol2tp_session_id", "47398", "passive", "nodetach", "10.20.0.1:10.20.0.10", "refuse-pap", "auth", "require-chap",
                 "name", "l2tp-gw", "file", "/etc/ppp/options.xl2tpd"])
    }
    private let kernelTunnels: Result<[L2TPTunnel], PairingProblem> = .success([
        L2TPTunnel(id: 38897, peerID: 1, local: InetAddress("192.0.2.2"), peer: InetAddress("192.0.2.12")),
        L2TPTunnel(id: 44143, peerID: 2, local: InetAddress("192.0.2.2"), peer: InetAddress("192.0.2.11")),
    ])

    func testSeveralClientsArePairedByWhatTheirPPPDSays() {
        let peers = pppPeers(links: ["ppp0", "ppp1"], pidFiles: ["ppp0": "2301\n", "ppp1": "2417\n"],
                             cmdlines: [2301: lnsPPPD(tunnel: "38897"), 2417: lnsPPPD(tunnel: "44143")], tunnels: kernelTunnels)
        XCTAssertEqual(peers, ["ppp0": .peer(InetAddress("192.0.2.12")!), "ppp1": .peer(InetAddress("192.0.2.11")!)])
        let clients = l2tpClients(
            links: [ppp("ppp0", client: "10.0.2.10"), ppp("ppp1", client: "10.0.2.11")],
            associations: [sa(from: "192.0.2.11", to: "192.0.2.2", spi: 1, bytes: 100, added: 1_700_000_001),
                           sa(from: "192.0.2.2", to: "192.0.2.11", spi: 2, bytes: 200, added: 1_700_000_002),
                           sa(from: "192.0.2.12", to: "192.0.2.2", spi: 3, bytes: 300, added: 1_700_000_003),
                           sa(from: "192.0.2.2", to: "192.0.2.12", spi: 4, bytes: 400, added: 1_700_000_004)],
            localAddresses: [gateway], peers: peers)
        XCTAssertEqual(clients, [
            L2TPClientRecord(device: "ppp0", state: "up", address: "10.0.2.10", localAddress: "10.0.2.1", peerAddress: "192.0.2.12",
                             associations: 2, since: 1_700_000_003, inBytes: 300, outBytes: 400),
            L2TPClientRecord(device: "ppp1", state: "up", address: "10.0.2.11", localAddress: "10.0.2.1", peerAddress: "192.0.2.11",
                             associations: 2, since: 1_700_000_001, inBytes: 100, outBytes: 200),
        ])
    }

    func testOneUnreadablePPPDLeavesOnlyItsLinkWithoutPeer() {
        let peers = pppPeers(links: ["ppp0", "ppp1"], pidFiles: ["ppp0": "2301\n", "ppp1": "2417\n"], cmdlines: [2301: lnsPPPD(tunnel: "38897")],
                             tunnels: kernelTunnels)
        let clients = l2tpClients(
            links: [ppp("ppp0", client: "10.0.2.10"), ppp("ppp1", client: "10.0.2.11")],
            associations: [sa(from: "192.0.2.11", to: "192.0.2.2", spi: 1, bytes: 100), sa(from: "192.0.2.12", to: "192.0.2.2", spi: 3, bytes: 300)],
            localAddresses: [gateway], peers: peers)
        XCTAssertEqual(clients.map(\.peerAddress), ["192.0.2.12", nil])
        XCTAssertEqual(clients.map(\.inBytes), [300, 0])
        XCTAssertEqual(clients.last?.peerNote, "pppd 2417's command line is not readable (gone, or hidden by /proc's hidepid); "
                       + "2 ppp links and transport-mode SAs with 2 peers: which is whose is not known")
    }

    func testAPPPDOfAnotherNetworkNamespaceIsNotBelieved() {
        let peers = pppPeers(links: ["ppp0"], pidFiles: ["ppp0": "2301\n"], cmdlines: [2301: lnsPPPD(tunnel: "38897")], foreign: [2301],
                             tunnels: kernelTunnels)
        XCTAssertEqual(peers, ["ppp0": .unknown("pppd 2301 of /var/run/ppp0.pid runs in another network namespace")])
    }

    func testWithoutPPPDTheSingleClientRuleStillHolds() {
        // A pppd vtid cannot read (gone, or hidden): one link and one peer still match.
        let peers = pppPeers(links: ["ppp0"], pidFiles: ["ppp0": "2301\n"], cmdlines: [:], tunnels: kernelTunnels)
        let clients = l2tpClients(links: [ppp("ppp0", client: "10.0.2.10")],
                                  associations: [sa(from: "192.0.2.11", to: "192.0.2.2", spi: 1, bytes: 100)],
                                  localAddresses: [gateway], peers: peers)
        XCTAssertEqual(clients.map(\.peerAddress), ["192.0.2.11"])
        XCTAssertEqual(clients.map(\.peerNote), [nil])
    }

    func testClientsBehindOneNATGetTheirPeerButNoSplitOfItsBytes() {
        let peers: [String: PPPPeerSource] = ["ppp0": .peer(InetAddress("198.51.100.7")!), "ppp1": .peer(InetAddress("198.51.100.7")!)]
        let clients = l2tpClients(
            links: [ppp("ppp0", client: "10.0.2.10"), ppp("ppp1", client: "10.0.2.11")],
            associations: [sa(from: "198.51.100.7", to: "192.0.2.2", spi: 1, bytes: 100), sa(from: "198.51.100.7", to: "192.0.2.2", spi: 2, bytes: 300)],
            localAddresses: [gateway], peers: peers)
        XCTAssertEqual(clients.map(\.peerAddress), ["198.51.100.7", "198.51.100.7"])
        XCTAssertEqual(clients.map(\.associations), [0, 0])
        XCTAssertEqual(clients.map(\.inBytes), [0, 0])
        XCTAssertEqual(clients.first?.peerNote, "2 ppp links come from 198.51.100.7 (one NAT?): its 2 SAs are not split between them")
    }

    func testWithoutSAsTheNoteSaysWhyThePeerIsUnknownToo() {
        let clients = l2tpClients(links: [ppp("ppp0", client: "10.0.2.10")], associations: [], localAddresses: [gateway],
                                  peers: ["ppp0": .unknown("pppd has no pppol2tp_tunnel_id: not xl2tpd's kernel mode")])
        XCTAssertEqual(clients.first?.peerNote,
                       "pppd has no pppol2tp_tunnel_id: not xl2tpd's kernel mode; no IPsec transport-mode SA: the L2TP session is not protected by IPsec")
    }

    func testAPeerWithoutSAsIsNotPaired() {
        let clients = l2tpClients(links: [ppp("ppp0", client: "10.0.2.10")],
                                  associations: [sa(from: "192.0.2.11", to: "192.0.2.2", spi: 1, bytes: 100)],
                                  localAddresses: [gateway], peers: ["ppp0": .peer(InetAddress("192.0.2.99")!)])
        XCTAssertEqual(clients.map(\.peerAddress), [nil])
        XCTAssertEqual(clients.first?.peerNote,
                       "the L2TP tunnel's peer 192.0.2.99 has no IPsec transport-mode SA: the L2TP session is not protected by IPsec")
    }

    func testPidFilesAreReadStrictly() {
        XCTAssertEqual(pppdPID(pidFile: "2301\n"), 2301)
        XCTAssertEqual(pppdPID(pidFile: "2301\nppp0\n"), 2301, "a link pid file: the pid, then the interface")
        XCTAssertEqual(pppdPID(pidFile: "2301"), 2301)
        for odd in ["", "\n", " 2301\n", "+2301\n", "-1\n", "1\n", "0\n", "99999999\n", "4194305\n", "23a1\n", "２３０１\n"] {
            XCTAssertNil(pppdPID(pidFile: odd), odd)
        }
        let peers = pppPeers(links: ["ppp0", "ppp1"], pidFiles: ["ppp1": "x\n"], cmdlines: [:], tunnels: kernelTunnels)
        XCTAssertEqual(peers["ppp0"], .unknown("no pppd pid file /var/run/ppp0.pid"))
        XCTAssertEqual(peers["ppp1"], .unknown("/var/run/ppp1.pid holds no pid"))
    }

    func testTheTunnelIDIsTakenOnlyFromPPPDAndOnlyWhenPlain() {
        XCTAssertEqual(l2tpTunnelID(cmdline: lnsPPPD(tunnel: "38897")), .success(38897))
        XCTAssertEqual(l2tpTunnelID(cmdline: cmdline(["pppd", "pppol2tp_tunnel_id", "1"])), .success(1))
        XCTAssertEqual(l2tpTunnelID(cmdline: lnsPPPD(tunnel: "65535")), .success(65535))
        let notID = Result<UInt32, PairingProblem>.failure(PairingProblem("pppd's pppol2tp_tunnel_id is not a tunnel id"))
        for odd in ["0", "65536", "038897", "+38897", "-1", " 38897", "38897 ", "3889a", "", "999999", "３８８９７", "38897;reboot"] {
            XCTAssertEqual(l2tpTunnelID(cmdline: lnsPPPD(tunnel: odd)), notID, odd)
        }
        let notPPPD = Result<UInt32, PairingProblem>.failure(PairingProblem("the process in the pid file is not pppd"))
        XCTAssertEqual(l2tpTunnelID(cmdline: cmdline(["/usr/bin/sleep", "pppol2tp_tunnel_id", "7"])), notPPPD)
        XCTAssertEqual(l2tpTunnelID(cmdline: cmdline(["/usr/sbin/pppd-evil", "pppol2tp_tunnel_id", "7"])), notPPPD)
        XCTAssertEqual(l2tpTunnelID(cmdline: []), notPPPD)
        XCTAssertEqual(l2tpTunnelID(cmdline: cmdline(["/usr/sbin/pppd", "/dev/pts/3", "file", "/etc/ppp/options.xl2tpd"])),
                       .failure(PairingProblem("pppd has no pppol2tp_tunnel_id: not xl2tpd's kernel mode")), "xl2tpd's userspace mode: a pty")
        XCTAssertEqual(l2tpTunnelID(cmdline: cmdline(["pppd", "pppol2tp_tunnel_id", "7", "pppol2tp_tunnel_id", "8"])),
                       .failure(PairingProblem("pppd's pppol2tp_tunnel_id is not one value")))
        XCTAssertEqual(l2tpTunnelID(cmdline: Array("pppd\0pppol2tp_tunnel_id".utf8)), .failure(PairingProblem("pppd's pppol2tp_tunnel_id is not one value")))
        // Arbitrary bytes never crash it.
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<2000 {
            let bytes = (0..<Int.random(in: 0...80, using: &generator)).map { _ in UInt8.random(in: 0...255, using: &generator) }
            _ = l2tpTunnelID(cmdline: Array("pppd\0pppol2tp_tunnel_id\0".utf8) + bytes)
            _ = pppdPID(pidFile: String(decoding: bytes, as: UTF8.self))
        }
    }

    func testTheKernelsTunnelsDecide() {
        let pid: [String: String] = ["ppp0": "2301\n"]
        let cmd: [Int32: [UInt8]] = [2301: lnsPPPD(tunnel: "500")]
        XCTAssertEqual(pppPeers(links: ["ppp0"], pidFiles: pid, cmdlines: cmd, tunnels: kernelTunnels),
                       ["ppp0": .unknown("the kernel has no L2TP tunnel 500 (pppd's)")])
        XCTAssertEqual(pppPeers(links: ["ppp0"], pidFiles: pid, cmdlines: cmd, tunnels: .success([L2TPTunnel(id: 500)])),
                       ["ppp0": .unknown("the kernel's L2TP tunnel 500 names no single peer")])
        XCTAssertEqual(pppPeers(links: ["ppp0"], pidFiles: pid, cmdlines: cmd,
                                tunnels: .failure(PairingProblem("the kernel has no L2TP netlink family (module l2tp_netlink)"))),
                       ["ppp0": .unknown("the kernel has no L2TP netlink family (module l2tp_netlink)")])
        XCTAssertEqual(pppPeers(links: ["ppp0"], pidFiles: pid, cmdlines: cmd,
                                tunnels: .success([L2TPTunnel(id: 500, peer: InetAddress("2001:db8::11"))])),
                       ["ppp0": .peer(InetAddress("2001:db8::11")!)])
    }

    /// An L2TP_CMD_TUNNEL_GET answer as the kernel builds it (genlmsghdr, then attributes).
    func testAKernelTunnelMessageDecodes() throws {
        func attribute(_ type: UInt16, _ value: [UInt8]) -> [UInt8] {
            let length = UInt16(4 + value.count)
            let padding = [UInt8](repeating: 0, count: (4 - value.count % 4) % 4)
            return [UInt8(length & 0xff), UInt8(length >> 8), UInt8(type & 0xff), UInt8(type >> 8)] + value + padding
        }
        func le32(_ value: UInt32) -> [UInt8] { (0..<4).map { UInt8((value >> (8 * $0)) & 0xff) } }
        let payload: [UInt8] = [4, 1, 0, 0] + attribute(9, le32(38897)) + attribute(10, le32(7)) + attribute(7, [2])
            + attribute(26, [0xa5, 0x06]) + attribute(24, [192, 0, 2, 2]) + attribute(25, [192, 0, 2, 12])
        XCTAssertEqual(try L2TPTunnel(decoding: payload),
                       L2TPTunnel(id: 38897, peerID: 7, local: InetAddress("192.0.2.2"), peer: InetAddress("192.0.2.12")))
        XCTAssertThrowsError(try L2TPTunnel(decoding: [4, 1, 0, 0] + attribute(25, [192, 0, 2, 12])), "no tunnel id")
        XCTAssertThrowsError(try L2TPTunnel(decoding: Array(payload.dropLast(2))), "truncated")
        XCTAssertThrowsError(try L2TPTunnel(decoding: [4, 1]), "no genetlink header")
        let odd = try L2TPTunnel(decoding: [4, 1, 0, 0] + attribute(9, le32(3)) + attribute(25, [192, 0, 2]))
        XCTAssertNil(odd.peer, "a 3-byte IPv4 address is no address")
    }

    func testTheReaderReadsPidFilesAndCommandLines() throws {
        // This test's own process stands in for pppd: its pid in a pid file, its /proc cmdline read back.
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("l2tp-\(getpid())").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try "\(getpid())\n".write(toFile: directory + "/ppp0.pid", atomically: true, encoding: .utf8)
        let files = readPPPDFiles(links: ["ppp0", "ppp1", "../etc/passwd"], directory: directory)
        XCTAssertEqual(files.pidFiles, ["ppp0": "\(getpid())\n"])
        let cmdline = try XCTUnwrap(files.cmdlines[getpid()])
        XCTAssertEqual(cmdline.split(separator: 0).first.map { String(decoding: $0, as: UTF8.self) }, CommandLine.arguments.first)
        XCTAssertEqual(files.foreign, [], "this process is in the test's own network namespace")
        XCTAssertEqual(pppPeers(links: ["ppp0"], pidFiles: files.pidFiles, cmdlines: files.cmdlines, tunnels: kernelTunnels), ["ppp0": .unknown("the process in the pid file is not pppd")])
    }

    func testAProcessOfAnotherNetworkNamespaceIsForeign() throws {
        // A process in a network namespace of its own (unshare -n, root) stands in for another
        // machine's pppd whose pid file landed in this /var/run.
        guard geteuid() == 0 else { return XCTFail("this test makes a network namespace: run it as root (Scripts/test)") }
        let other = Process()
        other.executableURL = URL(fileURLWithPath: "/usr/bin/unshare")
        other.arguments = ["-n", "/bin/sleep", "30"]
        try other.run()
        defer { other.terminate(); other.waitUntilExit() }
        let pid = other.processIdentifier
        let deadline = Date().addingTimeInterval(10)
        var status = stat(), own = stat()
        // unshare has made the namespace once it has exec'd sleep.
        while Date() < deadline,
              (try? String(contentsOfFile: "/proc/\(pid)/cmdline", encoding: .utf8))?.hasPrefix("/bin/sleep") != true {
            usleep(10_000)
        }
        XCTAssertEqual(stat("/proc/\(pid)/net/dev", &status), 0)
        XCTAssertEqual(stat("/proc/self/net/dev", &own), 0)
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("l2tp-ns-\(getpid())").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try "\(pid)\n".write(toFile: directory + "/ppp0.pid", atomically: true, encoding: .utf8)
        try "\(getpid())\n".write(toFile: directory + "/ppp1.pid", atomically: true, encoding: .utf8)
        let files = readPPPDFiles(links: ["ppp0", "ppp1"], directory: directory)
        XCTAssertEqual(files.foreign, [pid], "unshare -n's sleep is foreign, this process is not")
        XCTAssertEqual(pppPeers(links: ["ppp0"], pidFiles: files.pidFiles, cmdlines: files.cmdlines, foreign: files.foreign, tunnels: kernelTunnels),
                       ["ppp0": .unknown("pppd \(pid) of /var/run/ppp0.pid runs in another network namespace")])
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
