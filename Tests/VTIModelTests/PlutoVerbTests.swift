import XCTest
@testable import VTIModel

/// Every verb pluto 4.x and 5.x send, and what is not one.
final class PlutoVerbTests: XCTestCase {
    func testClassicVerbs() {
        for step in PlutoVerb.Step.allCases {
            for scope in [PlutoVerb.Scope.host, .client] {
                for isIPv6 in [false, true] {
                    let text = "\(step.rawValue)-\(scope.rawValue)" + (isIPv6 ? "-v6" : "")
                    let verb = PlutoVerb(text)
                    XCTAssertEqual(verb, .known(steps: [step], scope: scope, isIPv6: isIPv6), text)
                    XCTAssertEqual(verb.description, text)
                }
            }
        }
    }

    /// libreswan 5.x's async mode: prepare, route and up, in that order, without a suffix.
    func testCompoundVerbs() {
        let table: [(String, [PlutoVerb.Step])] = [
            ("prepare-route-up", [.prepare, .route, .up]),
            ("prepare-route", [.prepare, .route]),
            ("prepare-up", [.prepare, .up]),
            ("route-up", [.route, .up]),
            ("prepare", [.prepare]),
            ("route", [.route]),
            ("up", [.up]),
        ]
        for (text, steps) in table {
            XCTAssertEqual(PlutoVerb(text), .known(steps: steps, scope: nil, isIPv6: false), text)
            XCTAssertEqual(PlutoVerb(text).description, text)
        }
    }

    func testEverythingElseIsUnknown() {
        for text in ["", "-client", "client", "up-client-v4", "up-up-client", "client-up", "up-client-v6-x", "UP-CLIENT",
                     "up;reboot", "up-client\n", "up-prepare", "route-prepare-up", "down-unroute-client", "up-v6",
                     "prepare-route-up-route", "frobnicate-client", "-client-v6", "v6", "up-client-v6-v6",
                     "up-host-client", "up-clïent", "up-client\u{301}", "up\u{301}-client", "up-\u{301}client", "upup-client"] {
            XCTAssertTrue(PlutoVerb(text).isUnknown, text.debugDescription)
            XCTAssertEqual(PlutoVerb(text).steps, [], text.debugDescription)
        }
        XCTAssertEqual(PlutoVerb("up;\n$(reboot)").description, "up;\\x0a$(reboot)", "escaped for the log")
        XCTAssertEqual(PlutoVerb(String(repeating: "x", count: 500)), .unknown(String(repeating: "x", count: 64)))
    }
}
