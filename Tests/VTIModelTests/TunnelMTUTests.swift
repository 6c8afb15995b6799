import XCTest
@testable import VTIModel

final class TunnelMTUTests: XCTestCase {
    /// Every cell of design.md's table: tunnel MTU at a 1500-byte path.
    func testTheDesignTable() {
        let table: [(ESPSuite, ipv4: Int, ipv4NAT: Int, ipv6: Int, ipv6NAT: Int)] = [
            (.aesGCM16, 1446, 1438, 1426, 1418),
            (.aesCBCSHA256, 1438, 1422, 1406, 1406),
            (.aesCBCSHA1, 1438, 1422, 1422, 1406),
        ]
        for row in table {
            XCTAssertEqual(tunnelMTU(pathMTU: 1500, outerFamily: .ipv4, natTraversal: false, suite: row.0), row.ipv4, "\(row.0) IPv4")
            XCTAssertEqual(tunnelMTU(pathMTU: 1500, outerFamily: .ipv4, natTraversal: true, suite: row.0), row.ipv4NAT, "\(row.0) IPv4 NAT-T")
            XCTAssertEqual(tunnelMTU(pathMTU: 1500, outerFamily: .ipv6, natTraversal: false, suite: row.0), row.ipv6, "\(row.0) IPv6")
            XCTAssertEqual(tunnelMTU(pathMTU: 1500, outerFamily: .ipv6, natTraversal: true, suite: row.0), row.ipv6NAT, "\(row.0) IPv6 NAT-T")
        }
    }

    func testTCPMSS() {
        // AWS documents MTU 1446 and MSS 1406 for its site-to-site VPN (AES-GCM, IPv4, no NAT-T).
        XCTAssertEqual(tcpMSS(tunnelMTU: 1446, innerFamily: .ipv4), 1406)
        XCTAssertEqual(tcpMSS(tunnelMTU: 1426, innerFamily: .ipv6), 1366)
    }

    /// The generic form: any IV, ICV and block size.
    func testGenericSuitesAndOtherPathMTUs() {
        let chacha = ESPSuite(name: "CHACHA20-POLY1305", ivBytes: 8, icvBytes: 16, blockBytes: 1)
        XCTAssertEqual(tunnelMTU(pathMTU: 1500, outerFamily: .ipv4, natTraversal: false, suite: chacha), 1446)
        let tripleDES = ESPSuite(name: "3DES+SHA1", ivBytes: 8, icvBytes: 12, blockBytes: 8)
        // 1500 - 20 - 8 - 8 - 12 = 1452, floor to 8 = 1448, - 2.
        XCTAssertEqual(tunnelMTU(pathMTU: 1500, outerFamily: .ipv4, natTraversal: false, suite: tripleDES), 1446)
        // Jumbo and PPPoE paths.
        XCTAssertEqual(tunnelMTU(pathMTU: 9001, outerFamily: .ipv4, natTraversal: false, suite: .aesGCM16), 8946)
        // 1492 - 20 - 8 - 8 - 16 - 16 = 1424, a multiple of 16 already, - 2.
        XCTAssertEqual(tunnelMTU(pathMTU: 1492, outerFamily: .ipv4, natTraversal: true, suite: .aesCBCSHA256), 1422)
    }

    func testSuitesFromKernelAlgorithmNames() {
        XCTAssertEqual(ESPSuite(aead: "rfc4106(gcm(aes))", aeadICVBits: 128, encryption: nil, authenticationTruncationBits: nil)?.icvBytes, 16)
        let cbc = ESPSuite(aead: nil, aeadICVBits: 0, encryption: "cbc(aes)", authenticationTruncationBits: 96)
        XCTAssertEqual(cbc.map { tunnelMTU(pathMTU: 1500, outerFamily: .ipv4, natTraversal: true, suite: $0) }, 1422)
        XCTAssertNil(ESPSuite(aead: "something(new)", aeadICVBits: 128, encryption: nil, authenticationTruncationBits: nil))
        XCTAssertNil(ESPSuite(aead: nil, aeadICVBits: 0, encryption: "cbc(aes)", authenticationTruncationBits: nil))
        // The conservative fallback is never larger than any known suite's MTU.
        for suite in [ESPSuite.aesGCM16, .aesCBCSHA256, .aesCBCSHA1] {
            for family in [AddressFamily.ipv4, .ipv6] {
                XCTAssertLessThanOrEqual(tunnelMTU(pathMTU: 1500, outerFamily: family, natTraversal: true, suite: .conservative),
                                         tunnelMTU(pathMTU: 1500, outerFamily: family, natTraversal: true, suite: suite))
            }
        }
    }
}
