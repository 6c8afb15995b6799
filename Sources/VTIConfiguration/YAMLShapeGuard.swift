/// Refuses, before Yams sees the text, the YAML constructs that let a short vtid.yaml cost any
/// amount of time to parse. Yams checks every mapping for duplicate keys by hashing and sorting
/// the keys, and its ordering of mapping nodes calls itself twice per level, so a key that is a
/// deeply nested mapping (`? ? ? …`, found by the vtid-yaml fuzz target: 0.1 s to over 20 s
/// for one 3 KB input, depending on the hash seed) or an alias of an anchor that expands
/// ten-fold per level (`*a9 : 1`: 0.7 s at 10^6 nodes, ten times more per level) hangs vtid at
/// start or reload.
///
/// vtid.yaml needs none of them: its keys are plain names, it has no use for anchors, and its
/// lists nest at most two deep. So this scan is deliberately conservative: it follows YAML's
/// rules for where a node starts (line starts, after `- `, `? `, `: `, and inside `[ ]`/`{ }`),
/// skips comments, one-line quoted scalars and block scalars' content, and refuses, naming the
/// line:
/// - anchors (`&name`) and aliases (`*name`);
/// - explicit keys (`? `);
/// - flow collections (`[ ]`, `{ }`) nested deeper than `maximumFlowDepth`;
/// - a quoted scalar that does not close on its line (so that no text can hide from the scan);
/// - lines indented more than `maximumIndent` columns, or with more than `maximumEntriesPerLine`
///   `- ` entries, which bound how deep Yams' recursive reading of nested nodes can go.
/// A false alarm (say, a block scalar's line starting with `&`) is a clear error, never a hang.
struct YAMLShapeGuard {
    static let maximumFlowDepth = 4
    static let maximumIndent = 64
    static let maximumEntriesPerLine = 4

    struct Refusal: Error, Equatable {
        let line: Int
        let problem: String
    }

    static func check(_ text: String) -> Refusal? {
        var lineNumber = 0
        // While set, lines indented more than this (and blank lines) are a block scalar's content.
        var blockScalarParentIndent: Int?
        var flowDepth = 0
        for lineText in text.split(separator: "\n", omittingEmptySubsequences: false) {
            lineNumber += 1
            let line = Array(lineText.utf8)
            let indent = line.prefix { $0 == UInt8(ascii: " ") }.count
            if let parent = blockScalarParentIndent {
                if indent > parent || line.allSatisfy(isBlankByte) { continue }
                blockScalarParentIndent = nil
            }
            if let refusal = scan(line, indent: indent, lineNumber: lineNumber, flowDepth: &flowDepth,
                                  blockScalarParentIndent: &blockScalarParentIndent) {
                return refusal
            }
        }
        return nil
    }

    private static func isBlankByte(_ byte: UInt8) -> Bool {
        byte == UInt8(ascii: " ") || byte == UInt8(ascii: "\t") || byte == UInt8(ascii: "\r")
    }

    private static func scan(_ line: [UInt8], indent: Int, lineNumber: Int, flowDepth: inout Int,
                             blockScalarParentIndent: inout Int?) -> Refusal? {
        func refuse(_ problem: String) -> Refusal { Refusal(line: lineNumber, problem: problem) }
        func isSpace(_ index: Int) -> Bool { index >= line.count || isBlankByte(line[index]) }
        func isFlowIndicator(_ byte: UInt8) -> Bool {
            byte == UInt8(ascii: ",") || byte == UInt8(ascii: "[") || byte == UInt8(ascii: "]")
                || byte == UInt8(ascii: "{") || byte == UInt8(ascii: "}")
        }
        if indent > maximumIndent { return refuse("indented more than \(maximumIndent) columns") }
        func openFlowCollection() -> Refusal? {
            flowDepth += 1
            return flowDepth > maximumFlowDepth
                ? refuse("lists and mappings in [ ] or { } nest more than \(maximumFlowDepth) deep") : nil
        }
        var index = indent
        var atNodeStart = true
        var entries = 0
        // Document markers and directives at the start of a line.
        if indent == 0, line.count >= 3, line[0] == line[1], line[1] == line[2],
           line[0] == UInt8(ascii: "-") || line[0] == UInt8(ascii: "."), isSpace(3) {
            index = 3
        } else if indent == 0, line.first == UInt8(ascii: "%") {
            return nil
        }
        while index < line.count {
            let byte = line[index]
            if isBlankByte(byte) {
                index += 1
                continue
            }
            if byte == UInt8(ascii: "#"), index == 0 || isSpace(index - 1) { return nil }
            if atNodeStart {
                switch byte {
                case UInt8(ascii: "&"):
                    return refuse("anchors (&name) are not allowed in vtid.yaml")
                case UInt8(ascii: "*"):
                    return refuse("aliases (*name) are not allowed in vtid.yaml")
                case UInt8(ascii: "?") where isSpace(index + 1):
                    return refuse("explicit keys (? key) are not allowed in vtid.yaml: keys are plain names")
                case UInt8(ascii: "-") where isSpace(index + 1):
                    entries += 1
                    if entries > maximumEntriesPerLine {
                        return refuse("more than \(maximumEntriesPerLine) list entries (- ) open on one line")
                    }
                    index += 1
                    continue
                case UInt8(ascii: ":") where isSpace(index + 1):
                    index += 1
                    continue
                case UInt8(ascii: "!"):
                    // A tag; the node itself follows it.
                    while !isSpace(index) { index += 1 }
                    continue
                case UInt8(ascii: "["), UInt8(ascii: "{"):
                    if let refusal = openFlowCollection() { return refusal }
                    index += 1
                    continue
                case UInt8(ascii: "|"), UInt8(ascii: ">"):
                    if flowDepth == 0 {
                        blockScalarParentIndent = indent
                        return nil
                    }
                case UInt8(ascii: "'"), UInt8(ascii: "\""):
                    guard let end = closingQuote(line, from: index) else {
                        return refuse("a quoted value must end on the line where it starts in vtid.yaml")
                    }
                    index = end + 1
                    atNodeStart = false
                    continue
                default:
                    break
                }
            }
            // Inside a node (plain scalar) or on a flow indicator.
            if byte == UInt8(ascii: ":"), isSpace(index + 1) || (flowDepth > 0 && index + 1 < line.count && isFlowIndicator(line[index + 1])) {
                atNodeStart = true
                index += 1
                continue
            }
            if flowDepth > 0, isFlowIndicator(byte) {
                if byte == UInt8(ascii: "]") || byte == UInt8(ascii: "}") {
                    flowDepth -= 1
                    atNodeStart = false
                } else if byte == UInt8(ascii: ",") {
                    atNodeStart = true
                } else {
                    // [ or { inside a plain scalar in flow context starts a collection.
                    if let refusal = openFlowCollection() { return refusal }
                    atNodeStart = true
                }
                index += 1
                continue
            }
            atNodeStart = false
            index += 1
        }
        return nil
    }

    /// The index of the quote that closes the one at `start`, on the same line.
    private static func closingQuote(_ line: [UInt8], from start: Int) -> Int? {
        let quote = line[start]
        var index = start + 1
        while index < line.count {
            if quote == UInt8(ascii: "\""), line[index] == UInt8(ascii: "\\") {
                index += 2
                continue
            }
            if line[index] == quote {
                // '' inside single quotes is an escaped quote.
                if quote == UInt8(ascii: "'"), index + 1 < line.count, line[index + 1] == quote {
                    index += 2
                    continue
                }
                return index
            }
            index += 1
        }
        return nil
    }
}
