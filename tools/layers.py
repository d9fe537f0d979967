#!/usr/bin/env python3
"""layers.py — checks that the code keeps the one-way layering that
docs/ARCHITECTURE.md declares.

    python3 tools/layers.py --build BUILD_DIR [--doc docs/ARCHITECTURE.md] [-v]
    python3 tools/layers.py --selftest

For each group (the core library, the daemon) it reads, with `nm -P`, the
symbols every object file of the group defines and the ones it uses, and
draws the graph "file A uses a function or variable that file B defines".
It fails (exit 1) on:
  - a cycle among the group's files (however long);
  - a file that uses one declared above it (a higher line of the group's
    block in the document);
  - a file the document does not place, or one it places that was not built
    (the document must say what is there).
Files on one line are peers: they may use one another, as long as no cycle
results.

The document declares each group in a fenced block whose info string is
`layers NAME`, top layer first, one layer a line, files by their base name:

    ```layers core
    gateway link
    client
    ...
    base
    ```

A group's objects are found under BUILD_DIR as the objects compiled from
`core/src/*.c` (group "core") and `daemon/*.c` (group "daemon"). Groups are
ordered as the document lists them, the lower first: a file of a lower group
that uses one of a higher group fails too. Python 3 standard library only.
"""

import argparse
import collections
import os
import re
import subprocess
import sys

# Where each group's sources live, relative to the repository.
GROUP_SOURCES = {"core": "core/src/", "daemon": "daemon/"}


