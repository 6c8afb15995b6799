internal import CNftnl
internal import Glibc

// libnftnl objects and the netfilter socket. All pointer work of the module is here.

private let family = UInt16(NFPROTO_INET)
private let ifnameSize = 16  // IFNAMSIZ: nft compares an interface name as 16 bytes, zero padded
private let tcpOptionMaxseg: UInt32 = 2  // TCPOPT_MAXSEG, the option's kind
private let registerOne = UInt32(NFT_REG_1.rawValue)

/// A libnftnl rule, built from an `MSSClampRule` or parsed from the kernel's message.
struct NFTRule {
    let pointer: OpaquePointer

    init(pointer: OpaquePointer) { self.pointer = pointer }

    init(_ rule: MSSClampRule) {
        pointer = nftnl_rule_alloc()!
        nftnl_rule_set_u32(pointer, UInt16(NFTNL_RULE_FAMILY.rawValue), UInt32(family))
        nftnl_rule_set_str(pointer, UInt16(NFTNL_RULE_TABLE.rawValue), MSSClampTable.tableName)
        nftnl_rule_set_str(pointer, UInt16(NFTNL_RULE_CHAIN.rawValue), MSSClampTable.chainName)
        // oifname/iifname "DEV"
        addMeta(rule.direction == .outbound ? NFT_META_OIFNAME : NFT_META_IIFNAME)
        var name = Array(rule.device.utf8.prefix(ifnameSize - 1))
        name += [UInt8](repeating: 0, count: ifnameSize - name.count)
        addCompare(NFT_CMP_EQ, name)
        // meta nfproto ipv4|ipv6
        addMeta(NFT_META_NFPROTO)
        addCompare(NFT_CMP_EQ, [rule.family.nfproto])
        // tcp flags syn: meta l4proto tcp, then (th[13] & SYN) != 0
        addMeta(NFT_META_L4PROTO)
        addCompare(NFT_CMP_EQ, [UInt8(IPPROTO_TCP)])
        let payload = expression("payload")
        nftnl_expr_set_u32(payload, UInt16(NFTNL_EXPR_PAYLOAD_DREG), registerOne)
        nftnl_expr_set_u32(payload, UInt16(NFTNL_EXPR_PAYLOAD_BASE), UInt32(NFT_PAYLOAD_TRANSPORT_HEADER.rawValue))
        nftnl_expr_set_u32(payload, UInt16(NFTNL_EXPR_PAYLOAD_OFFSET), 13)
        nftnl_expr_set_u32(payload, UInt16(NFTNL_EXPR_PAYLOAD_LEN), 1)
        add(payload)
        let bitwise = expression("bitwise")
        nftnl_expr_set_u32(bitwise, UInt16(NFTNL_EXPR_BITWISE_SREG), registerOne)
        nftnl_expr_set_u32(bitwise, UInt16(NFTNL_EXPR_BITWISE_DREG), registerOne)
        nftnl_expr_set_u32(bitwise, UInt16(NFTNL_EXPR_BITWISE_LEN), 1)
        Self.setData(bitwise, UInt16(NFTNL_EXPR_BITWISE_MASK), [0x02])  // SYN
        Self.setData(bitwise, UInt16(NFTNL_EXPR_BITWISE_XOR), [0x00])
        add(bitwise)
        addCompare(NFT_CMP_NEQ, [0x00])
        // tcp option maxseg size > N
        let mss = [UInt8(rule.mss >> 8), UInt8(rule.mss & 0xff)]  // network byte order
        add(maxsegExpression(load: true))
        addCompare(NFT_CMP_GT, mss)
        // tcp option maxseg size set N
        let immediate = expression("immediate")
        nftnl_expr_set_u32(immediate, UInt16(NFTNL_EXPR_IMM_DREG), registerOne)
        Self.setData(immediate, UInt16(NFTNL_EXPR_IMM_DATA), mss)
        add(immediate)
        add(maxsegExpression(load: false))
        userData = Self.commentUserData(MSSClampTable.comment(for: rule.device))
    }

