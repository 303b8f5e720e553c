// `--format flamegraph`: a self-contained interactive SVG flame graph in the
// manner of flamegraph.pl: the root at the bottom, one box a frame (inlined
// functions included), as wide as its share of the threads (or samples, goroutines,
// tasks: what the document counts), coloured by layer.
// In a browser: hover shows the frame and its share, click zooms into it,
// "Search" highlights frames matching a regular expression, "Reset Zoom" undoes.

public struct FlameGraphWriter: Sendable {
    public var title: String
    public var classifier: Classifier

    public init(title: String = "swiftprof", classifier: Classifier = Classifier()) {
        self.title = title
        self.classifier = classifier
    }

    final class Node {
        let name: String
        let layer: Layer?
        var value = 0
        var children: [Node] = []
        var childIndex: [String: Int] = [:]

        init(name: String, layer: Layer?) {
            self.name = name
            self.layer = layer
        }

        /// Releases a tree without recursing: each node's children are taken from it
        /// before it goes (a chain of a million nodes would otherwise be released by a
        /// million nested deinits).
        static func dismantle(_ root: Node) {
            var pending = [root]
            while let node = pending.popLast() {
                pending += node.children
                node.children = []
                node.childIndex = [:]
            }
        }

        func child(_ name: String, layer: Layer) -> Node {
            let key = name + "\u{0}" + layer.rawValue
            if let index = childIndex[key] { return children[index] }
            children.append(Node(name: name, layer: layer))
            childIndex[key] = children.count - 1
            return children[children.count - 1]
        }
    }

    static let width = 1200.0, frameHeight = 16.0, padding = 10.0, top = 40.0, bottom = 30.0

    /// The frame tree: root "all", then each record's frames root first.
    func tree(_ document: ProfileDocument) -> Node {
        let root = Node(name: "all", layer: nil)
        for record in document.records {
            root.value += record.count
            var node = root
            let layers = classifier.layers(of: record)
            for (location, locationLayers) in zip(record.locations, layers).reversed() {
                for (line, layer) in zip(location.lines, locationLayers).reversed() {
                    node = node.child(Location.displayName(line, of: location), layer: layer)
                    node.value += record.count
                }
            }
        }
        return root
    }

