#!/usr/bin/env python3
"""Third-party viewer for edge-node: PyPI `moq-rs` (import `moq`) subscribes to `live`.

Connects to an edge-node delivery server over WebTransport, reads the hang catalog, subscribes
to the first video rendition as raw media frames (H.264 Annex B access units, no decoding here),
writes them back to back into an Annex B file, and prints one JSON summary line on stdout:

    {"frames": 90, "keyframes": 3, "bytes": ..., "codec": "avc3.64001e",
     "sei_first_us": ..., "sei_last_us": ..., "sei_increasing": true, ...}

The certificate is pinned by its SHA-256: given with --fingerprint, or fetched from
`/certificate.sha256` on the same port (as the browser page does). moq-rs also races a
WebSocket fallback over TCP on that port; the server is expected to shrug it off.

Usage: moq_rs_subscribe.py URL --seconds 3 --out dump.h264 [--fingerprint HEX] [--frames N]
"""

import argparse
import asyncio
import json
import sys
import time
import urllib.parse
import urllib.request

import moq

# edge-node's frame-clock SEI: user_data_unregistered with this UUID, then u64 BE microseconds.
FRAME_CLOCK_UUID = bytes.fromhex("e3d9c1a05b7f4e4a9c2d6564676e6f64")


def nal_units(au: bytes):
    """Yield NAL units (without start codes) of an Annex B buffer."""
    starts = []
    i = 0
    while True:
        i = au.find(b"\x00\x00\x01", i)
        if i < 0:
            break
        starts.append(i + 3)
        i += 3
    for n, start in enumerate(starts):
        end = starts[n + 1] - 3 if n + 1 < len(starts) else len(au)
        nal = au[start:end].rstrip(b"\x00")
        if nal:
            yield nal


def unescape(ebsp: bytes) -> bytes:
    """Drop emulation-prevention bytes (00 00 03 -> 00 00)."""
    out = bytearray()
    zeros = 0
    for b in ebsp:
        if zeros >= 2 and b == 3:
            zeros = 0
            continue
        out.append(b)
        zeros = zeros + 1 if b == 0 else 0
    return bytes(out)


def frame_clock_us(au: bytes):
    """The frame-clock time of an access unit, or None."""
    for nal in nal_units(au):
        if nal[0] & 0x1F != 6:
            continue
        rbsp = unescape(nal[1:])
        pos = 0
        while pos < len(rbsp) and rbsp[pos] != 0x80:
            ptype = 0
            while pos < len(rbsp) and rbsp[pos] == 0xFF:
                ptype += 255
                pos += 1
            if pos >= len(rbsp):
                break
            ptype += rbsp[pos]
            pos += 1
            psize = 0
            while pos < len(rbsp) and rbsp[pos] == 0xFF:
                psize += 255
                pos += 1
            if pos >= len(rbsp):
                break
            psize += rbsp[pos]
            pos += 1
            payload = rbsp[pos : pos + psize]
            if ptype == 5 and len(payload) == 24 and payload[:16] == FRAME_CLOCK_UUID:
                return int.from_bytes(payload[16:24], "big")
            pos += psize
    return None


def is_idr(au: bytes) -> bool:
    return any(nal[0] & 0x1F == 5 for nal in nal_units(au))


def fetch_fingerprint(url: str) -> str:
    parsed = urllib.parse.urlsplit(url)
    host = parsed.hostname
    if host and ":" in host:
        host = f"[{host}]"
    with urllib.request.urlopen(f"http://{host}:{parsed.port}/certificate.sha256", timeout=5) as response:
        return response.read().decode().strip()


async def run(args) -> dict:
    fingerprint = args.fingerprint or fetch_fingerprint(args.url)
    summary = {
        "frames": 0,
        "keyframes": 0,
        "bytes": 0,
        "codec": None,
        "first_is_keyframe": None,
        "sei_first_us": None,
        "sei_last_us": None,
        "sei_missing": 0,
        "sei_increasing": True,
        "timestamps_increasing": True,
        "latency_ms_p50": None,
    }
    latencies = []
    async with moq.connect(args.url, tls_fingerprints=[fingerprint], reconnect=False) as client:
        # announced_broadcast waits for the route; request_broadcast would fail if the
        # announcement has not crossed the session yet.
        broadcast = await asyncio.wait_for(client.announced_broadcast("live").available(), timeout=10)
        catalog = await asyncio.wait_for(broadcast.catalog(), timeout=10)
        name, video = next(iter(catalog.video.items()))
        summary["codec"] = video.codec
        media = await broadcast.subscribe_media(name, video)
        last_sei = None
        last_ts = None
        deadline = time.monotonic() + args.seconds
        with open(args.out, "wb") as dump:
            while time.monotonic() < deadline and (args.frames is None or summary["frames"] < args.frames):
                try:
                    frame = await asyncio.wait_for(anext(media), timeout=max(0.05, deadline - time.monotonic()))
                except (asyncio.TimeoutError, StopAsyncIteration):
                    break
                received_us = time.time_ns() // 1000
                au = bytes(frame.payload)
                dump.write(au)
                summary["frames"] += 1
                summary["bytes"] += len(au)
                idr = is_idr(au)
                summary["keyframes"] += int(idr)
                if summary["first_is_keyframe"] is None:
                    summary["first_is_keyframe"] = idr and bool(frame.keyframe)
                sei = frame_clock_us(au)
                if sei is None:
                    summary["sei_missing"] += 1
                else:
                    if summary["sei_first_us"] is None:
                        summary["sei_first_us"] = sei
                    if last_sei is not None and sei <= last_sei:
                        summary["sei_increasing"] = False
                    last_sei = sei
                    summary["sei_last_us"] = sei
                    latencies.append((received_us - sei) / 1000.0)
                if last_ts is not None and frame.timestamp_us <= last_ts:
                    summary["timestamps_increasing"] = False
                last_ts = frame.timestamp_us
        media.cancel()
    if latencies:
        latencies.sort()
        summary["latency_ms_p50"] = latencies[len(latencies) // 2]
    return summary


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("url", help="https://HOST:PORT/?query")
    parser.add_argument("--seconds", type=float, default=3.0, help="receive for at most this long")
    parser.add_argument("--frames", type=int, default=None, help="stop after this many frames")
    parser.add_argument("--out", required=True, help="Annex B dump of the received access units")
    parser.add_argument("--fingerprint", default=None, help="hex SHA-256 of the server certificate")
    args = parser.parse_args()
    summary = asyncio.run(run(args))
    print(json.dumps(summary), flush=True)
    return 0 if summary["frames"] > 0 else 1


if __name__ == "__main__":
    sys.exit(main())