    /// The comment, as nft writes it in a rule's user data: one TLV (NFTNL_UDATA_RULE_COMMENT).
    /// Kept apart from the libnftnl rule and put after its expressions, where nft puts it
    /// (libnftnl would put it before them), so that the message is nft's byte for byte.
    private(set) var userData: [UInt8] = []

    private static func commentUserData(_ text: String) -> [UInt8] {
        let comment = Array(text.utf8) + [0]
        return [UInt8(NFTNL_UDATA_RULE_COMMENT.rawValue), UInt8(comment.count)] + comment
    }

    /// Writes the rule's attributes into the message behind `header`.
    func buildPayload(_ header: UnsafeMutablePointer<nlmsghdr>) {
        nftnl_rule_nlmsg_build_payload(header, pointer)
        if !userData.isEmpty {
            userData.withUnsafeBytes { mnl_attr_put(header, UInt16(NFTA_RULE_USERDATA.rawValue), $0.count, $0.baseAddress) }
        }
    }

    func free() { nftnl_rule_free(pointer) }

    private func expression(_ name: String) -> OpaquePointer { nftnl_expr_alloc(name)! }
    private func add(_ expression: OpaquePointer) { nftnl_rule_add_expr(pointer, expression) }

    private func addMeta(_ key: nft_meta_keys) {
        let meta = expression("meta")
        nftnl_expr_set_u32(meta, UInt16(NFTNL_EXPR_META_KEY), UInt32(key.rawValue))
        nftnl_expr_set_u32(meta, UInt16(NFTNL_EXPR_META_DREG), registerOne)
        add(meta)
    }

    private func addCompare(_ operation: nft_cmp_ops, _ data: [UInt8]) {
        let compare = expression("cmp")
        nftnl_expr_set_u32(compare, UInt16(NFTNL_EXPR_CMP_SREG), registerOne)
        nftnl_expr_set_u32(compare, UInt16(NFTNL_EXPR_CMP_OP), UInt32(operation.rawValue))
        Self.setData(compare, UInt16(NFTNL_EXPR_CMP_DATA), data)
        add(compare)
    }

    /// `exthdr load tcpopt 2b @ 2 + 2 => reg 1` or `exthdr write tcpopt reg 1 => 2b @ 2 + 2`.
    private func maxsegExpression(load: Bool) -> OpaquePointer {
        let exthdr = expression("exthdr")
        nftnl_expr_set_u32(exthdr, UInt16(load ? NFTNL_EXPR_EXTHDR_DREG : NFTNL_EXPR_EXTHDR_SREG), registerOne)
        nftnl_expr_set_u8(exthdr, UInt16(NFTNL_EXPR_EXTHDR_TYPE), UInt8(tcpOptionMaxseg))
        nftnl_expr_set_u32(exthdr, UInt16(NFTNL_EXPR_EXTHDR_OFFSET), 2)
        nftnl_expr_set_u32(exthdr, UInt16(NFTNL_EXPR_EXTHDR_LEN), 2)
        nftnl_expr_set_u32(exthdr, UInt16(NFTNL_EXPR_EXTHDR_OP), UInt32(NFT_EXTHDR_OP_TCPOPT.rawValue))
        // nft sends flags 0 with a load (NFT_EXTHDR_F_PRESENT would test the option's presence).
        if load { nftnl_expr_set_u32(exthdr, UInt16(NFTNL_EXPR_EXTHDR_FLAGS), 0) }
        return exthdr
    }

    private static func setData(_ expression: OpaquePointer, _ attribute: UInt16, _ bytes: [UInt8]) {
        bytes.withUnsafeBytes { _ = nftnl_expr_set(expression, attribute, $0.baseAddress, UInt32($0.count)) }
    }

    /// Each expression as libnftnl prints it (`[ meta load oifname => reg 1 ]`), one per line.
    func expressionText() -> String {
        var lines: [String] = []
        guard let iterator = nftnl_expr_iter_create(pointer) else { return "" }
        defer { nftnl_expr_iter_destroy(iterator) }
        var buffer = [CChar](repeating: 0, count: 512)
        while let expression = nftnl_expr_iter_next(iterator) {
            let name = nftnl_expr_get_str(expression, UInt16(NFTNL_EXPR_NAME)).map { String(cString: $0) } ?? "?"
            let written = buffer.withUnsafeMutableBufferPointer {
                nftnl_expr_snprintf($0.baseAddress, $0.count, expression, UInt32(NFTNL_OUTPUT_DEFAULT.rawValue), 0)
            }
            let text = written > 0 ? String(decoding: buffer.prefix(Int(written)).map { UInt8(bitPattern: $0) }, as: UTF8.self) : ""
            lines.append("[ \(name) \(text)]")
        }
        return lines.joined(separator: "\n")
    }

