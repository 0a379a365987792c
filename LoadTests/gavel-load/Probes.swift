import Foundation
import GavelCore
import GavelPing

/// The mock fleet's counters (`GET /stats` of `gavel-buyers`), summed over its buyers.
struct FleetCounters: Codable, Sendable, Equatable {
    var pings = 0
    var bids = 0
    var noBids = 0
    var posts = 0
    var accepted = 0
    var rejected = 0
    var faults = 0
    var piiViolations = 0

    private enum CodingKeys: String, CodingKey {
        case pings, bids, posts, accepted, rejected, faults
        case noBids = "no_bids"
        case piiViolations = "pii_violations"
    }

    /// What happened between two readings.
    static func - (later: FleetCounters, earlier: FleetCounters) -> FleetCounters {
        FleetCounters(pings: later.pings - earlier.pings, bids: later.bids - earlier.bids, noBids: later.noBids - earlier.noBids,
                      posts: later.posts - earlier.posts, accepted: later.accepted - earlier.accepted,
                      rejected: later.rejected - earlier.rejected, faults: later.faults - earlier.faults,
                      piiViolations: later.piiViolations - earlier.piiViolations)
    }

    static func + (lhs: FleetCounters, rhs: FleetCounters) -> FleetCounters {
        FleetCounters(pings: lhs.pings + rhs.pings, bids: lhs.bids + rhs.bids, noBids: lhs.noBids + rhs.noBids,
                      posts: lhs.posts + rhs.posts, accepted: lhs.accepted + rhs.accepted, rejected: lhs.rejected + rhs.rejected,
                      faults: lhs.faults + rhs.faults, piiViolations: lhs.piiViolations + rhs.piiViolations)
    }
}

/// Reads the outside world between steps: the fleet's counters, the exchange's metrics, a process's RSS.
struct Probes: Sendable {
    var engine: CurlMultiEngine
    /// `gavel-buyers` base URL, when known.
    var fleetURL: String?
    /// The exchange's base URL, when the target is the exchange.
    var exchangeURL: String?
    /// The exchange's pid, for `VmRSS` and CPU time.
    var watchPID: Int32?
    /// The fleet's pid, for CPU time.
    var fleetPID: Int32?

    /// Fleet-wide counters, or nil when there is no fleet URL or it did not answer.
    func fleet() async -> FleetCounters? {
        guard let fleetURL else { return nil }
        guard case .success(let response) = await engine.send(HTTPRequest(url: fleetURL + "/stats", method: .get, timeoutMs: 5000)),
              response.status == 200,
              let byBuyer = try? JSONDecoder().decode([String: FleetCounters].self, from: Data(response.body))
        else { return nil }
        return byBuyer.values.reduce(FleetCounters(), +)
    }

    /// The sum of `gavel_rounds_total` (every kind and status), or nil when unavailable.
    func exchangeRounds() async -> Int? {
        guard let exchangeURL else { return nil }
        guard case .success(let response) = await engine.send(HTTPRequest(url: exchangeURL + "/metrics", method: .get, timeoutMs: 5000)),
              response.status == 200
        else { return nil }
        return Self.sum(metric: "gavel_rounds_total", inPrometheusText: String(decoding: response.body, as: UTF8.self))
    }

    /// Adds up every sample of `metric` (all label sets) in Prometheus text format.
    static func sum(metric: String, inPrometheusText text: String) -> Int {
        var total = 0.0
        for line in text.split(separator: "\n") where line.hasPrefix(metric) {
            let rest = line.dropFirst(metric.count)
            guard rest.first == "{" || rest.first == " " else { continue }
            if let value = line.split(separator: " ").last.flatMap({ Double($0) }) { total += value }
        }
        return Int(total)
    }

    /// The watched process's resident set, in KiB (`VmRSS` of `/proc/<pid>/status`).
    func rssKiB() -> Int? {
        watchPID.flatMap(Self.rssKiB(pid:))
    }

    static func rssKiB(pid: Int32) -> Int? {
        guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return nil }
        for line in status.split(separator: "\n") where line.hasPrefix("VmRSS:") {
            return line.split(separator: " ").dropFirst().first.flatMap { Int($0) }
        }
        return nil
    }
}

/// CPU seconds (user + system) used so far by the processes that share the machine.
struct CPUReading: Sendable {
    var exchange: Double?
    var fleet: Double?
    var generator: Double?
    var atNs: UInt64

    static func take(exchange: Int32?, fleet: Int32?) -> CPUReading {
        CPUReading(exchange: exchange.flatMap(cpuSeconds(pid:)), fleet: fleet.flatMap(cpuSeconds(pid:)),
                   generator: cpuSeconds(pid: getpid()), atNs: Monotonic.now())
    }

    /// Each process's CPU use between `earlier` and this reading, in percent of one core.
    func share(since earlier: CPUReading) -> CPUShare {
        let seconds = Double(atNs - earlier.atNs) / 1e9
        func percent(_ now: Double?, _ then: Double?) -> Double? {
            guard let now, let then, seconds > 0 else { return nil }
            return ((now - then) / seconds * 1000).rounded() / 10
        }
        return CPUShare(exchange: percent(exchange, earlier.exchange), fleet: percent(fleet, earlier.fleet),
                        generator: percent(generator, earlier.generator))
    }

