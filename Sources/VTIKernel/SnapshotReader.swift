import Netlink
public import VTIModel

/// Where the executor finds the devices a snapshot read, by name.
public struct DeviceIndexes: Sendable {
    // A plan names one or two devices: a linear search beats hashing here (the hook's start-up
    // pays for every generic type it instantiates).
    var entries: [(name: String, index: Int32)] = []

    public init() {}

    public subscript(name: String) -> Int32? {
        // The loopback device is index 1 in every namespace (the kernel's LOOPBACK_IFINDEX).
        if name == "lo" { return 1 }
        return entries.first { $0.name == name }?.index
    }

    mutating func set(_ name: String, _ index: Int32) {
        entries.removeAll { $0.name == name }
        entries.append((name, index))
    }

    mutating func forget(_ name: String) {
        entries.removeAll { $0.name == name }
    }
}

extension KernelApplier {
    /// Reads what the kernel holds of the objects `plan` names, in few round trips: one batch of
    /// lookups (its devices by name; the routing entries of its routes, of its addresses and of its
    /// tunnels' local addresses), then the devices behind those local addresses (their MTU is the
    /// path MTU) unless the batch read them, then the tunnel's SAs if its MTU follows them. Sysctls
    /// are read from /proc. A route or address the lookups do not show exactly as planned is not
    /// known: `converge` then writes it (idempotently) rather than assume.
    public func snapshot(for plan: HookPlan) throws(ApplyError) -> (KernelSnapshot, DeviceIndexes) {
        var snapshot = KernelSnapshot()
        var indexes = DeviceIndexes()
        var specs: [VTIDeviceSpec] = []
        var devices: [String] = []
        var locals: [InetAddress] = []
        var addresses: [DeviceAddress] = []
        var routes: [PlannedRoute] = []
        var suitesWanted: [(spec: VTIDeviceSpec?, device: InterfaceName, spis: [UInt32])] = []
        func name(_ device: InterfaceName) {
            if device.rawValue != "lo" && !devices.contains(device.rawValue) { devices.append(device.rawValue) }
        }
        for action in plan {
            switch action {
            case .ensureVTI(let spec), .deleteVTI(let spec):
                name(spec.name)
                specs.append(spec)
            case .ensureMTU(let device, let policy, let inputs):
                name(device)
                guard case .derived = policy else { continue }
                let spec = specs.first { $0.name == device }
                if let local = spec?.local, !local.isUnspecified, !locals.contains(local.inet) { locals.append(local.inet) }
                if !inputs.shared && !inputs.spis.isEmpty { suitesWanted.append((spec, device, inputs.spis)) }
            case .ensureAddress(let device, let prefix):
                name(device)
                addresses.append(DeviceAddress(device: device, prefix: prefix))
            case .addRoute(let route):
                name(route.device)
                routes.append(route)
            case .deleteRoute(let route):
                name(route.device)
            case .setSysctl(let setting):
                if let value = setting.currentValue { snapshot.sysctls[setting.withValue(0)] = value }
            case .notice:
                break
            }
        }

        // Round trip 1: devices, and the routing entries of local addresses, addresses and routes.
        var questions = devices.map { LookupQuestion.linkNamed($0) }
        questions += locals.map { .routeMatch($0) }
        questions += addresses.map { .routeMatch($0.prefix.address.inet) }
        questions += routes.map { .routeMatch(probe(inside: $0.destination)) }
        guard !questions.isEmpty else { return (snapshot, indexes) }
        let answers = route.lookUp(questions)
        var position = 0
        var links: [Link] = []
        for name in devices {
            switch answers[position] {
            case .link(let link):
                links.append(link)
                indexes.set(name, link.index)
                guard let device = InterfaceName(name) else { break }
                snapshot.devices[device] = KernelSnapshot.Device(isUp: link.isUp, kind: link.kind, vti: link.vti.map { $0.spec(device) }, mtu: Int(link.mtu))
            case .failed(let error):
                throw ApplyError(error)
            default:
                break
            }
            position += 1
        }
        var uplinks: [(local: InetAddress, index: Int32)] = []
        for local in locals {
            if case .route(let entry) = answers[position], entry.type == .local, let index = entry.outputInterface { uplinks.append((local, index)) }
            position += 1
        }
        for address in addresses {
            if case .route(let entry) = answers[position], entry.type == .local, entry.destination.address == address.prefix.address.inet,
               let index = entry.outputInterface, index == indexes[address.device.rawValue] {
                snapshot.addresses.insert(address)
            }
            position += 1
        }
        for planned in routes {
            if case .route(let entry) = answers[position], let index = indexes[planned.device.rawValue], entry.matches(planned, outputInterface: index) {
                snapshot.routes.insert(planned)
            }
            position += 1
        }

        // Round trip 2: the path MTU, from the device holding each tunnel's local address.
        var unread: [Int32] = []
        for uplink in uplinks where !links.contains(where: { $0.index == uplink.index }) && !unread.contains(uplink.index) { unread.append(uplink.index) }
        if !unread.isEmpty {
            for answer in route.lookUp(unread.map { .linkIndexed($0) }) {
                if case .link(let link) = answer { links.append(link) }
            }
        }
        for uplink in uplinks {
            if let link = links.first(where: { $0.index == uplink.index }) { snapshot.pathMTUs[uplink.local.model] = Int(link.mtu) }
        }

        // Round trip 3 (XFRM): the SAs whose algorithms size a tunnel's MTU, by SPI, with either
        // end as destination and either key as mark (which SA is which is not said).
        var saQuestions: [LookupQuestion] = []
        for wanted in suitesWanted {
            guard let spec = wanted.spec ?? snapshot.devices[wanted.device]?.vti else { continue }
            for spi in wanted.spis {
                for destination in [spec.local, spec.remote] where !destination.isUnspecified {
                    for mark in [spec.inputKey, spec.outputKey] {
                        let question = LookupQuestion.securityAssociation(destination: destination.inet, spi: spi, mark: mark)
                        if !saQuestions.contains(question) { saQuestions.append(question) }
                    }
                }
            }
        }
        if !saQuestions.isEmpty {
            let xfrm = try xfrm()
            for answer in xfrm.lookUp(saQuestions) {
                guard case .securityAssociation(let sa) = answer, snapshot.suites[sa.spi] == nil else { continue }
                snapshot.suites[sa.spi] = sa.tunnelSuite
            }
        }
        return (snapshot, indexes)
    }
}