    var handle: UInt64 { nftnl_rule_get_u64(pointer, UInt16(NFTNL_RULE_HANDLE.rawValue)) }

    func string(_ attribute: nftnl_rule_attr) -> String? {
        guard nftnl_rule_is_set(pointer, UInt16(attribute.rawValue)) else { return nil }
        return nftnl_rule_get_str(pointer, UInt16(attribute.rawValue)).map { String(cString: $0) }
    }

    /// The comment in the rule's user data (the TLV nft writes), if any.
    var comment: String? {
        guard nftnl_rule_is_set(pointer, UInt16(NFTNL_RULE_USERDATA.rawValue)) else { return nil }
        var length: UInt32 = 0
        guard let data = nftnl_rule_get_data(pointer, UInt16(NFTNL_RULE_USERDATA.rawValue), &length) else { return nil }
        let bytes = Array(UnsafeRawBufferPointer(start: data, count: Int(length)))
        var offset = 0
        while offset + 2 <= bytes.count {
            let type = bytes[offset], count = Int(bytes[offset + 1])
            guard offset + 2 + count <= bytes.count else { return nil }
            if type == UInt8(NFTNL_UDATA_RULE_COMMENT.rawValue) {
                return String(decoding: bytes[(offset + 2)..<(offset + 2 + count)].prefix { $0 != 0 }, as: UTF8.self)
            }
            offset += 2 + count
        }
        return nil
    }

    /// The meta key, compare data and immediate value of a clamp rule, enough to rebuild it:
    /// the caller rebuilds and compares the whole text.
    func clampCandidate(device: String) -> MSSClampRule? {
        guard let iterator = nftnl_expr_iter_create(pointer) else { return nil }
        defer { nftnl_expr_iter_destroy(iterator) }
        var direction: MSSClampRule.Direction?
        var family: MSSClampRule.Family?
        var mss: UInt16?
        var lastMetaKey: UInt32?
        while let expression = nftnl_expr_iter_next(iterator) {
            let name = nftnl_expr_get_str(expression, UInt16(NFTNL_EXPR_NAME)).map { String(cString: $0) }
            switch name {
            case "meta":
                let key = nftnl_expr_get_u32(expression, UInt16(NFTNL_EXPR_META_KEY))
                lastMetaKey = key
                if direction == nil {
                    if key == NFT_META_OIFNAME.rawValue { direction = .outbound }
                    if key == NFT_META_IIFNAME.rawValue { direction = .inbound }
                }
            case "cmp":
                if lastMetaKey == NFT_META_NFPROTO.rawValue, family == nil {
                    let value = Self.data(expression, UInt16(NFTNL_EXPR_CMP_DATA))
                    if value == [UInt8(NFPROTO_IPV4)] { family = .ipv4 }
                    if value == [UInt8(NFPROTO_IPV6)] { family = .ipv6 }
                }
                lastMetaKey = nil
            case "immediate":
                let value = Self.data(expression, UInt16(NFTNL_EXPR_IMM_DATA))
                if value.count == 2 { mss = UInt16(value[0]) << 8 | UInt16(value[1]) }
            default:
                lastMetaKey = nil
            }
        }
        guard let direction, let family, let mss else { return nil }
        return MSSClampRule(device: device, direction: direction, family: family, mss: mss)
    }

    private static func data(_ expression: OpaquePointer, _ attribute: UInt16) -> [UInt8] {
        var length: UInt32 = 0
        guard let data = nftnl_expr_get(expression, attribute, &length) else { return [] }
        return Array(UnsafeRawBufferPointer(start: data, count: Int(length)))
    }

