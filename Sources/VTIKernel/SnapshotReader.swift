import Netlink
public import VTIModel

/// Where the executor finds the devices a snapshot read, by name.
public struct DeviceIndexes: Sendable {
    // Four slots, no collection: a plan names one or two devices (the tunnel's, an uplink), and
    // the hook's start-up pays for every collection type it instantiates. A fifth name evicts the
    // oldest, which is then read again if needed.
    private var slots: (Slot?, Slot?, Slot?, Slot?) = (nil, nil, nil, nil)
    private var next = 0

    private struct Slot: Sendable {
        var name: String
        var index: Int32
    }

    public init() {}

    public subscript(name: String) -> Int32? {
        // The loopback device is index 1 in every namespace (the kernel's LOOPBACK_IFINDEX).
        if name == "lo" { return 1 }
        if let slot = slots.0, slot.name == name { return slot.index }
        if let slot = slots.1, slot.name == name { return slot.index }
        if let slot = slots.2, slot.name == name { return slot.index }
        if let slot = slots.3, slot.name == name { return slot.index }
        return nil
    }

    mutating func set(_ name: String, _ index: Int32) {
        forget(name)
        let slot = Slot(name: name, index: index)
        switch next % 4 {
        case 0: slots.0 = slot
        case 1: slots.1 = slot
        case 2: slots.2 = slot
        default: slots.3 = slot
        }
        next += 1
    }

