#!/usr/bin/env python3
"""Checks that the shared crate's dependencies point inward (docs/ARCHITECTURE.md,
"Invariants"): every `crate::<module>` path in production code is allowed by the
layer table below, and no cycle exists between top-level modules.

Production code is every file under shared/src except test modules: files named
`tests.rs` or `*_tests.rs`, code after a file's `#[cfg(test)]` module declaration
or block, and `testing.rs`. Prints the module graph with --graph.

    python3 infra/check/layers.py [--graph]
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "shared" / "src"

# What each top-level module may import from the crate (besides itself). Read
# bottom-up: the domain imports nothing; ports speak domain; services speak ports
# and domain; adapters implement ports; the edge and wiring sit on top.
ALLOWED: dict[str, set[str]] = {
    "domain": set(),
    "error": {"domain"},
    "query": set(),
    "telemetry": set(),
    "schedule": {"domain", "ports", "error"},
    "ports": {"domain", "error"},
    "config": {"domain"},
    "ingest": {"domain", "ports", "error"},
    "aggregate": {"domain", "ports", "error", "schedule"},
    "summary": {"domain", "ports", "error", "query"},
    "alerting": {"domain", "ports", "error", "summary", "schedule"},
    "adapters": {"domain", "ports", "error", "config", "aws", "tls"},
    "aws": {"tls"},
    "tls": set(),
    "edge": {"domain", "error"},
    "startup": {"config", "aws", "telemetry"},
    "testing": None,  # test fixtures: anything
}

USE = re.compile(r"\bcrate::([a-z_]+)")
COMMENT = re.compile(r"//.*$", re.MULTILINE)
SUPER_TEST = re.compile(r"^#\[cfg\(test\)\]\s*$")


def module_of(path: Path) -> str:
    rel = path.relative_to(SRC)
    return rel.parts[0].removesuffix(".rs")


def production_text(path: Path) -> str:
    if path.name in ("tests.rs", "testing.rs") or path.name.endswith("_tests.rs"):
        return ""
    lines = path.read_text().splitlines()
    for i, line in enumerate(lines):
        if SUPER_TEST.match(line) and i + 1 < len(lines) and lines[i + 1].startswith("mod "):
            return "\n".join(lines[:i])
    return "\n".join(lines)


def graph() -> dict[str, set[str]]:
    edges: dict[str, set[str]] = {}
    for path in sorted(SRC.rglob("*.rs")):
        if path.name == "lib.rs":
            continue
        module = module_of(path)
        # Comments (doc links) name modules without depending on them.
        text = COMMENT.sub("", production_text(path))
        # `super::` at a module's top level is `crate::`; nested files resolve within
        # their own module, so only top-level files' `super::` would leave it.
        found = set(USE.findall(text)) - {module}
        edges.setdefault(module, set()).update(found)
    return edges


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    found, stack, state = [], [], {}

    def visit(node: str) -> None:
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == "open":
                found.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = "done"

    for node in sorted(edges):
        if node not in state:
            visit(node)
    return found


def main() -> int:
    edges = graph()
    if "--graph" in sys.argv:
        for module in sorted(edges):
            print(f"{module:10} -> {', '.join(sorted(edges[module])) or '(nothing)'}")
    problems = []
    for module, targets in sorted(edges.items()):
        if module not in ALLOWED:
            problems.append(f"{module}: not in the layer table of infra/check/layers.py")
            continue
        allowed = ALLOWED[module]
        if allowed is None:
            continue
        for target in sorted(targets - allowed):
            problems.append(f"{module} imports crate::{target}: not allowed by its layer")
    for cycle in cycles(edges):
        problems.append("module cycle: " + " -> ".join(cycle))
    for problem in problems:
        print(f"layers: {problem}", file=sys.stderr)
    if not problems:
        print(f"layers: {len(edges)} modules, every import points inward, no cycle")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