    /// What the listing reports for this rule.
    func listed() -> ListedRule {
        var listed = ListedRule(handle: handle, comment: comment, clamp: nil)
        if let device = listed.device, let candidate = clampCandidate(device: device) {
            let rebuilt = NFTRule(candidate)
            defer { rebuilt.free() }
            // Exactly what vtid writes, or not a clamp of vtid's.
            if rebuilt.expressionText() == expressionText() { listed.clamp = candidate }
        }
        return listed
    }
}

/// An nf_tables transaction: messages between a batch begin and end, sent in one `sendmsg`.
struct NFTBatch {
    /// Each message: its type, flags and a function that writes it into a buffer.
    fileprivate var messages: [(type: Int32, flags: Int32, build: (UnsafeMutablePointer<nlmsghdr>) -> Void)] = []

    mutating func ensureTableAndChain() {
        // NLM_F_CREATE without NLM_F_EXCL: no error when they exist, and nothing in them changes.
        messages.append((Int32(NFT_MSG_NEWTABLE.rawValue), NLM_F_CREATE, { header in
            let table = nftnl_table_alloc()!
            defer { nftnl_table_free(table) }
            nftnl_table_set_u32(table, UInt16(NFTNL_TABLE_FAMILY.rawValue), UInt32(family))
            nftnl_table_set_str(table, UInt16(NFTNL_TABLE_NAME.rawValue), MSSClampTable.tableName)
            nftnl_table_set_u32(table, UInt16(NFTNL_TABLE_FLAGS.rawValue), 0)  // as nft: not dormant
            nftnl_table_nlmsg_build_payload(header, table)
        }))
        messages.append((Int32(NFT_MSG_NEWCHAIN.rawValue), NLM_F_CREATE, { header in
            let chain = nftnl_chain_alloc()!
            defer { nftnl_chain_free(chain) }
            nftnl_chain_set_u32(chain, UInt16(NFTNL_CHAIN_FAMILY.rawValue), UInt32(family))
            nftnl_chain_set_str(chain, UInt16(NFTNL_CHAIN_TABLE.rawValue), MSSClampTable.tableName)
            nftnl_chain_set_str(chain, UInt16(NFTNL_CHAIN_NAME.rawValue), MSSClampTable.chainName)
            nftnl_chain_set_str(chain, UInt16(NFTNL_CHAIN_TYPE.rawValue), "filter")
            nftnl_chain_set_u32(chain, UInt16(NFTNL_CHAIN_HOOKNUM.rawValue), UInt32(NF_INET_FORWARD.rawValue))
            nftnl_chain_set_s32(chain, UInt16(NFTNL_CHAIN_PRIO.rawValue), -150)  // NF_IP_PRI_MANGLE
            nftnl_chain_set_u32(chain, UInt16(NFTNL_CHAIN_POLICY.rawValue), UInt32(NF_ACCEPT))
            nftnl_chain_nlmsg_build_payload(header, chain)
        }))
    }

    mutating func addRule(_ rule: MSSClampRule) {
        messages.append((Int32(NFT_MSG_NEWRULE.rawValue), NLM_F_CREATE | NLM_F_APPEND, { header in
            let built = NFTRule(rule)
            defer { built.free() }
            built.buildPayload(header)
        }))
    }

    mutating func deleteRule(handle: UInt64) {
        messages.append((Int32(NFT_MSG_DELRULE.rawValue), 0, { header in
            let rule = nftnl_rule_alloc()!
            defer { nftnl_rule_free(rule) }
            nftnl_rule_set_u32(rule, UInt16(NFTNL_RULE_FAMILY.rawValue), UInt32(family))
            nftnl_rule_set_str(rule, UInt16(NFTNL_RULE_TABLE.rawValue), MSSClampTable.tableName)
            nftnl_rule_set_str(rule, UInt16(NFTNL_RULE_CHAIN.rawValue), MSSClampTable.chainName)
            nftnl_rule_set_u64(rule, UInt16(NFTNL_RULE_HANDLE.rawValue), handle)
            nftnl_rule_nlmsg_build_payload(header, rule)
        }))
    }

