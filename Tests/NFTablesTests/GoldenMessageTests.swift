import Foundation
import XCTest
@testable import NFTables

/// Our nf_tables messages against what nft sends for the same rule, table and chain
/// (Fixtures/nft, recorded by Scripts/capture-nftables-fixtures from Debian's nft 1.0.6).
/// Bytes 6-7 (flags: we ask for ACKs and create; nft does neither for a rule's ACK) and 8-15
/// (sequence, port id) are compared separately or not at all.
final class GoldenMessageTests: XCTestCase {
    private let rules: [(String, MSSClampRule)] = [
        ("rule-outbound-ipv4", MSSClampRule(device: "vti01", direction: .outbound, family: .ipv4, mss: 1406)),
        ("rule-outbound-ipv6", MSSClampRule(device: "vti01", direction: .outbound, family: .ipv6, mss: 1386)),
        ("rule-inbound-ipv4", MSSClampRule(device: "vti01", direction: .inbound, family: .ipv4, mss: 1406)),
        ("rule-inbound-ipv6", MSSClampRule(device: "vti01", direction: .inbound, family: .ipv6, mss: 1386)),
    ]

    func testRuleMessagesMatchNftByteForByte() throws {
        for (name, rule) in rules {
            var batch = NFTBatch()
            batch.addRule(rule)
            let ours = try XCTUnwrap(batch.messageBytes().first)
            let theirs = try fixture(name)
            XCTAssertEqual(ours.count, theirs.count, name)
            XCTAssertTrue(withoutFlagsAndSequence(ours) == withoutFlagsAndSequence(theirs), "\(name): \(firstDifference(ours, theirs))")
            // nft: REQUEST|CREATE|APPEND; ours adds ACK.
            XCTAssertEqual(flags(of: ours), flags(of: theirs) | UInt16(NLM_F_ACK), name)
        }
    }

    func testRuleExpressionsMatchNftDebugOutput() throws {
        for (name, rule) in rules {
            let url = try XCTUnwrap(Bundle.module.url(forResource: "Fixtures/nft/\(name)", withExtension: "debug"))
            let expected = try String(contentsOf: url, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
            XCTAssertEqual(MSSClampTable.debugText(of: rule), expected, name)
        }
    }

    func testTableMessageMatchesNft() throws {
        var batch = NFTBatch()
        batch.ensureTableAndChain()
        let messages = batch.messageBytes()
        XCTAssertEqual(messages.count, 2)
        let table = try fixture("table-create")
        XCTAssertEqual(withoutFlagsAndSequence(messages[0]), withoutFlagsAndSequence(table))
        XCTAssertEqual(flags(of: messages[0]), UInt16(NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE))
    }

    /// nft writes the chain's attributes in another order than libnftnl: the same attributes,
    /// with the same values (hook forward, priority -150, policy accept, type filter).
    func testChainMessageHasNftsAttributes() throws {
        var batch = NFTBatch()
        batch.ensureTableAndChain()
        let chain = try XCTUnwrap(batch.messageBytes().last)
        let theirs = try fixture("chain-create")
        XCTAssertEqual(Array(chain[4..<6]), Array(theirs[4..<6]), "message type")
        XCTAssertEqual(Array(chain[16..<20]), Array(theirs[16..<20]), "nfgenmsg")
        XCTAssertEqual(attributes(chain), attributes(theirs))
        XCTAssertEqual(attributes(chain).count, 5)
    }

    // MARK: helpers

    private func fixture(_ name: String) throws -> [UInt8] {
        let url = try XCTUnwrap(Bundle.module.url(forResource: "Fixtures/nft/\(name)", withExtension: "hex"), name)
        return try String(contentsOf: url, encoding: .utf8).split(separator: "\n")
            .filter { !$0.hasPrefix("#") }
            .flatMap { $0.split(separator: " ").map { UInt8($0, radix: 16)! } }
    }

    private func withoutFlagsAndSequence(_ bytes: [UInt8]) -> [UInt8] {
        var copy = bytes
        for index in 6..<16 where index < copy.count { copy[index] = 0 }
        return copy
    }

    private func flags(of bytes: [UInt8]) -> UInt16 { UInt16(bytes[6]) | UInt16(bytes[7]) << 8 }

    private func firstDifference(_ a: [UInt8], _ b: [UInt8]) -> String {
        let x = withoutFlagsAndSequence(a), y = withoutFlagsAndSequence(b)
        guard let index = zip(x, y).enumerated().first(where: { $0.element.0 != $0.element.1 })?.offset else { return "lengths \(a.count) and \(b.count)" }
        return "first difference at byte \(index)"
    }

    /// Top-level attributes after the 20-byte header: type to value.
    private func attributes(_ bytes: [UInt8]) -> [UInt16: [UInt8]] {
        var result: [UInt16: [UInt8]] = [:]
        var offset = 20
        while offset + 4 <= bytes.count {
            let length = Int(bytes[offset]) | Int(bytes[offset + 1]) << 8
            let type = UInt16(bytes[offset + 2]) | UInt16(bytes[offset + 3]) << 8
            guard length >= 4, offset + length <= bytes.count else { break }
            result[type] = Array(bytes[(offset + 4)..<(offset + length)])
            offset += (length + 3) & ~3
        }
        return result
    }
}

private let NLM_F_REQUEST: Int32 = 1
private let NLM_F_ACK: Int32 = 4
private let NLM_F_CREATE: Int32 = 0x400