def read_layers(doc):
    """{group: [[file, ...] top layer first]} in the document's order."""
    groups = collections.OrderedDict()
    cur = None
    with open(doc, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            m = re.match(r"^```layers\s+(\S+)\s*$", line)
            if m:
                cur = []
                groups[m.group(1)] = cur
                continue
            if cur is not None:
                if line.startswith("```"):
                    cur = None
                    continue
                words = line.split("#", 1)[0].split()
                if words:
                    cur.append(words)
    if cur is not None:
        raise SystemExit(f"{doc}: a layers block is not closed")
    return groups


def find_objects(build, group):
    """{file base name: object path} of the group's sources under build."""
    marker = "/" + GROUP_SOURCES[group]
    found = {}
    for root, dirs, files in os.walk(build):
        if os.sep + "tests" + os.sep in root + os.sep or "fuzz" in root:
            continue
        for name in files:
            if not name.endswith(".c.o"):
                continue
            path = os.path.join(root, name)
            rel = path.replace(os.sep, "/")
            if marker not in rel:
                continue
            tail = rel.split(marker, 1)[1]
            if "/" in tail:  # a subfolder of the group's folder: not ours
                continue
            base = tail[: -len(".c.o")]
            found.setdefault(base, path)
    return found


def symbols(obj):
    """(defined, used) global symbol names of one object file."""
    out = subprocess.run(["nm", "-P", obj], capture_output=True, text=True, check=True).stdout
    defined, used = set(), set()
    for line in out.splitlines():
        parts = line.split()
        if len(parts) < 2:
            continue
        name, kind = parts[0], parts[1]
        if kind == "U":
            used.add(name)
        elif kind.isupper():
            defined.add(name)
    return defined, used


def graph_of(files_syms):
    """{file: {file it uses: [symbols]}} from {file: (defined, used)}."""
    owner = {}
    for f, (defined, _) in files_syms.items():
        for s in defined:
            owner[s] = f
    g = {}
    for f, (_, used) in files_syms.items():
        edges = collections.defaultdict(list)
        for s in sorted(used):
            o = owner.get(s)
            if o is not None and o != f:
                edges[o].append(s)
        g[f] = edges
    return g, owner


def cycles(g):
    """The strongly connected components of more than one file (Tarjan)."""
    index, low, on, stack, out = {}, {}, set(), [], []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in g.get(v, {}):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in sorted(g):
        if v not in index:
            visit(v)
    return out


def check(layers, graph, label):
    """Problems of one group: cycles and upward uses. layers: top first."""
    problems = []
    rank = {}
    for i, layer in enumerate(reversed(layers)):
        for f in layer:
            rank[f] = i
    for comp in cycles(graph):
        problems.append(f"{label}: files call each other in a circle: {' <-> '.join(comp)}")
    for f in sorted(graph):
        for o, syms in sorted(graph[f].items()):
            if f in rank and o in rank and rank[o] > rank[f]:
                shown = ", ".join(syms[:4]) + (" ..." if len(syms) > 4 else "")
                problems.append(f"{label}: {f} uses {o}, which lies above it ({shown})")
    return problems


def run(build, doc, verbose):
    groups = read_layers(doc)
    if not groups:
        print(f"layers: {doc} declares no ```layers``` block", file=sys.stderr)
        return 1
    problems = []
    all_syms = {}  # (group, file) -> (defined, used)
    for group, layers in groups.items():
        if group not in GROUP_SOURCES:
            problems.append(f"{doc}: unknown group '{group}' (known: {', '.join(GROUP_SOURCES)})")
            continue
        objs = find_objects(build, group)
        if not objs:
            problems.append(f"{group}: no object files of {GROUP_SOURCES[group]} under {build}"
                            " (build first)")
            continue
        placed = [f for layer in layers for f in layer]
        for f in sorted(set(placed) - set(objs)):
            problems.append(f"{group}: {doc} places {f}, which was not built (a stale name?)")
        for f in sorted(set(objs) - set(placed)):
            problems.append(f"{group}: {f} is built but {doc} does not place it")
        dup = [f for f, n in collections.Counter(placed).items() if n > 1]
        for f in dup:
            problems.append(f"{group}: {doc} places {f} twice")
        syms = {f: symbols(p) for f, p in objs.items()}
        for f, s in syms.items():
            all_syms[(group, f)] = s
        graph, _ = graph_of(syms)
        problems += check(layers, graph, group)
        if verbose:
            for f in sorted(graph):
                uses = ", ".join(f"{o} ({len(s)})" for o, s in sorted(graph[f].items()))
                print(f"{group}: {f} -> {uses or '-'}")
    # A lower group must not use a higher one.
    order = [g for g in groups if g in GROUP_SOURCES]
    owner = {}
    for (group, f), (defined, _) in all_syms.items():
        for s in defined:
            owner[s] = (group, f)
    for (group, f), (_, used) in sorted(all_syms.items()):
        for s in sorted(used):
            o = owner.get(s)
            if o and o[0] != group and order.index(o[0]) > order.index(group):
                problems.append(f"{group}: {f} uses {s} of {o[0]}/{o[1]}, a higher group")
    for p in problems:
        print("layers: " + p, file=sys.stderr)
    if problems:
        print(f"layers: {len(problems)} problem(s); the order is declared in {doc}",
              file=sys.stderr)
        return 1
    n = sum(len([f for layer in groups[g] for f in layer]) for g in order)
    print(f"layers: ok ({n} files in {len(order)} groups, one way)")
    return 0


def selftest():
    """The checker must catch what it is for: a cycle and an upward use."""
    layers = [["top"], ["mid"], ["low"]]
    ok = {"top": ({"t"}, {"m"}), "mid": ({"m"}, {"l"}), "low": ({"l"}, set())}
    upward = {"top": ({"t"}, {"m"}), "mid": ({"m"}, {"l"}), "low": ({"l"}, {"m"})}
    ring = {"a": ({"a1"}, {"b1"}), "b": ({"b1"}, {"c1"}), "c": ({"c1"}, {"a1"})}
    fails = 0
    p = check(layers, graph_of(ok)[0], "t")
    if p:
        print("selftest: a one-way graph was refused:", p)
        fails += 1
    p = check(layers, graph_of(upward)[0], "t")
    if not any("low uses mid" in x for x in p) or not any("circle" in x for x in p):
        print("selftest: an upward use / its cycle went unseen:", p)
        fails += 1
    p = check([["a", "b", "c"]], graph_of(ring)[0], "t")
    if not any("a <-> b <-> c" in x for x in p):
        print("selftest: a three-file ring went unseen:", p)
        fails += 1
    print("selftest: " + ("ok" if fails == 0 else f"{fails} failed"))
    return 1 if fails else 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--build", help="the build directory (object files)")
    ap.add_argument("--doc", default=os.path.normpath(
        os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "docs", "ARCHITECTURE.md")))
    ap.add_argument("-v", "--verbose", action="store_true", help="print the graph")
    ap.add_argument("--selftest", action="store_true")
    a = ap.parse_args()
    if a.selftest:
        return selftest()
    if not a.build:
        ap.error("--build is required")
    return run(a.build, a.doc, a.verbose)


if __name__ == "__main__":
    sys.exit(main())
