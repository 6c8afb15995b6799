/// `vtictl check --peer-ipsec-conf`: two gateways that hand out addresses from overlapping pools
/// give one address to two clients, and with BGP both announce its route; neither gateway's own
/// file shows it. Pure: the caller reads the files.

/// One conn's address pool as written.
public struct ConnAddressPool: Sendable, Hashable {
    public var connection: String
    /// The `rightaddresspool=` (or `leftaddresspool=`) line.
    public var location: ConfigLocation
    public var ranges: [ClosedRange<IPAddress>]

    public init(connection: String, location: ConfigLocation, ranges: [ClosedRange<IPAddress>]) {
        self.connection = connection
        self.location = location
        self.ranges = ranges
    }
}

extension IPsecConfig {
    /// Every conn's pools, route-based or not, as pluto sees them (`%default` and `also=` merged):
    /// each pool line once, however many conns take it through `also=`; a line that cannot be
    /// read is an error.
    public func addressPools() -> (pools: [ConnAddressPool], errors: [IPsecConfigError]) {
        var pools: [ConnAddressPool] = []
        var errors: [IPsecConfigError] = []
        var seen: Set<ConfigLocation> = []
        for section in conns where section.name != "%default" {
            do {
                guard let resolved = try resolved(section.name) else { continue }
                for key in ["rightaddresspool", "leftaddresspool"] {
                    guard let setting = resolved.settings[key], seen.insert(setting.location).inserted else { continue }
                    pools.append(ConnAddressPool(connection: section.name, location: setting.location,
                                                 ranges: try parseAddressPools(setting, key: key)))
                }
            } catch {
                if !errors.contains(error) { errors.append(error) }
            }
        }
        return (pools, errors)
    }
}

/// The pools of this gateway (`local`) that overlap another gateway's (`peer`), one error each,
/// at this gateway's line and naming the other's.
public func checkPoolsAcrossGateways(_ local: [ConnAddressPool], peer: [ConnAddressPool]) -> [ConfigFinding] {
    var findings: [ConfigFinding] = []
    for pool in local {
        for range in pool.ranges {
            for other in peer {
                for otherRange in other.ranges where range.lowerBound.family == otherRange.lowerBound.family && range.overlaps(otherRange) {
                    findings.append(ConfigFinding(severity: .error, location: pool.location, message: """
                        conn \(pool.connection)'s address pool \(range.lowerBound)-\(range.upperBound) overlaps conn \(other.connection)'s \
                        \(otherRange.lowerBound)-\(otherRange.upperBound) on the other gateway (\(other.location)): both would lease the same \
                        addresses, and both announce their routes; give each gateway its own pool
                        """))
                }
            }
        }
    }
    return findings
}
