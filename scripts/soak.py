#!/usr/bin/env python3
"""Soak: one `edge-node serve` with several real viewers in a few zones for a long while.

Starts the release binary on the built-in test show, then viewers that stay for the whole run:
two `edge-node view` per rendering (zone `yintai-mall`, zone `default`, zone `default` at 360p)
and one PyPI `moq-rs` viewer (a third-party client; skipped with a note when .venv lacks it).
Samples the node's resident memory every 10 s. At the end prints the node's RSS growth from
the end of the warm-up to the end of the run, and per viewer the frames it received and the
frames it lost (gaps in the frame-clock SEI times), then gates: RSS growth under
SOAK_RSS_GROWTH_PCT and not one frame lost by any viewer. Exit 0 only when both hold.

Environment: SOAK_MINUTES (30), SOAK_UPSTREAM (testshow://?width=640&height=360&fps=30),
SOAK_WARMUP_S (60), SOAK_RSS_GROWTH_PCT (5), SOAK_UNDERSTANDING (0: off, 1: the node's default),
EDGE_NODE_BIN (target/release/edge-node).
"""

import json
import os
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FPS = 30
FRAME_US = 1_000_000 / FPS


def env(name, default):
    return type(default)(os.environ.get(name, default))


def number(value, unit=""):
    """A figure for the table; `?` when it is unknown."""
    if value is None:
        return "?"
    return f"{value:.1f}{unit}" if isinstance(value, float) else f"{value}{unit}"


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def metric(admin, name):
    with urllib.request.urlopen(f"http://{admin}/metrics", timeout=5) as response:
        text = response.read().decode()
    total = None
    for line in text.splitlines():
        if line.startswith(name) and (line[len(name)] in " {"):
            total = (total or 0.0) + float(line.rsplit(" ", 1)[1])
    return total


def start_node(binary, upstream, seconds):
    node_env = dict(os.environ)
    if os.environ.get("SOAK_UNDERSTANDING", "0") != "1":
        node_env["EDGE_NODE_UNDERSTANDING_ENABLED"] = "false"
    node_env.setdefault("RUST_LOG", "warn")
    log = open(ROOT / "out/soak/node.log", "w")
    node = subprocess.Popen(
        [binary, "serve", "--upstream", upstream, "--listen", "127.0.0.1:0",
         "--admin", "127.0.0.1:0", "--duration", str(seconds)],
        stdout=subprocess.PIPE, stderr=log, text=True, env=node_env)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = node.stdout.readline()
        if not line:
            break
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if event.get("event") == "serving":
            # Keep draining stdout so the node never blocks on a full pipe.
            threading.Thread(target=node.stdout.read, daemon=True).start()
            return node, event["url"], event["admin"]
    node.kill()
    sys.exit(f"soak: the node did not start serving; see {ROOT / 'out/soak/node.log'}")


def wait_ready(admin):
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://{admin}/ready", timeout=2):
                return
        except OSError:
            time.sleep(0.5)
    sys.exit("soak: the node never became ready")


