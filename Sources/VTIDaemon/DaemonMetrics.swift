import Prometheus
import Synchronization

/// What an operator scrapes (`vtictl metrics`, Prometheus text format): events by verb and
/// result, apply latency, record failures; and gauges computed when they are read (connected
/// clients, tunnels up, degraded), never left over from an earlier moment.
public final class DaemonMetrics: Sendable {
    public let registry = PrometheusCollectorRegistry()
    private let latency: DurationHistogram
    private let clients: Gauge
    private let tunnels: Gauge
    private let degraded: Gauge
    private let unwritten: Gauge
    private let recordFailures: Counter
    private let reconciles: Counter
    private let repairs: Counter
    /// The per-tunnel gauges of the conns seen at the last refresh, by conn: a conn that left
    /// ipsec.conf loses its series (unregistered), rather than keeping its last values.
    private let tunnelGauges = Mutex<[String: [Gauge]]>([:])

    init() {
        clients = registry.makeGauge(descriptor: MetricNameDescriptor(
            namespace: "vtid", metricName: "clients", unitName: "connected", helpText: "Road-warrior clients holding a pool address now"))
        tunnels = registry.makeGauge(descriptor: MetricNameDescriptor(
            namespace: "vtid", metricName: "tunnels", unitName: "up", helpText: "IPsec tunnels (distinct SA reqids) in the kernel now"))
        degraded = registry.makeGauge(descriptor: MetricNameDescriptor(
            namespace: "vtid", metricName: "degraded", unitName: "", helpText: "1 while vtid has a problem of its own (vtictl status lists it)"))
        unwritten = registry.makeGauge(descriptor: MetricNameDescriptor(
            namespace: "vtid", metricName: "records", unitName: "unwritten", helpText: "Record changes kept in memory because the store refused them"))
        recordFailures = registry.makeCounter(descriptor: MetricNameDescriptor(
            namespace: "vtid", metricName: "record_failures", unitName: "total", helpText: "Writes of vtid's records that failed"))
        reconciles = registry.makeCounter(descriptor: MetricNameDescriptor(
            namespace: "vtid", metricName: "reconciles", unitName: "total", helpText: "Reconcile passes"))
        repairs = registry.makeCounter(descriptor: MetricNameDescriptor(
            namespace: "vtid", metricName: "reconcile_repairs", unitName: "total",
            helpText: "Changes reconciles made to bring the kernel back to the desired state"))
        latency = registry.makeDurationHistogram(
            descriptor: MetricNameDescriptor(namespace: "vtid", metricName: "apply_duration", unitName: "seconds",
                                             helpText: "Time to plan and apply one hook event"),
            buckets: [.microseconds(100), .microseconds(500), .milliseconds(1), .milliseconds(5), .milliseconds(20), .milliseconds(100), .seconds(1)])
    }

    func recordReconcile(repairs count: Int) {
        reconciles.increment()
        repairs.increment(by: Int64(count))
    }

    func recordFailure() { recordFailures.increment() }

    func recordEvent(verb: String, result: String, duration: Duration) {
        registry.makeCounter(
            descriptor: MetricNameDescriptor(namespace: "vtid", metricName: "events", unitName: "total", helpText: "Hook events by verb and result"),
            labels: [("verb", verb), ("result", result)]).increment()
        latency.record(duration)
    }

    /// Sets the gauges to what holds now; a value that cannot be read is -1 (not a stale number).
    func refresh(clientsConnected: Int?, tunnelsUp: Int?, degraded isDegraded: Bool, unwrittenChanges: Int) {
        clients.set(Int64(clientsConnected ?? -1))
        tunnels.set(Int64(tunnelsUp ?? -1))
        degraded.set(Int64(isDegraded ? 1 : 0))
        unwritten.set(Int64(unwrittenChanges))
    }

    /// What one conn's tunnels carry now, for the `ipsec_*` families (named as ipsec_exporter
    /// names them, labelled `tunnel` with the conn's name, so that dashboards built for it work).
    struct TunnelSample: Sendable {
        var connection: String
        var up: Bool
        var associations: Int
        var inBytes: UInt64
        var outBytes: UInt64
        var inPackets: UInt64
        var outPackets: UInt64
        var clientsConnected: Int
    }

    /// Sets the per-tunnel gauges to `samples` (nil: the kernel's SAs could not be read, so no
    /// tunnel series is shown rather than old ones).
    func refreshTunnels(_ samples: [TunnelSample]?) {
        func gauge(_ namespace: String, _ name: String, _ unit: String, _ help: String, _ connection: String) -> Gauge {
            registry.makeGauge(descriptor: MetricNameDescriptor(namespace: namespace, metricName: name, unitName: unit, helpText: help),
                               labels: [("tunnel", connection)])
        }
        let clamp = { (value: UInt64) in Int64(clamping: value) }
        var fresh: [String: [Gauge]] = [:]
        for sample in samples ?? [] {
            let values: [(Gauge, Int64)] = [
                // As ipsec_exporter: up is a successful read (the SAs could be read), status 0 a
                // tunnel with SAs installed, 2 one without.
                (gauge("ipsec", "up", "", "1: vtid read the conn's state from the kernel", sample.connection), 1),
                (gauge("ipsec", "status", "", "0: the conn has IPsec SAs installed; 2: it has none (down)", sample.connection), sample.up ? 0 : 2),
                (gauge("ipsec", "in", "bytes", "Bytes received through the conn's IPsec SAs now in the kernel (a rekey starts new counters)", sample.connection), clamp(sample.inBytes)),
                (gauge("ipsec", "out", "bytes", "Bytes sent through the conn's IPsec SAs now in the kernel (a rekey starts new counters)", sample.connection), clamp(sample.outBytes)),
                (gauge("ipsec", "in", "packets", "Packets received through the conn's IPsec SAs now in the kernel", sample.connection), clamp(sample.inPackets)),
                (gauge("ipsec", "out", "packets", "Packets sent through the conn's IPsec SAs now in the kernel", sample.connection), clamp(sample.outPackets)),
                (gauge("vtid", "tunnel_security_associations", "", "The conn's IPsec SAs in the kernel now", sample.connection), Int64(sample.associations)),
                (gauge("vtid", "tunnel_clients", "connected", "Road-warrior clients of the conn holding a pool address now", sample.connection), Int64(sample.clientsConnected)),
            ]
            for (gauge, value) in values { gauge.set(value) }
            fresh[sample.connection] = values.map(\.0)
        }
        let gone = tunnelGauges.withLock { known in
            defer { known = fresh }
            return known.filter { fresh[$0.key] == nil }.flatMap(\.value)
        }
        for gauge in gone { registry.unregisterGauge(gauge) }
    }

    /// The Prometheus text exposition.
    public func exposition() -> String {
        var buffer: [UInt8] = []
        registry.emit(into: &buffer)
        return String(decoding: buffer, as: UTF8.self)
    }
}
