#!/usr/bin/env python3
"""Report on the release artifacts: per function, the binary's size, its zipped size
and its init time; fail when a zipped artifact is over budget or does not start.

The artifacts are `cargo lambda build --release`'s `<lambda-dir>/<binary>/bootstrap`,
one per AWS::Serverless::Function of the template (its BuildProperties.Binary).

- bootstrap: the binary's size as built (the release profile strips its symbols;
  should a symbol table be left, a note gives the size `strip` would leave).
- zipped: the bootstrap alone in a zip, deflated as `sam package`/`sam deploy` zip
  a function's code: what Lambda receives and counts against its limits.
- init: process start to the first `GET /2018-06-01/runtime/invocation/next`, the
  moment a function is ready for its first event (Lambda's init phase ends there).
  The binary runs against a fake Runtime API here with the stack's functions.env
  (so its configuration loads) and the template's MemorySize; median and range of
  --runs starts.

MB are MiB (2^20 bytes), as Lambda's quotas count them.

Run with the local venv's python (it has cfn-lint's template loader):
    infra/local/.venv/bin/python infra/local/artifacts.py --template template.yaml \\
        --lambda-dir target/lambda --env-file infra/local/.run/functions.env
"""

from __future__ import annotations

import argparse
import io
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

MB = 1 << 20
NEXT_EVENT = "/2018-06-01/runtime/invocation/next"
INIT_ERROR = "/2018-06-01/runtime/init/error"
INIT_TIMEOUT_S = 30.0


@dataclass
class Function:
    logical_id: str
    binary: str
    memory_mb: int


@dataclass
class Init:
    seconds: list[float]
    failure: str | None


# --------------------------------------------------------------------- template


def functions(template: Path) -> list[Function]:
    """Every AWS::Serverless::Function with its binary and memory size."""
    from cfnlint.decode import decode_str  # YAML loader that understands !Ref, !If, ...

    tpl, matches = decode_str(template.read_text())
    if matches or tpl is None:
        raise SystemExit(f"artifacts: cannot parse {template}: {matches}")
    default_memory = tpl.get("Globals", {}).get("Function", {}).get("MemorySize", 128)
    found = []
    for logical, res in sorted(tpl.get("Resources", {}).items()):
        if res.get("Type") != "AWS::Serverless::Function":
            continue
        binary = res.get("Metadata", {}).get("BuildProperties", {}).get("Binary")
        if not binary:
            raise SystemExit(f"artifacts: {logical} has no Metadata.BuildProperties.Binary")
        memory = res.get("Properties", {}).get("MemorySize", default_memory)
        found.append(Function(logical, str(binary), int(memory) if isinstance(memory, int) else 128))
    return found


# --------------------------------------------------------------------- sizes


def has_symbol_table(path: Path) -> bool:
    """Whether the ELF64 file has a .symtab section (what stripping removes)."""
    data = path.read_bytes()
    if data[:4] != b"\x7fELF" or data[4] != 2:
        raise SystemExit(f"artifacts: {path} is not a 64-bit ELF file")
    endian = "<" if data[5] == 1 else ">"
    shoff, = struct.unpack_from(endian + "Q", data, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from(endian + "HHH", data, 0x3A)
    if shoff == 0 or shnum == 0:
        return False

    def section(i: int) -> tuple[int, int]:
        name, = struct.unpack_from(endian + "I", data, shoff + i * shentsize)
        offset, = struct.unpack_from(endian + "Q", data, shoff + i * shentsize + 0x18)
        return name, offset

    _, strtab = section(shstrndx)
    for i in range(shnum):
        name, _ = section(i)
        end = data.index(b"\0", strtab + name)
        if data[strtab + name:end] == b".symtab":
            return True
    return False


def symbols_note(path: Path) -> str:
    """Empty when the binary has no symbol table, else what stripping would leave."""
    if not has_symbol_table(path):
        return ""
    strip = shutil.which("strip")
    if strip is None:
        return "has a symbol table (no `strip` here to size it without)"
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp, "bootstrap")
        subprocess.run([strip, "--strip-all", "-o", str(out), str(path)], check=True)
        return f"has a symbol table: {megabytes(out.stat().st_size)} after `strip`"