    public func write(_ document: ProfileDocument) -> String {
        let root = tree(document)
        // A stack may be a million frames deep (--max-frames): nothing here recurses
        // per frame, not even the tree's release (Node.dismantle).
        defer { Node.dismantle(root) }
        let depth = Self.depth(root)
        let height = Self.top + Double(depth + 1) * Self.frameHeight + Self.bottom
        let frameBottom = height - Self.bottom
        let usable = Self.width - 2 * Self.padding
        var boxes = ""
        // Laid out here for viewers without scripts (an <img>, rsvg); the script redoes it on zoom.
        // Depth first, children in name order, from a stack of boxes still to draw.
        var pending: [(node: Node, start: Int, level: Int)] = [(root, 0, 0)]
        while let (node, start, level) = pending.popLast() {
            let share = root.value > 0 ? Double(node.value) / Double(root.value) : 0
            let startShare = root.value > 0 ? Double(start) / Double(root.value) : 0
            let percent = (share * 10000).rounded() / 100
            let label = "\(node.name) (\(document.unit.counted(node.value)), \(percent)%)"
            let x = Self.padding + startShare * usable, w = share * usable
            let y = frameBottom - Double(level + 1) * Self.frameHeight
            boxes += "<g class=\"frame\" data-s=\"\(format(startShare))\" data-f=\"\(format(share))\" data-d=\"\(level)\""
                + " data-n=\"\(Self.escape(node.name))\"><title>\(Self.escape(label))</title>"
                + "<rect x=\"\(format(x))\" y=\"\(format(y))\" width=\"\(format(w))\""
                + " height=\"\(format(Self.frameHeight - 1))\" rx=\"2\" fill=\"\(Self.color(node))\"/>"
                + "<text x=\"\(format(x + 3))\" y=\"\(format(y + Self.frameHeight - 5))\">\(Self.escape(Self.fitted(node.name, width: w)))</text></g>\n"
            var offset = start
            var children: [(node: Node, start: Int, level: Int)] = []
            for child in node.children.sorted(by: { $0.name.utf8.lexicographicallyPrecedes($1.name.utf8) }) {
                children.append((child, offset, level + 1))
                offset += child.value
            }
            pending += children.reversed()
        }
        let heading = "\(title): \(document.unit.counted(root.value))"
        return """
            <?xml version="1.0" encoding="UTF-8" standalone="no"?>
            <svg version="1.1" width="\(format(Self.width))" height="\(format(height))" viewBox="0 0 \(format(Self.width)) \(format(height))" xmlns="http://www.w3.org/2000/svg" onload="init(evt)">
            <style type="text/css">
            text { font-family: Verdana, sans-serif; font-size: 12px; fill: #000; }
            .frame text { font-size: 11px; pointer-events: none; }
            .frame rect { stroke: #fff; stroke-width: 0.5; }
            .frame:hover rect { stroke: #000; stroke-width: 1; }
            .button { cursor: pointer; fill: #325c9f; }
            .legend rect { stroke: #888; stroke-width: 0.5; }
            </style>
            <script type="text/ecmascript"><![CDATA[
            \(Self.script)
            ]]></script>
            <rect x="0" y="0" width="\(format(Self.width))" height="\(format(height))" fill="#f8f8f8"/>
            <text id="title" x="\(format(Self.width / 2))" y="24" text-anchor="middle" style="font-size:17px">\(Self.escape(heading))</text>
            <text id="reset" class="button" x="\(format(Self.padding))" y="24" visibility="hidden">Reset Zoom</text>
            <text id="search" class="button" x="\(format(Self.width - Self.padding))" y="24" text-anchor="end">Search</text>
            <g class="legend">\(Self.legend(height: height))</g>
            <text id="details" x="\(format(Self.padding))" y="\(format(height - 10))"> </text>
            <text id="matched" x="\(format(Self.width - Self.padding))" y="\(format(height - 10))" text-anchor="end"> </text>
            <g id="frames" data-width="\(format(usable))" data-pad="\(format(Self.padding))" data-bottom="\(format(height - Self.bottom))" data-h="\(format(Self.frameHeight))">
            \(boxes)</g>
            </svg>

            """
    }

    static func depth(_ root: Node) -> Int {
        var deepest = 0
        var pending = [(root, 0)]
        while let (node, level) = pending.popLast() {
            deepest = max(deepest, level)
            pending += node.children.map { ($0, level + 1) }
        }
        return deepest
    }

    /// The name cut to the box, about 7 pixels a character, as the script does.
    static func fitted(_ name: String, width: Double) -> String {
        let fits = Int(((width - 6) / 7).rounded(.down))
        if fits < 3 { return "" }
        return name.count <= fits ? name : String(name.prefix(fits - 2)) + ".."
    }

    private func format(_ value: Double) -> String {
        let rounded = (value * 10000).rounded() / 10000
        return rounded == rounded.rounded() ? String(Int(rounded)) : String(rounded)
    }

    /// Top right, between the centred title and "Search".
    static func legend(height: Double) -> String {
        var x = 760.0
        var text = ""
        for layer in Layer.allCases {
            text += "<rect x=\"\(Int(x))\" y=\"13\" width=\"12\" height=\"12\" fill=\"\(color(layer: layer, hash: 0.5))\"/>"
                + "<text x=\"\(Int(x) + 16)\" y=\"24\">\(layer.rawValue)</text>"
            x += 82
        }
        return text
    }

    /// flamegraph.pl's palettes, one a layer; the shade comes from the name so that
    /// the same function has the same colour in every graph.
    static func color(_ node: Node) -> String {
        guard let layer = node.layer else { return "rgb(200,200,200)" }
        var hash: UInt32 = 2_166_136_261
        for byte in node.name.utf8 { hash = (hash ^ UInt32(byte)) &* 16_777_619 }
        return color(layer: layer, hash: Double(hash % 1000) / 1000)
    }

