import Foundation
import VTIConfiguration
import VTIModel
import XCTest

/// `conns.NAME.mss_clamp` in vtid.yaml: off by default, auto or a number, anything else an error
/// with its line.
final class MSSClampConfigurationTests: XCTestCase {
    func testSettings() throws {
        let configuration = try DaemonConfiguration(yaml: """
            conns:
              a:
                mss_clamp: auto
              b:
                mss_clamp: 1360
              c:
                mss_clamp: off
              d:
                proxy_arp: eth1
            """, file: "vtid.yaml")
        XCTAssertEqual(configuration.connections["a"]?.mssClamp, .auto)
        XCTAssertEqual(configuration.connections["b"]?.mssClamp, .fixed(1360))
        XCTAssertEqual(configuration.connections["c"]?.mssClamp, .off)
        XCTAssertEqual(configuration.connections["d"]?.mssClamp, .off, "off by default")
    }

    func testBadValuesAreErrorsWithTheirLine() {
        for bad in ["yes", "100", "70000", "auto-ish"] {
            XCTAssertThrowsError(try DaemonConfiguration(yaml: "conns:\n  a:\n    mss_clamp: \(bad)\n", file: "vtid.yaml"), bad) { error in
                let text = String(describing: error)
                XCTAssertTrue(text.contains("mss_clamp must be off, auto or a number from 536 to 65495"), text)
                XCTAssertTrue(text.contains("vtid.yaml:3"), text)
            }
        }
    }
}