/// An address inside `prefix` whose lookup finds the prefix's own entry unless something more
/// specific covers it: the network address, but never 0.0.0.0 or :: (a lookup of those is answered
/// with the loopback route), for which the first address of the prefix's upper half is asked.
func probe(inside prefix: IPPrefix) -> InetAddress {
    guard prefix.address.isUnspecified, prefix.length < prefix.address.bytes.count * 8 else { return prefix.address.inet }
    var bytes = prefix.address.bytes
    bytes[prefix.length / 8] |= UInt8(0x80) >> UInt8(prefix.length % 8)
    return (IPAddress(bytes: bytes) ?? prefix.address).inet
}

extension Route {
    /// Whether this routing entry is the planned route exactly (the kernel's lookup answered it).
    func matches(_ planned: PlannedRoute, outputInterface index: Int32) -> Bool {
        type == .unicast && destination == planned.destination.inet && table.rawValue == planned.table
            && `protocol`.rawValue == planned.routeProtocol.rawValue && outputInterface == index
            && gateway == planned.gateway?.inet && preferredSource == planned.preferredSource?.inet
            && (metric ?? defaultMetric) == (planned.metric ?? defaultMetric)
    }

    /// The metric the kernel gives a route added without one: 0 for IPv4, 1024 for IPv6.
    var defaultMetric: UInt32 { family == .ipv6 ? 1024 : 0 }
}

extension VTIParameters {
    /// The model's description of this device's tunnel.
    func spec(_ name: InterfaceName) -> VTIDeviceSpec {
        VTIDeviceSpec(name: name, local: local.model, remote: remote.model, inputKey: inputKey, outputKey: outputKey)
    }
}