def zipped_size(path: Path) -> int:
    """The size of a zip holding the file as `bootstrap`, deflated like sam's."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        info = zipfile.ZipInfo("bootstrap", date_time=(2026, 1, 1, 0, 0, 0))
        info.external_attr = 0o755 << 16
        info.compress_type = zipfile.ZIP_DEFLATED
        zf.writestr(info, path.read_bytes())
    return len(buf.getvalue())


# --------------------------------------------------------------------- init time


class FakeRuntime:
    """A Runtime API that notes when the function first asks for an event and
    never gives it one (the process is killed then)."""

    def __init__(self) -> None:
        self.polled_at: float | None = None
        self.init_error: str | None = None
        self.ready = threading.Event()
        self.release = threading.Event()
        runtime = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
                if self.path.endswith(NEXT_EVENT):
                    if runtime.polled_at is None:
                        runtime.polled_at = time.monotonic()
                    runtime.ready.set()
                    # Hold the long poll, as Lambda does between events.
                    runtime.release.wait(INIT_TIMEOUT_S)
                    self.close_connection = True
                    return
                self.send_error(404)

            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length).decode("utf-8", "replace")
                if self.path.endswith(INIT_ERROR):
                    runtime.init_error = body
                    runtime.ready.set()
                self.send_response(202)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.server.server_port}"

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


def read_env_file(path: Path) -> dict[str, str]:
    env = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#") and "=" in line:
            key, value = line.split("=", 1)
            env[key.strip()] = value.strip()
    return env


def start_once(binary: Path, function: Function, base_env: dict[str, str]) -> tuple[float | None, str | None]:
    """(seconds to the first poll, None) or (None, why it did not get there)."""
    runtime = FakeRuntime()
    env = {
        # What Lambda's provided.al2023 sandbox sets besides the function's variables.
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "LANG": "en_US.UTF-8",
        "TZ": ":UTC",
        **base_env,
        "AWS_LAMBDA_RUNTIME_API": runtime.address,
        "AWS_LAMBDA_FUNCTION_NAME": function.binary,
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(function.memory_mb),
        "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{function.binary}",
        "AWS_LAMBDA_LOG_STREAM_NAME": "artifacts",
    }
    with tempfile.TemporaryFile() as output:
        start = time.monotonic()
        proc = subprocess.Popen([str(binary)], env=env, stdin=subprocess.DEVNULL, stdout=output, stderr=output)
        try:
            while not runtime.ready.wait(0.005):
                if proc.poll() is not None:
                    break
                if time.monotonic() - start > INIT_TIMEOUT_S:
                    break
        finally:
            proc.kill()
            proc.wait()
            runtime.close()
        if runtime.polled_at is not None:
            return runtime.polled_at - start, None
        output.seek(0)
        tail = output.read().decode("utf-8", "replace").strip().splitlines()[-5:]
        if runtime.init_error is not None:
            why = f"init error: {runtime.init_error}"
        elif proc.returncode is not None and time.monotonic() - start <= INIT_TIMEOUT_S:
            why = "exited before asking for an event"
        else:
            why = f"no request for an event within {INIT_TIMEOUT_S:.0f}s"
        return None, why + ("; output: " + " | ".join(tail) if tail else "")


def init_times(binary: Path, function: Function, env: dict[str, str], runs: int) -> Init:
    seconds = []
    for _ in range(runs):
        took, failure = start_once(binary, function, env)
        if failure:
            return Init(seconds, failure)
        seconds.append(took)
    return Init(seconds, None)


# --------------------------------------------------------------------- report


def megabytes(n: int) -> str:
    return f"{n / MB:.2f} MB"


def milliseconds(init: Init) -> str:
    if init.failure:
        return "FAILED"
    ms = [s * 1000 for s in init.seconds]
    return f"{statistics.median(ms):.1f} ms ({min(ms):.1f}-{max(ms):.1f})"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--template", required=True, type=Path)
    ap.add_argument("--lambda-dir", required=True, type=Path, help="cargo lambda's output, e.g. target/lambda")
    ap.add_argument("--env-file", required=True, type=Path, help="the stack's functions.env")
    ap.add_argument("--budget-mb", type=float, default=5.0, help="largest zipped size allowed, in MB (issue 15: 5 MB)")
    ap.add_argument("--runs", type=int, default=5, help="starts per function for the init time")
    args = ap.parse_args()

    env = read_env_file(args.env_file)
    budget = int(args.budget_mb * MB)
    failures = []
    rows = []
    for function in functions(args.template):
        binary = args.lambda_dir / function.binary / "bootstrap"
        if not binary.is_file():
            failures.append(f"{function.binary}: {binary} is missing (cargo lambda build --release)")
            continue
        note = symbols_note(binary)
        zipped = zipped_size(binary)
        init = init_times(binary, function, env, args.runs)
        rows.append((function.binary, megabytes(binary.stat().st_size), megabytes(zipped), f"{zipped:,}",
                     milliseconds(init), f"{function.memory_mb} MB", note))
        if zipped > budget:
            failures.append(f"{function.binary}: zipped {megabytes(zipped)} is over the budget of {megabytes(budget)}")
        if init.failure:
            failures.append(f"{function.binary}: did not start: {init.failure}")

    print(f"release artifacts ({args.lambda_dir}/<binary>/bootstrap; MB = 2^20 bytes):")
    header = ("function", "bootstrap", "zipped", "zipped bytes", f"init, median (range) of {args.runs}", "memory", "")
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  " + "  ".join(str(c).ljust(w) for c, w in zip(row, widths)).rstrip())
    print(f"zipped budget: {megabytes(budget)} per function (MODELWATCH_ZIP_BUDGET_MB)")
    if failures:
        for f in failures:
            print(f"artifacts: {f}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