    /// `utime + stime` of `/proc/<pid>/stat`, in seconds.
    static func cpuSeconds(pid: Int32) -> Double? {
        (try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8)).flatMap(cpuSeconds(stat:))
    }

    /// `utime + stime` of a `stat` file's text (a process's or a thread's), in seconds.
    static func cpuSeconds(stat: String) -> Double? {
        guard let close = stat.lastIndex(of: ")") else { return nil }
        // Fields after the command name start at field 3 (state); utime and stime are fields 14 and 15.
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        guard fields.count > 12, let user = Double(fields[11]), let system = Double(fields[12]) else { return nil }
        return (user + system) / Double(sysconf(Int32(_SC_CLK_TCK)))
    }
}

/// CPU time and context switches of a process's threads, grouped by what the threads do (their
/// names), from `/proc/<pid>/task`: where an auction's CPU goes, and how often its work changes thread.
struct ThreadReading: Sendable {
    struct Group: Sendable {
        var cpuSeconds = 0.0
        /// The thread gave up the CPU to wait (a futex, epoll, a lock): a hand-off or idle.
        var voluntarySwitches = 0
        /// The kernel took the CPU away: more runnable threads than cores.
        var involuntarySwitches = 0
    }

    var groups: [String: Group]

    static func take(pid: Int32) -> ThreadReading {
        var groups: [String: Group] = [:]
        let taskDir = "/proc/\(pid)/task"
        for tid in (try? FileManager.default.contentsOfDirectory(atPath: taskDir)) ?? [] {
            guard let comm = try? String(contentsOfFile: "\(taskDir)/\(tid)/comm", encoding: .utf8),
                  let status = try? String(contentsOfFile: "\(taskDir)/\(tid)/status", encoding: .utf8),
                  let stat = try? String(contentsOfFile: "\(taskDir)/\(tid)/stat", encoding: .utf8) else { continue }
            let role = role(ofThreadNamed: comm.trimmingCharacters(in: .whitespacesAndNewlines))
            var group = groups[role, default: Group()]
            group.cpuSeconds += CPUReading.cpuSeconds(stat: stat) ?? 0
            for line in status.split(separator: "\n") {
                if line.hasPrefix("voluntary_ctxt_switches:") {
                    group.voluntarySwitches += line.split(separator: "\t").last.flatMap { Int($0.trimmingCharacters(in: .whitespaces)) } ?? 0
                } else if line.hasPrefix("nonvoluntary_ctxt_switches:") {
                    group.involuntarySwitches += line.split(separator: "\t").last.flatMap { Int($0.trimmingCharacters(in: .whitespaces)) } ?? 0
                }
            }
            groups[role] = group
        }
        return ThreadReading(groups: groups)
    }

    /// The exchange's threads by what they run (Linux keeps 15 characters of a thread's name).
    static func role(ofThreadNamed name: String) -> String {
        if name == "gavel-curl" { return "curl engine" }
        if name.hasPrefix("NIO-") { return "HTTP event loops" }
        if name.hasSuffix("overcommit") { return "dispatch queues" }
        if name.hasSuffix("default-qos") { return "Swift task pool" }
        return "other"
    }

    /// Per auction between `earlier` and this reading, heaviest first.
    func perAuction(since earlier: ThreadReading, auctions: Int) -> [ThreadShare] {
        guard auctions > 0 else { return [] }
        let count = Double(auctions)
        return groups.map { name, now in
            let then = earlier.groups[name] ?? Group()
            return ThreadShare(
                threads: name, cpuMicros: ((now.cpuSeconds - then.cpuSeconds) * 1e6 / count).rounded(),
                voluntarySwitches: (Double(now.voluntarySwitches - then.voluntarySwitches) / count * 100).rounded() / 100,
                involuntarySwitches: (Double(now.involuntarySwitches - then.involuntarySwitches) / count * 100).rounded() / 100)
        }
        .filter { $0.cpuMicros > 0 || $0.voluntarySwitches > 0 }
        .sorted { $0.cpuMicros > $1.cpuMicros }
    }
}

/// One group of the exchange's threads over a step, per auction answered.
struct ThreadShare: Codable, Sendable {
    var threads: String
    var cpuMicros: Double
    var voluntarySwitches: Double
    var involuntarySwitches: Double
}

/// CPU use over a step, in percent of one core (the machine has `MachineInfo.cores` of them).
struct CPUShare: Codable, Sendable {
    var exchange: Double?
    var fleet: Double?
    var generator: Double?
}

/// The machine a result was measured on.
struct MachineInfo: Codable, Sendable {
    var cores: Int
    var cpuModel: String
    var memoryGiB: Double
    var kernel: String
    /// The 1-minute load average when the run started: other work on the machine skews every figure.
    var loadAverage: Double?

    static func current() -> MachineInfo {
        let cpuinfo = (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)) ?? ""
        let model = cpuinfo.split(separator: "\n").first { $0.hasPrefix("model name") }
            .flatMap { $0.split(separator: ":", maxSplits: 1).last }
            .map { $0.trimmingCharacters(in: .whitespaces) } ?? "unknown"
        let kernel = ((try? String(contentsOfFile: "/proc/sys/kernel/osrelease", encoding: .utf8)) ?? "unknown")
            .trimmingCharacters(in: .whitespacesAndNewlines)
        return MachineInfo(cores: ProcessInfo.processInfo.activeProcessorCount, cpuModel: model,
                           memoryGiB: (Double(ProcessInfo.processInfo.physicalMemory) / 1_073_741_824 * 10).rounded() / 10,
                           kernel: kernel, loadAverage: loadAverage())
    }

    /// The first field of `/proc/loadavg`.
    static func loadAverage() -> Double? {
        (try? String(contentsOfFile: "/proc/loadavg", encoding: .utf8))?.split(separator: " ").first.flatMap { Double($0) }
    }
}
