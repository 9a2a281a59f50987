//! The frame-clock SEI: every encoded access unit carries the wall-clock time at which the node
//! received its decoded source frame, so any viewer on a synchronised clock can measure edge
//! latency without trusting the node's own report.
//!
//! Layout (README, "Timestamps"): NAL type 6, payload type 5 (`user_data_unregistered`),
//! payload = [`FRAME_CLOCK_UUID`] then the time as 8 bytes big-endian, unsigned microseconds
//! since the Unix epoch.

use std::time::{SystemTime, UNIX_EPOCH};

use crate::annexb::{self, NAL_SEI};

/// The frame clock's now: microseconds since the Unix epoch, the unit of the SEI and of every
/// wall-clock stamp in edge-node (0 on a clock set before 1970).
pub fn unix_now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

/// UUID `e3d9c1a0-5b7f-4e4a-9c2d-6564676e6f64` identifying edge-node's frame-clock SEI.
pub const FRAME_CLOCK_UUID: [u8; 16] = [
    0xe3, 0xd9, 0xc1, 0xa0, 0x5b, 0x7f, 0x4e, 0x4a, 0x9c, 0x2d, 0x65, 0x64, 0x67, 0x6e, 0x6f, 0x64,
];

const PAYLOAD_USER_DATA_UNREGISTERED: u8 = 5;
const PAYLOAD_LEN: u8 = 24;

/// The SEI NAL unit (header included, start code not) carrying `unix_us`.
pub fn frame_clock_nal(unix_us: u64) -> Vec<u8> {
    let mut rbsp = Vec::with_capacity(2 + PAYLOAD_LEN as usize + 1);
    rbsp.push(PAYLOAD_USER_DATA_UNREGISTERED);
    rbsp.push(PAYLOAD_LEN);
    rbsp.extend_from_slice(&FRAME_CLOCK_UUID);
    rbsp.extend_from_slice(&unix_us.to_be_bytes());
    rbsp.push(0x80); // rbsp_trailing_bits
    let mut nal = vec![NAL_SEI]; // forbidden_zero_bit 0, nal_ref_idc 0
    nal.extend_from_slice(&annexb::escape_rbsp(&rbsp));
    nal
}

/// Stamps an access unit: returns it with the frame-clock SEI before its first slice.
pub fn stamp_access_unit(access_unit: &[u8], unix_us: u64) -> Vec<u8> {
    annexb::insert_before_first_slice(access_unit, &frame_clock_nal(unix_us))
}

/// Reads the frame-clock time from an access unit, if it carries one.
pub fn read_frame_clock(access_unit: &[u8]) -> Option<u64> {
    annexb::nal_units(access_unit)
        .filter(|n| annexb::nal_type(n) == NAL_SEI)
        .find_map(|n| parse_sei_messages(&annexb::unescape_rbsp(&n[1..])))
}

/// Walks the SEI messages of one NAL's RBSP looking for ours.
fn parse_sei_messages(rbsp: &[u8]) -> Option<u64> {
    let mut pos = 0;
    while pos < rbsp.len() && rbsp[pos] != 0x80 {
        let (payload_type, after_type) = read_ff_coded(rbsp, pos)?;
        let (payload_size, after_size) = read_ff_coded(rbsp, after_type)?;
        let end = after_size.checked_add(payload_size)?;
        let payload = rbsp.get(after_size..end)?;
        if payload_type == PAYLOAD_USER_DATA_UNREGISTERED as usize
            && payload.len() == PAYLOAD_LEN as usize
            && payload[..16] == FRAME_CLOCK_UUID
        {
            let time: [u8; 8] = payload[16..24].try_into().ok()?;
            return Some(u64::from_be_bytes(time));
        }
        pos = end;
    }
    None
}

/// SEI payload type and size are coded as a run of 0xFF bytes plus a final byte.
fn read_ff_coded(data: &[u8], mut pos: usize) -> Option<(usize, usize)> {
    let mut value = 0usize;
    loop {
        let b = *data.get(pos)?;
        pos += 1;
        value = value.checked_add(b as usize)?;
        if b != 0xff {
            return Some((value, pos));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn stamped_access_unit_reads_back() {
        let au = [0, 0, 0, 1, 0x67, 1, 2, 0, 0, 0, 1, 0x65, 0x88, 0x80];
        let stamped = stamp_access_unit(&au, 1_764_000_000_123_456);
        assert_eq!(read_frame_clock(&stamped), Some(1_764_000_000_123_456));
        assert_eq!(read_frame_clock(&au), None);
    }

    #[test]
    fn other_sei_messages_are_skipped() {
        // A recovery-point SEI (type 6, size 1) before ours in the same NAL.
        let mut rbsp = vec![6, 1, 0x84, PAYLOAD_USER_DATA_UNREGISTERED, PAYLOAD_LEN];
        rbsp.extend_from_slice(&FRAME_CLOCK_UUID);
        rbsp.extend_from_slice(&42u64.to_be_bytes());
        rbsp.push(0x80);
        assert_eq!(parse_sei_messages(&rbsp), Some(42));
    }

    proptest! {
        #[test]
        fn any_time_roundtrips(t in any::<u64>()) {
            let au = stamp_access_unit(&[0, 0, 1, 0x65, 0x88], t);
            prop_assert_eq!(read_frame_clock(&au), Some(t));
        }

        #[test]
        fn garbage_sei_never_panics(body in proptest::collection::vec(any::<u8>(), 0..128)) {
            let _ = parse_sei_messages(&body);
        }
    }
}
