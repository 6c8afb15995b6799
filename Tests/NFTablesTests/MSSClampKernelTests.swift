import Foundation
import KernelTestSupport
import NFTables
import XCTest

/// The clamp rules made through the wrapper, read back by nft (`nft -j list table inet vtictl`),
/// in a throwaway network namespace: on the host's kernel in `swift test`, and on Debian 12's stock
/// kernel in the qemu guest (TestbedScenarioTests.testXfrmInterfacesAndMSSClampTableUnderQemu runs this class there).
/// A foreign table is left exactly as it was.
final class MSSClampKernelTests: XCTestCase {
    func testClampRulesAreWhatNftListsAndForeignTablesAreUntouched() throws {
        try inFreshNetworkNamespace(self) {
            try nft("-f", input: """
                table inet other {
                    chain forward {
                        type filter hook forward priority 0; policy accept;
                        oifname "vti01" counter comment "vtictl:vti01"
                    }
                }
                """)
            let foreignBefore = try nft("-j", "list", "table", "inet", "other")

            let table = try MSSClampTable()
            XCTAssertEqual(try table.listRules(), [], "no table yet: nothing listed")
            let first = MSSClampRule.both(device: "vti01", mss: 1406, mss6: 1386)
            try table.replaceRules(of: "vti01", with: first)
            XCTAssertEqual(try table.listRules().map(\.clamp), first)
            XCTAssertEqual(try nftRules(), first.map(Self.nftView))
            let text = try nft("list", "table", "inet", "vtictl")
            XCTAssertTrue(text.contains("type filter hook forward priority mangle; policy accept;"), text)
            XCTAssertTrue(text.contains(#"oifname "vti01" meta nfproto ipv4 tcp flags syn tcp option maxseg size > 1406 tcp option maxseg size set 1406 comment "vtictl:vti01""#), text)

            // Another device, then vti01's MTU changes: vti02's rules stay, vti01's are replaced.
            let second = MSSClampRule.both(device: "vti02", mss: 1360, mss6: 1340)
            try table.replaceRules(of: "vti02", with: second)
            let changed = MSSClampRule.both(device: "vti01", mss: 1380, mss6: 1360)
            try table.replaceRules(of: "vti01", with: changed)
            XCTAssertEqual(try nftRules(), (second + changed).map(Self.nftView))
            try table.replaceRules(of: "vti01", with: changed)  // again: the same rules, still four
            XCTAssertEqual(try table.listRules().filter { $0.device == "vti01" }.count, 4)

            // A rule changed by hand under vtid's comment is not taken for a clamp; a replace removes it.
            try nft("add", "rule", "inet", "vtictl", "forward", "oifname", "\"vti01\"", "counter", "comment", "\"vtictl:vti01\"")
            let listed = try table.listRules()
            XCTAssertEqual(listed.count, 9)
            XCTAssertEqual(listed.last?.device, "vti01")
            XCTAssertNil(listed.last?.clamp)
            try table.replaceRules(of: "vti01", with: changed)
            XCTAssertEqual(try table.listRules().compactMap(\.clamp), second + changed)
            XCTAssertEqual(try table.listRules().count, 8)

            try table.deleteRules(of: "vti01")
            XCTAssertEqual(try nftRules(), second.map(Self.nftView))
            try table.deleteRules(of: "vti01")  // nothing left: no error
            try table.deleteTable()
            XCTAssertEqual(try table.listRules(), [])
            XCTAssertFalse(try nft("list", "tables").contains("vtictl"))
            try table.deleteTable()  // absent: no error

            XCTAssertEqual(try nft("-j", "list", "table", "inet", "other"), foreignBefore, "the foreign table changed")
        }
    }

    /// A rule as `nft -j` shows it: comment, interface key and name, nfproto, MSS (match and set).
    private static func nftView(_ rule: MSSClampRule) -> String {
        "\(MSSClampTable.comment(for: rule.device)) \(rule.direction == .outbound ? "oifname" : "iifname")=\(rule.device) "
            + "\(rule.family.rawValue) >\(rule.mss) set \(rule.mss)"
    }

    /// The rules of `inet vtictl` as nft reads them from the kernel (JSON), in nftView's form.
    private func nftRules() throws -> [String] {
        let json = try nft("-j", "list", "table", "inet", "vtictl")
        let root = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any])
        let items = try XCTUnwrap(root["nftables"] as? [[String: Any]])
        return try items.compactMap { $0["rule"] as? [String: Any] }.map { rule in
            let comment = rule["comment"] as? String ?? "-"
            let expressions = try XCTUnwrap(rule["expr"] as? [[String: Any]])
            var parts: [String] = []
            for expression in expressions {
                if let match = expression["match"] as? [String: Any],
                   let left = match["left"] as? [String: Any], let op = match["op"] as? String {
                    if let meta = left["meta"] as? [String: Any], let key = meta["key"] as? String {
                        if key == "nfproto" { parts.append("\(match["right"]!)") } else { parts.append("\(key)=\(match["right"]!)") }
                    } else if left["payload"] != nil {
                        XCTAssertEqual(op, "in")
                        XCTAssertEqual(match["right"] as? String, "syn")
                    } else if left["tcp option"] != nil {
                        parts.append("\(op)\(match["right"]!)")
                    }
                } else if let mangle = expression["mangle"] as? [String: Any] {
                    parts.append("set \(mangle["value"]!)")
                }
            }
            return ([comment] + parts).joined(separator: " ")
        }
    }

    /// Runs nft (tests only: cross-checks) and returns its stdout; `input` goes to it as a file.
    @discardableResult
    private func nft(_ arguments: String..., input: String? = nil) throws -> String {
        var arguments = arguments
        if let input {
            let path = NSTemporaryDirectory() + "mss-clamp-\(getpid()).nft"
            try input.write(toFile: path, atomically: true, encoding: .utf8)
            arguments += [path]
        }
        defer { if input != nil { try? FileManager.default.removeItem(atPath: arguments[arguments.count - 1]) } }
        let result = runChild(["/usr/sbin/nft"] + arguments)
        guard result.launched else { throw CommandError(message: "nft is missing: apt-get install nftables") }
        guard result.status == 0 else {
            throw CommandError(message: "nft \(arguments.joined(separator: " ")) failed: \(result.output)")
        }
        return result.output
    }
}
