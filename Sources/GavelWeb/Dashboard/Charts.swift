/// Chart geometry, computed here and drawn as SVG by the templates (`chart-*.mustache`): no
/// script, nothing from the internet.
enum Charts {
    struct Bar {
        let x: Int
        let y: Int
        let width: Int
        let height: Int
        /// The part of the bar that sold, drawn over it.
        let soldY: Int
        let soldHeight: Int
        let title: String
    }

    struct Tick {
        let x: Int
        let label: String
    }

    /// Vertical bars of rounds (and the part sold) per minute.
    struct Columns {
        let width: Int
        let height: Int
        let baseline: Int
        let bars: [Bar]
        let ticks: [Tick]
        let maxLabel: String
        let empty: Bool
    }

    struct Row {
        let label: String
        let count: String
        let y: Int
        let textY: Int
        let width: Int
        let valueX: Int
    }

    /// Horizontal bars, one per label (the reason breakdown).
    struct Rows {
        let width: Int
        let height: Int
        let labelWidth: Int
        let rows: [Row]
        let empty: Bool
    }

    /// Columns for `series` (start, total, sold), oldest first, in a `width` × `height` box.
    static func columns(_ series: [(label: String, total: Int, sold: Int)], width: Int = 720, height: Int = 180) -> Columns {
        let plotTop = 14, baseline = height - 20
        let plotHeight = baseline - plotTop
        let peak = max(1, series.map(\.total).max() ?? 0)
        let slot = series.isEmpty ? width : width / series.count
        let barWidth = max(2, slot - max(2, slot / 5))
        var bars: [Bar] = []
        var ticks: [Tick] = []
        for (index, point) in series.enumerated() {
            let barHeight = point.total * plotHeight / peak
            let soldHeight = point.sold * plotHeight / peak
            let x = index * slot + (slot - barWidth) / 2
            bars.append(Bar(x: x, y: baseline - barHeight, width: barWidth, height: barHeight, soldY: baseline - soldHeight,
                            soldHeight: soldHeight, title: "\(point.label): \(point.total) rounds, \(point.sold) sold"))
            if index % max(1, series.count / 6) == 0 { ticks.append(Tick(x: index * slot + slot / 2, label: point.label)) }
        }
        return Columns(width: width, height: height, baseline: baseline, bars: bars, ticks: ticks, maxLabel: "\(peak)/min",
                       empty: series.allSatisfy { $0.total == 0 })
    }

    /// One row per (label, count), largest first, in a box `width` wide.
    static func rows(_ counts: [(label: String, count: Int)], width: Int = 460, rowHeight: Int = 22, labelWidth: Int = 150) -> Rows {
        let sorted = counts.sorted { $0.count != $1.count ? $0.count > $1.count : $0.label < $1.label }
        let peak = max(1, sorted.first?.count ?? 0)
        let plotWidth = width - labelWidth - 60
        let rows = sorted.enumerated().map { index, entry in
            let barWidth = max(1, entry.count * plotWidth / peak)
            return Row(label: entry.label, count: String(entry.count), y: index * rowHeight + 3, textY: index * rowHeight + 16,
                       width: barWidth, valueX: labelWidth + barWidth + 6)
        }
        return Rows(width: width, height: max(rowHeight, rows.count * rowHeight), labelWidth: labelWidth, rows: rows, empty: rows.isEmpty)
    }
}