    static func color(layer: Layer, hash v: Double) -> String {
        let (r, g, b): (Double, Double, Double)
        switch layer {
        case .app: (r, g, b) = (205 + 50 * v, 80 + 120 * v, 40 * v)        // warm: the program's own code
        case .runtime: (r, g, b) = (90 + 50 * v, 140 + 50 * v, 200 + 50 * v)  // blue
        case .syscall: (r, g, b) = (210 + 40 * v, 200 + 40 * v, 60 + 50 * v)  // yellow
        case .kernel: (r, g, b) = (180 + 60 * v, 110 + 40 * v, 160 + 50 * v) // violet
        }
        return "rgb(\(Int(r)),\(Int(g)),\(Int(b)))"
    }

    static func escape(_ text: String) -> String {
        escaping(printable(text), ["&": "&amp;", "<": "&lt;", ">": "&gt;", "\"": "&quot;"])
    }

    /// Lays the frames out for a zoom window [zs, zs + zw) of the root's width.
    static let script = """
        var frames, details, matched, resetButton, width, pad, bottom, rowHeight, zoomStart = 0, zoomWidth = 1, pattern = null;
        function init(evt) {
          var group = document.getElementById("frames");
          frames = Array.prototype.slice.call(group.getElementsByClassName("frame"));
          details = document.getElementById("details"); matched = document.getElementById("matched");
          resetButton = document.getElementById("reset");
          width = +group.getAttribute("data-width"); pad = +group.getAttribute("data-pad");
          bottom = +group.getAttribute("data-bottom"); rowHeight = +group.getAttribute("data-h");
          frames.forEach(function (f) {
            f.addEventListener("mouseover", function () { details.textContent = f.getElementsByTagName("title")[0].textContent; });
            f.addEventListener("mouseout", function () { details.textContent = " "; });
            f.addEventListener("click", function () { zoom(+f.getAttribute("data-s"), +f.getAttribute("data-f")); });
          });
          resetButton.addEventListener("click", function () { zoom(0, 1); });
          document.getElementById("search").addEventListener("click", search);
          layout();
        }
        function zoom(start, share) {
          zoomStart = start; zoomWidth = share > 0 ? share : 1;
          resetButton.setAttribute("visibility", start === 0 && zoomWidth === 1 ? "hidden" : "visible");
          layout();
        }
        function layout() {
          frames.forEach(function (f) {
            var s = +f.getAttribute("data-s"), w = +f.getAttribute("data-f"), d = +f.getAttribute("data-d");
            var rect = f.getElementsByTagName("rect")[0], text = f.getElementsByTagName("text")[0];
            var x = pad + (s - zoomStart) / zoomWidth * width, pixels = w / zoomWidth * width;
            var inside = s + w > zoomStart + 1e-9 && s < zoomStart + zoomWidth - 1e-9;
            if (!inside || pixels < 0.1) { f.style.display = "none"; return; }
            f.style.display = "";
            var left = Math.max(x, pad), right = Math.min(x + pixels, pad + width);
            var y = bottom - (d + 1) * rowHeight;
            rect.setAttribute("x", left); rect.setAttribute("width", Math.max(right - left, 0.1)); rect.setAttribute("y", y);
            var name = f.getAttribute("data-n"), fits = Math.floor((right - left - 6) / 7);
            text.textContent = fits < 3 ? "" : (name.length <= fits ? name : name.substring(0, fits - 2) + "..");
            text.setAttribute("x", left + 3); text.setAttribute("y", y + rowHeight - 5);
            var original = rect.getAttribute("data-fill") || rect.getAttribute("fill");
            rect.setAttribute("data-fill", original);
            rect.setAttribute("fill", pattern && pattern.test(name) ? "rgb(230,0,230)" : original);
          });
        }
        function search() {
          var text = window.prompt("Search for (regular expression):", pattern ? pattern.source : "");
          if (text === null) return;
          try { pattern = text ? new RegExp(text) : null; } catch (e) { pattern = null; }
          var spans = [];
          frames.forEach(function (f) {
            if (pattern && pattern.test(f.getAttribute("data-n"))) spans.push([+f.getAttribute("data-s"), +f.getAttribute("data-f")]);
          });
          spans.sort(function (a, b) { return a[0] - b[0]; });
          var total = 0, end = 0;
          spans.forEach(function (span) {
            var s = Math.max(span[0], end), e = span[0] + span[1];
            if (e > s) { total += e - s; end = e; }
          });
          matched.textContent = pattern ? "Matched: " + (total * 100).toFixed(1) + "%" : " ";
          layout();
        }
        """
}