    mutating func deleteTable() {
        messages.append((Int32(NFT_MSG_DELTABLE.rawValue), 0, { header in
            let table = nftnl_table_alloc()!
            defer { nftnl_table_free(table) }
            nftnl_table_set_u32(table, UInt16(NFTNL_TABLE_FAMILY.rawValue), UInt32(family))
            nftnl_table_set_str(table, UInt16(NFTNL_TABLE_NAME.rawValue), MSSClampTable.tableName)
            nftnl_table_nlmsg_build_payload(header, table)
        }))
    }

    /// The batch's bytes, begin and end included, sequence numbers from `firstSequence`; each
    /// message of the batch asks for an ACK. Also the sequence number of each message (not the
    /// begin and end).
    func encoded(firstSequence: UInt32) -> [UInt8] {
        var out: [UInt8] = []
        var sequence = firstSequence
        var buffer = [UInt8](repeating: 0, count: 1 << 16)
        func append(_ write: (UnsafeMutablePointer<CChar>) -> UnsafeMutablePointer<nlmsghdr>?) {
            buffer.withUnsafeMutableBytes { raw in
                let base = raw.baseAddress!.assumingMemoryBound(to: CChar.self)
                memset(base, 0, raw.count)
                guard let header = write(base) else { return }
                let length = Int(vtictl_nft_align(header.pointee.nlmsg_len))
                out += UnsafeRawBufferPointer(start: raw.baseAddress, count: length)
            }
            sequence &+= 1
        }
        append { nftnl_batch_begin($0, sequence) }
        for message in messages {
            append { base in
                let header = nftnl_nlmsg_build_hdr(base, UInt16(message.type), family,
                                                   UInt16(message.flags | NLM_F_ACK), sequence)!
                message.build(header)
                return header
            }
        }
        append { nftnl_batch_end($0, sequence) }
        return out
    }

    var count: Int { messages.count }

    /// Each message's bytes (not the batch begin and end), sequence numbers zero; for tests.
    func messageBytes() -> [[UInt8]] {
        let bytes = encoded(firstSequence: 0)
        var messages: [[UInt8]] = []
        var offset = 0
        while offset + 4 <= bytes.count {
            let length = Int(bytes[offset]) | Int(bytes[offset + 1]) << 8 | Int(bytes[offset + 2]) << 16 | Int(bytes[offset + 3]) << 24
            guard length >= 16, offset + length <= bytes.count else { break }
            var message = Array(bytes[offset..<(offset + length)])
            for index in 8..<12 { message[index] = 0 }
            messages.append(message)
            offset += (length + 3) & ~3
        }
        return Array(messages.dropFirst().dropLast())
    }
}

/// A netfilter netlink socket (NETLINK_NETFILTER) through libmnl.
final class NFTSocket {
    private let socket: OpaquePointer
    private let portID: UInt32
    private var sequence: UInt32 = UInt32.random(in: 1...0x3fff_ffff)

    init() throws(NFTablesError) {
        guard let socket = mnl_socket_open(NETLINK_NETFILTER) else {
            throw NFTablesError(operation: "open netfilter netlink socket", errno: errno)
        }
        guard mnl_socket_bind(socket, 0, pid_t(MNL_SOCKET_AUTOPID)) == 0 else {
            let error = errno
            mnl_socket_close(socket)
            throw NFTablesError(operation: "bind netfilter netlink socket", errno: error)
        }
        self.socket = socket
        portID = mnl_socket_get_portid(socket)
    }

    deinit { mnl_socket_close(socket) }

    /// Sends the transaction and reads the kernel's answers: it handles a batch inside `sendmsg`,
    /// so every ACK or error is queued when that returns. The first error is thrown (the kernel
    /// then applied none of the batch).
    func send(_ batch: NFTBatch, operation: String) throws(NFTablesError) {
        let first = sequence
        let bytes = batch.encoded(firstSequence: first)
        sequence &+= UInt32(batch.count + 2)
        let sent = bytes.withUnsafeBytes { mnl_socket_sendto(socket, $0.baseAddress, $0.count) }
        guard sent == bytes.count else { throw NFTablesError(operation: operation, errno: sent < 0 ? errno : EMSGSIZE) }
        var acknowledged = 0
        var failure: Int32 = 0
        while acknowledged < batch.count && failure == 0 {
            let messages = try receive(operation: operation)
            for (header, payload) in messages where header.nlmsg_seq &- first <= UInt32(batch.count + 1) {
                guard Int32(header.nlmsg_type) == vtictl_nlmsg_error() else { continue }
                let code = payload.count >= 4 ? payload.withUnsafeBytes { $0.loadUnaligned(as: Int32.self) } : -EBADMSG
                acknowledged += 1
                if code != 0 && failure == 0 { failure = -code }
            }
        }
        if failure != 0 { throw NFTablesError(operation: operation, errno: failure) }
    }

