import Foundation
import Logging

/// What is wrong with vtid itself now (it cannot write its records, its spool overflowed, its
/// store was damaged), one entry per cause. Each cause is logged once when it starts and once
/// when it clears, however often it happens in between: a full disk under a thousand events is
/// one line, not a thousand. While any is open vtid is *degraded*: it keeps applying events and
/// serving, and says so in `vtictl status`, in the metrics and in each affected event's result.
struct ProblemBook {
    struct Problem {
        var text: String
        var since: Date
        var count: Int
        /// Whether it makes vtid degraded (its own records or inputs are at fault), or is a finding
        /// about the kernel that vtid shows and leaves alone.
        var degrading: Bool
    }

    /// Open problems by cause (a short stable key such as "store" or "spool").
    private(set) var open: [String: Problem] = [:]

    /// Notes that `cause` happened (again); logs only the first time.
    mutating func report(_ cause: String, _ text: String, degrading: Bool = true, logger: Logger) {
        if var problem = open[cause] {
            problem.count += 1
            problem.text = text
            open[cause] = problem
        } else {
            open[cause] = Problem(text: text, since: Date(), count: 1, degrading: degrading)
            if degrading { logger.error("\(text)") } else { logger.warning("\(text)") }
        }
    }

    /// `cause` is over; logs it if it was open.
    mutating func clear(_ cause: String, logger: Logger, _ summary: (Problem) -> String) {
        guard let problem = open.removeValue(forKey: cause) else { return }
        logger.notice("\(summary(problem))")
    }

    var isDegraded: Bool { open.values.contains(where: \.degrading) }

    /// One line each, for `vtictl status`.
    var lines: [String] {
        open.sorted { $0.key < $1.key }.map { _, problem in
            let since = clockTime(problem.since)
            return problem.count > 1 ? "\(problem.text) (since \(since), \(problem.count) times)" : "\(problem.text) (at \(since))"
        }
    }
}

func clockTime(_ date: Date = Date()) -> String {
    let formatter = DateFormatter()
    formatter.dateFormat = "yyyy-MM-dd HH:mm:ss"
    return formatter.string(from: date)
}
