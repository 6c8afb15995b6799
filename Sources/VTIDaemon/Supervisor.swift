import ControlProtocol
import Foundation
import LocalIPC
import Logging
import Synchronization
import Netlink
import VTIConfiguration
import VTIKernel
import VTIModel

/// vtid's single writer: its configuration and records, and the kernel state around the tunnels.
/// Its parts, one file each: the event path (`EventPath.swift`: hook events and the spool), the
/// reconciler (`Reconciler.swift`), the status view (`StatusView.swift`), the records
/// (`RecordBook.swift`) and the problems it shows (`Problems.swift`).
///
/// An actor whose executor is `queue`, a serial dispatch queue: its state has that one owner, the
/// compiler checks every access, and the threads around it (the control socket's poll loop, the
/// kernel watcher, the services) hand it work with `onQueue`/`onQueueAsync`, which run on the
/// queue isolated to it. Batches of hook events still take one apply-lock hold and one
/// transaction there (`EventPath.swift`). The `Mutex`es are the only state read from elsewhere.
public actor Supervisor {
    public nonisolated let queue: DispatchQueue
    private nonisolated let executor: QueueExecutor
    public nonisolated var unownedExecutor: UnownedSerialExecutor { executor.asUnownedSerialExecutor() }
    public private(set) var configuration: DaemonConfiguration
    /// The configuration as loaded at start, for the parts built around the supervisor (the
    /// control socket's path and group, the watcher's route protocol): what only a restart changes.
    public nonisolated let startConfiguration: DaemonConfiguration
    var ipsec: [String: RouteBasedConn]
    let configurationFile: String
    var reloadError: String?
    let store: StateStore
    var records: RecordBook
    var problems = ProblemBook()
    /// When each route's tunnel was first seen without SAs.
    var missingSince: [RouteIdentity: Int64] = [:]
    var graceWaiting = false
    var lastReconcile: ContinuousClock.Instant?
    /// A reload allowed the next pass to delete every managed device (`vtictl reload --allow-remove`).
    var removingEveryDeviceAllowed = false
    let reconcileScheduled = Mutex(false)
    let lastPassEnded = Mutex<ContinuousClock.Instant?>(nil)
    /// Names of the devices vtid manages, for the kernel watcher's threads.
    let watchedDeviceNames = Mutex<Set<String>>([])
    public nonisolated var watchedDevices: Set<String> { watchedDeviceNames.withLock { $0 } }
    /// Last repair and last error per device or route, for `vtictl status`.
    var objectStatus: [KernelObject: ObjectStatus] = [:]
    var history: [EventRecord] = []
    var nextSequence = 1
    var applied = 0
    var failed = 0
    var notRecorded = 0
    /// Spool files already recorded in the history but not yet removed (their records are not
    /// written yet): read again, they are not counted twice.
    var ingestedSpoolFiles: Set<String> = []
    /// Hook events waiting for the queue, and whether a drain is under way (`EventPath.swift`).
    let pending = Mutex<(queue: [Submission], draining: Bool)>(([], false))
    let lock: ApplyLock
    var kernel: KernelApplier?
    /// The MSS clamp in force per device, and whether vtid's table may hold rules (`MSSClamping.swift`).
    var mssClamps: [String: MSSClamp] = [:]
    var mssClampRulesMayExist = true
    let logger: Logger
    public let metrics: DaemonMetrics
    let started = Int64(Date().timeIntervalSince1970)

    /// Loads everything or throws: vtid refuses to run half-configured. A damaged state store is
    /// not a reason to refuse: vtid starts with a new one and says so (see `StateStore.open`).
    public init(configurationFile: String, requireFile: Bool, logger: Logger) throws {
        self.configurationFile = configurationFile
        self.logger = logger
        executor = QueueExecutor(queue: DispatchQueue(label: "vtid.supervisor"))
        queue = executor.queue
        configuration = try loadDaemonConfiguration(configurationFile, requireFile: requireFile)
        startConfiguration = configuration
        ipsec = try Self.loadConns(configuration)
        try FileManager.default.createDirectory(atPath: configuration.runDirectory, withIntermediateDirectories: true,
                                                attributes: [.posixPermissions: 0o755])
        try FileManager.default.createDirectory(atPath: ControlProtocol.spoolPath(in: configuration.runDirectory),
                                                withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        try FileManager.default.createDirectory(atPath: configuration.stateDirectory, withIntermediateDirectories: true,
                                                attributes: [.posixPermissions: 0o700])
        let opened = try StateStore.open(path: configuration.stateDirectory + "/leases.sqlite")
        store = opened.store
        records = RecordBook(store: opened.store)
        lock = try ApplyLock(path: ControlProtocol.lockPath(in: configuration.runDirectory))
        metrics = DaemonMetrics()
        if let problem = opened.problem { problems.report("store-open", problem, logger: logger) }
        try Self.publishHookSettings(Self.planningSettings(configuration, ipsec), configuration: configuration, from: configurationFile)
    }

    /// Only checks the files (`vtid --check`): nothing is created or opened.
    public static func check(configurationFile: String, requireFile: Bool) throws -> DaemonConfiguration {
        let configuration = try loadDaemonConfiguration(configurationFile, requireFile: requireFile)
        _ = try loadConns(configuration)
        return configuration
    }

    /// Writes the planning settings where vti-updown reads them (run directory, hook.conf), so
    /// that its fallback plans as vtid does.
    private static func publishHookSettings(_ settings: HookSettings, configuration: DaemonConfiguration, from file: String) throws {
        let path = configuration.runDirectory + "/hook.conf"
        let text = "# Written by vtid from \(file); vti-updown plans with these. Do not edit.\n" + settings.rendered
        try Data(text.utf8).write(to: URL(fileURLWithPath: path), options: .atomic)
    }

    /// The route-based conns of ipsec.conf. A missing or unreadable ipsec.conf is an error, never
    /// "no conns": vtid would then delete the devices of every conn it manages.
    static func loadConns(_ configuration: DaemonConfiguration) throws -> [String: RouteBasedConn] {
        guard FileManager.default.isReadableFile(atPath: configuration.ipsecConf) else {
            let why = FileManager.default.fileExists(atPath: configuration.ipsecConf) ? "cannot be read" : "does not exist"
            throw ConfigurationError(file: configuration.ipsecConf, line: nil,
                                     problem: "\(why) (ipsec_conf in vtid's configuration names it); vtid reads its conns from it")
        }
        let conns = try RouteBasedConn.all(in: try loadIPsecConfig(configuration.ipsecConf))
        return Dictionary(conns.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
    }

    // MARK: Configuration

    /// Reloads both files (SIGHUP, `vtictl reload`); on any error keeps the running configuration
    /// and says why. A reload after which vtid would delete every device it manages (their conns
    /// all left ipsec.conf: usually the wrong file, not the operator's wish) is refused unless
    /// `allowRemove`.
    public nonisolated func reload(allowRemove: Bool = false) -> String? {
        onQueue { $0.reloadOnQueue(allowRemove: allowRemove) }
    }

    func reloadOnQueue(allowRemove: Bool) -> String? {
        do {
            let fresh = try loadDaemonConfiguration(configurationFile, requireFile: false)
            guard fresh.runDirectory == configuration.runDirectory, fresh.stateDirectory == configuration.stateDirectory else {
                throw ConfigurationError(file: configurationFile, line: nil, problem: "run_directory and state_directory take effect only at restart")
            }
            // The metrics listener is bound once, at start (it may need a port only root binds).
            guard fresh.metricsListen == configuration.metricsListen else {
                throw ConfigurationError(file: configurationFile, line: fresh.lines["metrics_listen"], problem: "metrics_listen takes effect only at restart")
            }
            let conns = try Self.loadConns(fresh)
            let owned = (try? store.devices().records) ?? []
            let kept = owned.filter { conns[$0.connection] != nil && fresh.manages($0.connection) }
            if !owned.isEmpty && kept.isEmpty && !allowRemove {
                throw ConfigurationError(file: fresh.ipsecConf, line: nil, problem: """
                    with this configuration vtid would delete every device it manages (\(owned.map(\.setup.device.name.rawValue).sorted().joined(separator: ", "))): \
                    none of their conns is a managed route-based conn any more; if that is what you want, run `vtictl reload --allow-remove`
                    """)
            }
            configuration = fresh
            ipsec = conns
            reloadError = nil
            removingEveryDeviceAllowed = allowRemove
            try Self.publishHookSettings(planningSettings, configuration: configuration, from: configurationFile)
            logger.info("reloaded \(configurationFile) and \(fresh.ipsecConf): \(conns.count) route-based conns")
            return nil
        } catch {
            reloadError = "\(error)"
            logger.error("reload failed, keeping the running configuration: \(error)")
            return reloadError
        }
    }

    /// The hook's settings from vtid.yaml, plus the conns whose devices vtid keeps.
    var planningSettings: HookSettings { Self.planningSettings(configuration, ipsec) }

    private static func planningSettings(_ configuration: DaemonConfiguration, _ ipsec: [String: RouteBasedConn]) -> HookSettings {
        var settings = configuration.hook
        settings.keptDevices = Set(ipsec.keys.filter { configuration.manages($0) })
        return settings
    }

    func isSupervised(_ connection: String) -> Bool {
        configuration.manages(connection) && (ipsec[connection] != nil || configuration.hook.existingDevices[connection] != nil)
    }

    /// A problem seen on another thread (the control loop, the kernel watcher): shown like the rest.
    nonisolated func reportProblem(_ cause: String, _ text: String) {
        onQueueAsync { $0.problems.report(cause, text, logger: $0.logger) }
    }

    nonisolated func clearProblem(_ cause: String) {
        onQueueAsync { $0.problems.clear(cause, logger: $0.logger) { _ in "\(cause): working again" } }
    }

    /// Runs `body` on the queue, isolated to the supervisor, and waits for it: for the threads
    /// around it, never from the queue itself (that would wait for itself) or from async code.
    public nonisolated func onQueue<Result: Sendable>(_ body: @Sendable (isolated Supervisor) throws -> Result) rethrows -> Result {
        try queue.sync { try assumeIsolated(body) }
    }

    /// Runs `body` on the queue, isolated to the supervisor, later.
    public nonisolated func onQueueAsync(_ body: @escaping @Sendable (isolated Supervisor) -> Void) {
        queue.async { self.assumeIsolated(body) }
    }

    func kernelApplier() throws -> KernelApplier {
        if let kernel { return kernel }
        let fresh = try KernelApplier()
        kernel = fresh
        return fresh
    }
}

public let vtidVersion = vtictlRelease

/// The supervisor's executor: its serial dispatch queue, so that the threads around it can hand
/// it work with `queue.async` and find themselves isolated to it there (`assumeIsolated`).
final class QueueExecutor: SerialExecutor {
    let queue: DispatchQueue

    init(queue: DispatchQueue) {
        self.queue = queue
    }

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        let executor = asUnownedSerialExecutor()
        queue.async { job.runSynchronously(on: executor) }
    }

    /// What `assumeIsolated` asks when called on the queue outside a task.
    func checkIsolated() {
        dispatchPrecondition(condition: .onQueue(queue))
    }
}

/// What vtid last did to, or failed to do to, one object.
public struct ObjectStatus: Sendable, Hashable {
    public var lastRepair: String?
    public var lastError: String?
}

/// A kernel object vtid reports on, by its identity (not by a name that two kinds could share).
enum KernelObject: Hashable, CustomStringConvertible {
    case device(String)
    case route(RouteIdentity)
    /// Host-wide settings (ip_forward, conf.all).
    case host

    var description: String {
        switch self {
        case .device(let name): name
        case .route(let identity): "route \(identity)"
        case .host: "host"
        }
    }
}

extension KernelOperation {
    /// The kernel object a write is about.
    var object: KernelObject {
        switch self {
        case .createVTI(let spec), .deleteVTI(let spec): .device(spec.name.rawValue)
        case .createXfrmInterface(let spec), .deleteXfrmInterface(let spec): .device(spec.name.rawValue)
        case .bringUp(let device), .setMTU(let device, _, _), .refuse(let device, _): .device(device.rawValue)
        case .addAddress(let address): .device(address.device.rawValue)
        case .writeSysctl(let setting): if case .interface(let device) = setting.scope { .device(device.rawValue) } else { .host }
        case .addRoute(let route), .deleteRoute(let route): .route(RouteIdentity(route))
        case .notice: .host
        }
    }
}
