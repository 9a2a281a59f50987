// The node's frame clock: every access unit carries an H.264 SEI user_data_unregistered message
// with the UUID below and the wall-clock time (microseconds since the Unix epoch, 8 bytes
// big-endian) at which the node received the source frame (README "Timestamps",
// edge-node/core/src/sei.rs). The page measures its own latency from it.

export const FRAME_CLOCK_UUID = Uint8Array.from([
  0xe3, 0xd9, 0xc1, 0xa0, 0x5b, 0x7f, 0x4e, 0x4a, 0x9c, 0x2d, 0x65, 0x64, 0x67, 0x6e, 0x6f, 0x64,
]);

const NAL_SEI = 6;
const PAYLOAD_USER_DATA_UNREGISTERED = 5;
const PAYLOAD_LEN = 24;
// The SEI precedes the slices; looking further than this into an access unit only burns time on
// slice data.
const MAX_SCAN_BYTES = 4096;

/** The frame-clock time in microseconds, or undefined when the access unit carries none. */
export function frameClockUs(accessUnit) {
  const end = Math.min(accessUnit.length, MAX_SCAN_BYTES);
  for (const [start, stop] of nalUnits(accessUnit, end)) {
    if ((accessUnit[start] & 0x1f) !== NAL_SEI) continue;
    const time = parseSei(unescapeRbsp(accessUnit.subarray(start + 1, stop)));
    if (time !== undefined) return time;
  }
  return undefined;
}

/** [start, end) of each NAL unit (header included, start code excluded) before `limit`. */
function* nalUnits(data, limit) {
  let start = -1;
  let i = 0;
  while (i + 2 < limit) {
    if (data[i] === 0 && data[i + 1] === 0 && data[i + 2] === 1) {
      if (start >= 0) yield [start, trimZeros(data, start, i)];
      i += 3;
      start = i;
    } else {
      i += 1;
    }
  }
  if (start >= 0 && start < limit) yield [start, limit];
}

// A 4-byte start code leaves a zero byte at the end of the previous NAL unit.
function trimZeros(data, start, end) {
  while (end > start && data[end - 1] === 0) end -= 1;
  return end;
}

/** Removes emulation-prevention bytes (00 00 03 -> 00 00). */
function unescapeRbsp(nal) {
  const out = new Uint8Array(nal.length);
  let n = 0;
  let zeros = 0;
  for (const byte of nal) {
    if (zeros >= 2 && byte === 3) {
      zeros = 0;
      continue;
    }
    zeros = byte === 0 ? zeros + 1 : 0;
    out[n++] = byte;
  }
  return out.subarray(0, n);
}

function parseSei(rbsp) {
  let pos = 0;
  while (pos < rbsp.length && rbsp[pos] !== 0x80) {
    const type = readFfCoded(rbsp, pos);
    if (!type) return undefined;
    const size = readFfCoded(rbsp, type.next);
    if (!size) return undefined;
    const end = size.next + size.value;
    if (end > rbsp.length) return undefined;
    if (
      type.value === PAYLOAD_USER_DATA_UNREGISTERED &&
      size.value === PAYLOAD_LEN &&
      FRAME_CLOCK_UUID.every((b, k) => rbsp[size.next + k] === b)
    ) {
      const view = new DataView(rbsp.buffer, rbsp.byteOffset + size.next + 16, 8);
      // Microseconds since 1970 stay below 2^53 for the next 280 years: a Number is exact.
      return Number(view.getBigUint64(0, false));
    }
    pos = end;
  }
  return undefined;
}

// SEI payload type and size: a run of 0xFF bytes plus a final byte, summed.
function readFfCoded(data, pos) {
  let value = 0;
  while (pos < data.length) {
    const b = data[pos++];
    value += b;
    if (b !== 0xff) return { value, next: pos };
  }
  return undefined;
}
