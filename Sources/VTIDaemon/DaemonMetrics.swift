import Prometheus

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

    /// The Prometheus text exposition.
    public func exposition() -> String {
        var buffer: [UInt8] = []
        registry.emit(into: &buffer)
        return String(decoding: buffer, as: UTF8.self)
    }
}