    /// The rules of `table`/`chain` in the inet family; none when the table or chain is absent.
    func dumpRules(table: String, chain: String) throws(NFTablesError) -> [ListedRule] {
        let operation = "list rules of inet \(table) \(chain)"
        let sequenceNumber = sequence
        sequence &+= 1
        var request = [UInt8](repeating: 0, count: 4096)
        let length = request.withUnsafeMutableBytes { raw -> Int in
            let header = nftnl_nlmsg_build_hdr(raw.baseAddress!.assumingMemoryBound(to: CChar.self),
                                               UInt16(NFT_MSG_GETRULE.rawValue), family, UInt16(NLM_F_DUMP), sequenceNumber)!
            let rule = nftnl_rule_alloc()!
            defer { nftnl_rule_free(rule) }
            // The kernel filters a dump by table and chain when they are given.
            nftnl_rule_set_str(rule, UInt16(NFTNL_RULE_TABLE.rawValue), table)
            nftnl_rule_set_str(rule, UInt16(NFTNL_RULE_CHAIN.rawValue), chain)
            nftnl_rule_nlmsg_build_payload(header, rule)
            return Int(header.pointee.nlmsg_len)
        }
        let sent = request.withUnsafeBytes { mnl_socket_sendto(socket, $0.baseAddress, length) }
        guard sent == length else { throw NFTablesError(operation: operation, errno: sent < 0 ? errno : EMSGSIZE) }
        var rules: [ListedRule] = []
        while true {
            for (header, payload) in try receive(operation: operation) where header.nlmsg_seq == sequenceNumber {
                switch Int32(header.nlmsg_type) {
                case vtictl_nlmsg_done():
                    return rules
                case vtictl_nlmsg_error():
                    let code = payload.count >= 4 ? payload.withUnsafeBytes { $0.loadUnaligned(as: Int32.self) } : -EBADMSG
                    if code == 0 || code == -ENOENT { return rules }
                    throw NFTablesError(operation: operation, errno: -code)
                default:
                    let parsed = (Array(withUnsafeBytes(of: header) { $0 }) + payload).withUnsafeBytes { raw -> ListedRule? in
                        let rule = NFTRule(pointer: nftnl_rule_alloc()!)
                        defer { rule.free() }
                        guard nftnl_rule_nlmsg_parse(raw.baseAddress!.assumingMemoryBound(to: nlmsghdr.self), rule.pointer) >= 0,
                              rule.string(NFTNL_RULE_TABLE) == table, rule.string(NFTNL_RULE_CHAIN) == chain
                        else { return nil }
                        return rule.listed()
                    }
                    if let parsed { rules.append(parsed) }
                }
            }
        }
    }

    /// One datagram's messages, each as its header and payload.
    private func receive(operation: String) throws(NFTablesError) -> [(nlmsghdr, [UInt8])] {
        var buffer = [UInt8](repeating: 0, count: 1 << 16)
        let count = buffer.withUnsafeMutableBytes { mnl_socket_recvfrom(socket, $0.baseAddress, $0.count) }
        guard count >= 0 else { throw NFTablesError(operation: operation, errno: errno) }
        var messages: [(nlmsghdr, [UInt8])] = []
        var offset = 0
        let headerSize = MemoryLayout<nlmsghdr>.size
        while offset + headerSize <= count {
            let header = buffer.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: offset, as: nlmsghdr.self) }
            let length = Int(header.nlmsg_len)
            guard length >= headerSize, offset + length <= count else { break }
            messages.append((header, Array(buffer[(offset + headerSize)..<(offset + length)])))
            offset += Int(vtictl_nft_align(UInt32(length)))
        }
        return messages
    }
}