    mutating func forget(_ name: String) {
        if slots.0?.name == name { slots.0 = nil }
        if slots.1?.name == name { slots.1 = nil }
        if slots.2?.name == name { slots.2 = nil }
        if slots.3?.name == name { slots.3 = nil }
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
        // One array of questions and one of answers, found again by the question itself: the
        // hook's start-up pays for each collection type it instantiates, so no more of them.
        var snapshot = KernelSnapshot()
        var indexes = DeviceIndexes()
        var questions: [LookupQuestion] = []
        func ask(_ question: LookupQuestion) {
            if !questions.contains(question) { questions.append(question) }
        }
        func ask(device: InterfaceName) {
            if device.rawValue != "lo" { ask(.linkNamed(device.rawValue)) }
        }
        for action in plan {
            switch action {
            case .ensureVTI(let spec), .deleteVTI(let spec):
                ask(device: spec.name)
            case .ensureXfrmInterface(let spec), .deleteXfrmInterface(let spec):
                ask(device: spec.name)
                // The uplink a missing device would be created on.
                if let underlying = spec.underlying { ask(device: underlying) }
            case .ensureMTU(let device, let policy, _):
                ask(device: device)
                if case .derived = policy, let local = localAddress(of: device, in: plan) { ask(.routeMatch(local.inet)) }
            case .ensureAddress(let device, let prefix):
                ask(device: device)
                ask(.routeMatch(prefix.address.inet))
            case .addRoute(let route):
                ask(device: route.device)
                ask(.routeMatch(probe(inside: route.destination)))
            case .deleteRoute(let route):
                ask(device: route.device)
            case .setSysctl(let setting):
                if let value = setting.currentValue { snapshot.sysctls[setting.withValue(0)] = value }
            case .notice:
                break
            }
        }
        guard !questions.isEmpty else { return (snapshot, indexes) }

        // Round trip 1: devices, and the routing entries of local addresses, addresses and routes.
        let answers = route.lookUp(questions)
        func answer(_ question: LookupQuestion) -> LookupAnswer {
            questions.firstIndex(of: question).map { answers[$0] } ?? .absent
        }
        for (question, answer) in zip(questions, answers) {
            guard case .linkNamed(let name) = question else { continue }
            switch answer {
            case .link(let link):
                indexes.set(name, link.index)
                guard let device = interfaceName(name, in: plan) else { break }
                snapshot.devices[device] = KernelSnapshot.Device(isUp: link.isUp, kind: link.kind, vti: link.vti.map { $0.spec(device) },
                                                                 xfrmInterfaceID: link.xfrmInterface?.interfaceID, mtu: Int(link.mtu))
            case .failed(let error):
                throw ApplyError(error)
            default:
                break
            }
        }

        // Round trip 2: the path MTU, from the device holding each tunnel's local address (unless
        // the first batch read it already).
        func uplinkIndex(_ action: HookAction) -> (local: IPAddress, index: Int32)? {
            guard case .ensureMTU(let device, .derived, _) = action, let local = localAddress(of: device, in: plan),
                  case .route(let entry) = answer(.routeMatch(local.inet)), entry.type == .local, let index = entry.outputInterface else { return nil }
            return (local, index)
        }
        var uplinks: [LookupQuestion] = []
        for action in plan {
            guard let uplink = uplinkIndex(action), link(uplink.index, in: answers) == nil else { continue }
            if !uplinks.contains(.linkIndexed(uplink.index)) { uplinks.append(.linkIndexed(uplink.index)) }
        }
        let uplinkAnswers = uplinks.isEmpty ? [] : route.lookUp(uplinks)
        for action in plan {
            guard let uplink = uplinkIndex(action), let link = link(uplink.index, in: answers) ?? link(uplink.index, in: uplinkAnswers) else { continue }
            snapshot.pathMTUs[uplink.local] = Int(link.mtu)
        }

        for action in plan {
            switch action {
            case .ensureAddress(let device, let prefix):
                if case .route(let entry) = answer(.routeMatch(prefix.address.inet)), entry.type == .local,
                   entry.destination.address == prefix.address.inet, let index = entry.outputInterface, index == indexes[device.rawValue] {
                    snapshot.addresses.insert(DeviceAddress(device: device, prefix: prefix))
                }
            case .addRoute(let planned):
                if case .route(let entry) = answer(.routeMatch(probe(inside: planned.destination))), let index = indexes[planned.device.rawValue],
                   entry.matches(planned, outputInterface: index) {
                    snapshot.insert(planned)
                }
            default:
                break
            }
        }

        // Round trip 3 (XFRM): the SAs whose algorithms size a tunnel's MTU, by SPI, with either
        // end as destination and either key as mark (which SA is which is not said).
        var saQuestions: [LookupQuestion] = []
        for action in plan {
            guard case .ensureMTU(let device, .derived, let inputs) = action, !inputs.shared,
                  let spec = deviceSpec(device, in: plan) ?? snapshot.devices[device]?.vti.map(TunnelDeviceSpec.vti) else { continue }
            for spi in inputs.spis {
                for destination in [spec.local, spec.remote] where !destination.isUnspecified {
                    for mark in spec.saMarks {
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

    /// The link among these answers with this index.
    private func link(_ index: Int32, in answers: [LookupAnswer]) -> Link? {
        for case .link(let link) in answers where link.index == index { return link }
        return nil
    }

    /// The plan's own name for a device (already checked when the plan was made).
    private func interfaceName(_ name: String, in plan: HookPlan) -> InterfaceName? {
        for action in plan {
            switch action {
            case .ensureVTI(let spec), .deleteVTI(let spec): if spec.name.rawValue == name { return spec.name }
            case .ensureXfrmInterface(let spec), .deleteXfrmInterface(let spec):
                if spec.name.rawValue == name { return spec.name }
                if let underlying = spec.underlying, underlying.rawValue == name { return underlying }
            case .ensureMTU(let device, _, _), .ensureAddress(let device, _): if device.rawValue == name { return device }
            case .addRoute(let route), .deleteRoute(let route): if route.device.rawValue == name { return route.device }
            case .setSysctl, .notice: break
            }
        }
        return nil
    }

    /// The device the plan creates or keeps under this name.
    private func deviceSpec(_ device: InterfaceName, in plan: HookPlan) -> TunnelDeviceSpec? {
        for action in plan {
            switch action {
            case .ensureVTI(let spec) where spec.name == device: return .vti(spec)
            case .ensureXfrmInterface(let spec) where spec.name == device: return .xfrmInterface(spec)
            default: continue
            }
        }
        return nil
    }

    /// The tunnel's local address, whose device's MTU is the path MTU; nil for a device that takes
    /// any (a shared device's local address is the gateway's, so it has one).
    private func localAddress(of device: InterfaceName, in plan: HookPlan) -> IPAddress? {
        guard let local = deviceSpec(device, in: plan)?.local, !local.isUnspecified else { return nil }
        return local
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
