import XCTest
@testable import VTIModel

/// Every cell of design.md's table: tunnel MTU at a 1500-byte path.
final class TunnelMTUTests: XCTestCase {
    func testTheDesignTable() {
        let table: [(ESPSuite, [Int])] = [
            (.aesGCM16, [1446, 1438, 1426, 1418]),
            (.aesCBCSHA256, [1438, 1422, 1406, 1406]),
            (.aesCBCSHA1, [1438, 1422, 1422, 1406]),
        ]
        for (suite, expected) in table {
            let computed = [
                tunnelMTU(pathMTU: 1500, outerFamily: .ipv4, natTraversal: false, suite: suite),
                tunnelMTU(pathMTU: 1500, outerFamily: .ipv4, natTraversal: true, suite: suite),
                tunnelMTU(pathMTU: 1500, outerFamily: .ipv6, natTraversal: false, suite: suite),
                tunnelMTU(pathMTU: 1500, outerFamily: .ipv6, natTraversal: true, suite: suite),
            ]
            XCTAssertEqual(computed, expected, suite.name)
        }
        // AWS documents MTU 1446 and MSS 1406 for its site-to-site VPN (AES-GCM, IPv4, no NAT-T).
        XCTAssertEqual(tcpMSS(tunnelMTU: 1446, innerFamily: .ipv4), 1406)
        XCTAssertEqual(tcpMSS(tunnelMTU: 1426, innerFamily: .ipv6), 1366)
    }

    func testSuitesFromKernelAlgorithmNames() {
        XCTAssertEqual(ESPSuite(aead: "rfc4106(gcm(aes))", aeadICVBits: 128, encryption: nil, authenticationTruncationBits: nil)?.icvBytes, 16)
        let cbc = ESPSuite(aead: nil, aeadICVBits: 0, encryption: "cbc(aes)", authenticationTruncationBits: 96)
        XCTAssertEqual(cbc.map { tunnelMTU(pathMTU: 1500, outerFamily: .ipv4, natTraversal: true, suite: $0) }, 1422)
        XCTAssertNil(ESPSuite(aead: "something(new)", aeadICVBits: 128, encryption: nil, authenticationTruncationBits: nil))
        // The conservative fallback is never larger than any known suite's MTU.
        for suite in [ESPSuite.aesGCM16, .aesCBCSHA256, .aesCBCSHA1] {
            XCTAssertLessThanOrEqual(tunnelMTU(pathMTU: 1500, outerFamily: .ipv4, natTraversal: true, suite: .conservative),
                                     tunnelMTU(pathMTU: 1500, outerFamily: .ipv4, natTraversal: true, suite: suite))
        }
    }
}