def start_viewers(binary, url, seconds):
    viewers = []
    renderings = [("yintai-mall", []), ("default", []), ("default", ["--rendition", "360p"])]
    for zone, extra in renderings:
        for i in range(2):
            name = f"view {zone}{' ' + extra[-1] if extra else ''} #{i + 1}"
            out = open(ROOT / f"out/soak/viewer-{len(viewers)}.json", "w+")
            process = subprocess.Popen(
                [binary, "view", url, "--zone", zone, *extra, "--duration", str(seconds), "--json"],
                stdout=out, stderr=subprocess.DEVNULL)
            viewers.append(("edge-node", name, process, out))
    python = ROOT / ".venv/bin/python"
    script = ROOT / "edge-node/deliver/tests/moq_rs_subscribe.py"
    if python.exists():
        out = open(ROOT / "out/soak/viewer-moq-rs.json", "w+")
        process = subprocess.Popen(
            [python, script, url + "?zone=default", "--seconds", str(seconds), "--out", "/dev/null"],
            stdout=out, stderr=subprocess.DEVNULL, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        viewers.append(("moq-rs", "moq-rs default", process, out))
    else:
        print(f"soak: {python} missing (make setup installs moq-rs): no third-party viewer")
    return viewers


def last_json(out):
    out.seek(0)
    text = out.read()
    start = text.find("\n{\n")
    start = 0 if text.startswith("{") else start + 1
    for candidate in (text[start:], text.strip().splitlines()[-1] if text.strip() else ""):
        try:
            return json.loads(candidate)
        except ValueError:
            continue
    return None


def judge(kind, report):
    """(frames received, frames lost, longest gap ms or None, p99 ms or None). Lost: the
    frames the source made between the first and the last one received (from their frame-clock
    SEI times) that never arrived; counted over the span, so a late frame is not a lost one."""
    if report is None:
        return None
    if kind == "edge-node":
        frames, first, last = (report["frames_received"], report["first_frame_clock_us"],
                               report["last_frame_clock_us"])
        p99 = report["edge_to_viewer_ms"].get("p99") if report.get("edge_to_viewer_ms") else None
        gap = report["longest_gap_ms"]
    else:
        frames, first, last = report["frames"], report.get("sei_first_us"), report.get("sei_last_us")
        p99, gap = None, None
    if first is None or last is None:
        return frames, None, gap, p99
    expected = round((last - first) / FRAME_US) + 1
    return frames, max(0, expected - frames), gap, p99


def node_drops(admin):
    """The node's own drops, by stage and reason (frames no viewer could get)."""
    with urllib.request.urlopen(f"http://{admin}/metrics", timeout=5) as response:
        text = response.read().decode()
    return [line for line in text.splitlines()
            if line.startswith("edge_frames_dropped_total{") and float(line.rsplit(" ", 1)[1]) > 0]


def main():
    minutes = env("SOAK_MINUTES", 30.0)
    warmup = env("SOAK_WARMUP_S", 60.0)
    limit_pct = env("SOAK_RSS_GROWTH_PCT", 5.0)
    upstream = os.environ.get("SOAK_UPSTREAM", f"testshow://?width=640&height=360&fps={FPS}")
    binary = os.environ.get("EDGE_NODE_BIN", str(ROOT / "target/release/edge-node"))
    (ROOT / "out/soak").mkdir(parents=True, exist_ok=True)
    watch_s = int(warmup + minutes * 60)

    node, url, admin = start_node(binary, upstream, watch_s + 120)
    wait_ready(admin)
    started = time.monotonic()
    viewers = start_viewers(binary, url, watch_s)
    print(f"soak: {minutes:g} min after a {warmup:g} s warm-up, {len(viewers)} viewers, upstream {upstream}, node pid {node.pid}")
    samples = []  # (seconds since viewers started, RSS KiB)
    baseline = None
    next_print = 0.0
    while time.monotonic() - started < watch_s - 5 and node.poll() is None:
        elapsed = time.monotonic() - started
        rss = rss_kib(node.pid)
        samples.append((elapsed, rss))
        if baseline is None and elapsed >= warmup:
            baseline = rss
        if elapsed >= next_print:
            watching = metric(admin, "edge_viewers")
            print(f"  +{elapsed / 60:5.1f} min  RSS {rss / 1024:7.1f} MiB  viewers {number(watching)}", flush=True)
            next_print += 60
        time.sleep(10)
    end_rss = rss_kib(node.pid) if node.poll() is None else None
    dropped = node_drops(admin) if node.poll() is None else None
    feed_failures = metric(admin, "edge_feed_write_failures_total") if node.poll() is None else None
    for _, _, process, _ in viewers:
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
    node.terminate()
    node.wait(timeout=60)

    ok = True
    print()
    print(f"{'viewer':<28} {'frames':>9} {'lost':>6} {'longest gap':>12} {'p99':>9}")
    for kind, name, _, out in viewers:
        judged = judge(kind, last_json(out))
        if judged is None:
            print(f"{name:<28} {'no report':>9}")
            ok = False
            continue
        frames, lost, gap, p99 = judged
        print(f"{name:<28} {frames:>9} {number(lost):>6} {number(gap, ' ms'):>12} {number(p99, ' ms'):>9}")
        if lost is None or lost > 0 or frames == 0:
            ok = False
    if baseline is None or end_rss is None:
        print("soak: the node ended early or the run was shorter than the warm-up: no RSS figure")
        ok = False
    else:
        growth = 100.0 * (end_rss - baseline) / baseline
        peak = max(rss for _, rss in samples)
        print(f"node RSS: {baseline / 1024:.1f} MiB after the warm-up, {end_rss / 1024:.1f} MiB at the end "
              f"({growth:+.2f}%, gate < {limit_pct:g}%), peak {peak / 1024:.1f} MiB")
        print(f"node: feed write failures {number(feed_failures)}; frames it dropped: "
              + (", ".join(dropped) if dropped else "none"))
        if growth >= limit_pct:
            ok = False
    print("soak: PASS" if ok else "soak: FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
