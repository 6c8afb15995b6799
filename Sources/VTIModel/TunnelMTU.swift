/// The cost of ESP on each packet, from the algorithms of an SA (RFC 4303 padding rules).
public struct ESPSuite: Sendable, Hashable, CustomStringConvertible {
    public var name: String
    public var ivBytes: Int
    public var icvBytes: Int
    /// The cipher's block size; the padded payload is a multiple of max(4, this).
    public var blockBytes: Int

    public init(name: String, ivBytes: Int, icvBytes: Int, blockBytes: Int) {
        self.name = name
        self.ivBytes = ivBytes
        self.icvBytes = icvBytes
        self.blockBytes = blockBytes
    }

    public static let aesGCM16 = ESPSuite(name: "AES-GCM-16", ivBytes: 8, icvBytes: 16, blockBytes: 1)
    public static let aesCBCSHA256 = ESPSuite(name: "AES-CBC+HMAC-SHA2-256-128", ivBytes: 16, icvBytes: 16, blockBytes: 16)
    public static let aesCBCSHA1 = ESPSuite(name: "AES-CBC+HMAC-SHA1-96", ivBytes: 16, icvBytes: 12, blockBytes: 16)
    /// The most expensive common suite (AES-CBC with a 256-bit SHA2-512 ICV): used when the SA is
    /// not known, e.g. for a device that clients with different proposals share.
    public static let conservative = ESPSuite(name: "AES-CBC+HMAC-SHA2-512-256", ivBytes: 16, icvBytes: 32, blockBytes: 16)

    /// The suite of a kernel SA, from its algorithm names (`rfc4106(gcm(aes))`, `cbc(aes)`,
    /// `hmac(sha256)`) and lengths in bits; nil for an algorithm this table does not know.
    public init?(aead: String?, aeadICVBits: UInt32, encryption: String?, authenticationTruncationBits: UInt32?) {
        if let aead {
            let icv = Int(aeadICVBits) / 8
            switch aead {
            case "rfc4106(gcm(aes))": self.init(name: "AES-GCM-\(icv)", ivBytes: 8, icvBytes: icv, blockBytes: 1)
            case "rfc4309(ccm(aes))": self.init(name: "AES-CCM-\(icv)", ivBytes: 8, icvBytes: icv, blockBytes: 1)
            case "rfc7539esp(chacha20,poly1305)": self.init(name: "CHACHA20-POLY1305", ivBytes: 8, icvBytes: icv, blockBytes: 1)
            default: return nil
            }
            return
        }
        guard let encryption, let bits = authenticationTruncationBits else { return nil }
        let icv = Int(bits) / 8
        switch encryption {
        case "cbc(aes)": self.init(name: "AES-CBC", ivBytes: 16, icvBytes: icv, blockBytes: 16)
        case "rfc3686(ctr(aes))": self.init(name: "AES-CTR", ivBytes: 8, icvBytes: icv, blockBytes: 1)
        case "cbc(des3_ede)": self.init(name: "3DES-CBC", ivBytes: 8, icvBytes: icv, blockBytes: 8)
        case "ecb(cipher_null)": self.init(name: "NULL", ivBytes: 0, icvBytes: icv, blockBytes: 1)
        default: return nil
        }
    }

    public var description: String { name }
}

/// Largest inner packet that fits a path MTU once ESP (tunnel mode) wraps it, so that nothing is
/// fragmented after encryption (RFC 4303 section 2.4 padding):
/// floor to a multiple of B (pathMTU - outer IP header - NAT-T 8 - ESP header 8 - IV - ICV) - 2,
/// with B = max(4, block size); the 2 is ESP's pad-length and next-header bytes.
/// The result is not clamped: below 68 (IPv4) or 1280 (IPv6) the kernel refuses it, and the
/// caller says so.
public func tunnelMTU(pathMTU: Int, outerFamily: AddressFamily, natTraversal: Bool, suite: ESPSuite) -> Int {
    let outerHeader = outerFamily == .ipv4 ? 20 : 40
    let available = pathMTU - outerHeader - (natTraversal ? 8 : 0) - 8 - suite.ivBytes - suite.icvBytes
    let block = max(4, suite.blockBytes)
    return (available / block) * block - 2
}

/// TCP MSS for a tunnel MTU: what MSS clamping should set for traffic through the tunnel.
public func tcpMSS(tunnelMTU: Int, innerFamily: AddressFamily) -> Int {
    tunnelMTU - (innerFamily == .ipv4 ? 40 : 60)
}

/// How a VTI device's MTU is chosen. Never left to the kernel's default, which differs by kernel.
public enum TunnelMTUPolicy: Sendable, Hashable, CustomStringConvertible {
    /// An operator's number.
    case fixed(Int)
    /// From the underlying device's MTU and the SA's algorithms and encapsulation, which only the
    /// applier can read; `fallbackSuite` (with NAT-T assumed) when the SA cannot be read, and always
    /// for a shared device, whose clients may have negotiated different suites.
    case derived(fallbackSuite: ESPSuite)

    public var description: String {
        switch self {
        case .fixed(let mtu): "fixed \(mtu)"
        case .derived(let fallback): "derived (fallback \(fallback))"
        }
    }
}
