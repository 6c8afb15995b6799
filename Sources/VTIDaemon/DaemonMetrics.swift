import Prometheus

/// What an operator scrapes (`vtictl metrics`, Prometheus text format): events by verb and
/// result, apply latency, connected clients.
public final class DaemonMetrics: Sendable {
    public let registry = PrometheusCollectorRegistry()
    let clients: Gauge
    private let latency: DurationHistogram

    init() {
        clients = registry.makeGauge(descriptor: MetricNameDescriptor(
            namespace: "vtid", metricName: "clients", unitName: "connected", helpText: "Road-warrior clients holding a pool address now"))
        latency = registry.makeDurationHistogram(
            descriptor: MetricNameDescriptor(namespace: "vtid", metricName: "apply_duration", unitName: "seconds",
                                             helpText: "Time to plan and apply one hook event"),
            buckets: [.microseconds(100), .microseconds(500), .milliseconds(1), .milliseconds(5), .milliseconds(20), .milliseconds(100), .seconds(1)])
    }

    func recordReconcile(repairs: Int, tunnelsUp: Int) {
        registry.makeCounter(descriptor: MetricNameDescriptor(namespace: "vtid", metricName: "reconciles", unitName: "total",
                                                              helpText: "Reconcile passes")).increment()
        registry.makeCounter(descriptor: MetricNameDescriptor(namespace: "vtid", metricName: "reconcile_repairs", unitName: "total",
                                                              helpText: "Changes reconciles made to bring the kernel back to the desired state"))
            .increment(by: Int64(repairs))
        registry.makeGauge(descriptor: MetricNameDescriptor(namespace: "vtid", metricName: "tunnels", unitName: "up",
                                                            helpText: "IPsec tunnels (distinct SA reqids) in the kernel at the last reconcile"))
            .set(Int64(tunnelsUp))
    }

    func recordEvent(verb: String, result: String, duration: Duration) {
        registry.makeCounter(
            descriptor: MetricNameDescriptor(namespace: "vtid", metricName: "events", unitName: "total", helpText: "Hook events by verb and result"),
            labels: [("verb", verb), ("result", result)]).increment()
        latency.record(duration)
    }

    /// The Prometheus text exposition.
    public func exposition() -> String {
        var buffer: [UInt8] = []
        registry.emit(into: &buffer)
        return String(decoding: buffer, as: UTF8.self)
    }
}
