//! H.264 Annex B framing: splitting a byte stream into NAL units and access units.
//!
//! The encoder hands us Annex B with 3- or 4-byte start codes and, under x264's zerolatency
//! tune, several slices per frame. Delivery needs whole access units (one MoQ frame each) and
//! to know which ones are IDRs (each IDR opens a MoQ group).

pub const NAL_SLICE: u8 = 1;
pub const NAL_IDR: u8 = 5;
pub const NAL_SEI: u8 = 6;
pub const NAL_SPS: u8 = 7;
pub const NAL_PPS: u8 = 8;
pub const NAL_AUD: u8 = 9;

/// The NAL units of an Annex B buffer, without their start codes.
pub fn nal_units(data: &[u8]) -> NalUnits<'_> {
    NalUnits {
        data,
        pos: find_start_code(data, 0)
            .map(|(_, end)| end)
            .unwrap_or(data.len()),
    }
}

pub struct NalUnits<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Iterator for NalUnits<'a> {
    type Item = &'a [u8];
    fn next(&mut self) -> Option<&'a [u8]> {
        // A loop, not recursion: bytes from the network can hold millions of empty NAL units.
        while self.pos < self.data.len() {
            let start = self.pos;
            let (nal_end, next) = match find_start_code(self.data, start) {
                Some((sc_start, sc_end)) => (sc_start, sc_end),
                None => (self.data.len(), self.data.len()),
            };
            self.pos = next;
            // Trailing zero bytes belong to the next start code (a 4-byte one), not to the NAL.
            let mut end = nal_end;
            while end > start && self.data[end - 1] == 0 {
                end -= 1;
            }
            if end > start {
                return Some(&self.data[start..end]);
            }
        }
        None
    }
}

/// Finds the next `00 00 01` at or after `from`; returns (start of the code, first byte after).
fn find_start_code(data: &[u8], from: usize) -> Option<(usize, usize)> {
    let mut i = from;
    while i + 3 <= data.len() {
        if data[i] == 0 && data[i + 1] == 0 && data[i + 2] == 1 {
            return Some((i, i + 3));
        }
        i += 1;
    }
    None
}

pub fn nal_type(nal: &[u8]) -> u8 {
    nal.first().map(|b| b & 0x1f).unwrap_or(0)
}

pub fn is_vcl(nal: &[u8]) -> bool {
    matches!(nal_type(nal), NAL_SLICE..=NAL_IDR)
}

/// True when the slice is the first of its picture: `first_mb_in_slice` is ue(v) coded as the
/// first field of the slice header, and ue(v) == 0 is the single bit `1`.
pub fn starts_picture(nal: &[u8]) -> bool {
    is_vcl(nal) && nal.get(1).is_some_and(|b| b & 0x80 != 0)
}

/// True when the access unit holds an IDR slice.
pub fn is_idr(access_unit: &[u8]) -> bool {
    nal_units(access_unit).any(|n| nal_type(n) == NAL_IDR)
}

/// Splits an Annex B stream into access units, following H.264 7.4.1.2.3: a new access unit
/// starts at an AUD, SPS, PPS or SEI that follows a slice, or at a slice whose
/// `first_mb_in_slice` is zero after a slice of the previous picture.
pub fn split_access_units(data: &[u8]) -> Vec<Vec<u8>> {
    let mut units: Vec<Vec<u8>> = Vec::new();
    let mut current: Vec<u8> = Vec::new();
    let mut seen_slice = false;
    for nal in nal_units(data) {
        let opens_new = match nal_type(nal) {
            NAL_AUD | NAL_SPS | NAL_PPS | NAL_SEI => seen_slice,
            NAL_SLICE | NAL_IDR => seen_slice && starts_picture(nal),
            _ => false,
        };
        if opens_new && !current.is_empty() {
            units.push(std::mem::take(&mut current));
            seen_slice = false;
        }
        if is_vcl(nal) {
            seen_slice = true;
        }
        current.extend_from_slice(&[0, 0, 0, 1]);
        current.extend_from_slice(nal);
    }
    if !current.is_empty() {
        units.push(current);
    }
    units
}

/// Re-emits an access unit with `nal` (no start code) inserted before its first slice, where
/// H.264 requires SEI messages to stand. Every NAL is written with a 4-byte start code.
pub fn insert_before_first_slice(access_unit: &[u8], nal: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(access_unit.len() + nal.len() + 8);
    let mut inserted = false;
    for unit in nal_units(access_unit) {
        if !inserted && is_vcl(unit) {
            out.extend_from_slice(&[0, 0, 0, 1]);
            out.extend_from_slice(nal);
            inserted = true;
        }
        out.extend_from_slice(&[0, 0, 0, 1]);
        out.extend_from_slice(unit);
    }
    if !inserted {
        out.extend_from_slice(&[0, 0, 0, 1]);
        out.extend_from_slice(nal);
    }
    out
}

/// Adds emulation-prevention bytes so that the payload never contains a start code.
pub fn escape_rbsp(rbsp: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(rbsp.len() + rbsp.len() / 64 + 2);
    let mut zeros = 0;
    for &b in rbsp {
        if zeros >= 2 && b <= 3 {
            out.push(3);
            zeros = 0;
        }
        out.push(b);
        zeros = if b == 0 { zeros + 1 } else { 0 };
    }
    out
}

/// Removes emulation-prevention bytes (`00 00 03` -> `00 00`).
pub fn unescape_rbsp(ebsp: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(ebsp.len());
    let mut zeros = 0;
    for &b in ebsp {
        if zeros >= 2 && b == 3 {
            zeros = 0;
            continue;
        }
        out.push(b);
        zeros = if b == 0 { zeros + 1 } else { 0 };
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn millions_of_empty_nal_units_end_without_exhausting_the_stack() {
        let mut data = [0u8, 0, 1].repeat(2_000_000);
        data.extend_from_slice(&[0x65, 0x88]);
        assert_eq!(
            nal_units(&data).collect::<Vec<_>>(),
            vec![&[0x65u8, 0x88][..]]
        );
        assert_eq!(nal_units(&[0, 0, 1].repeat(1_000_000)).count(), 0);
    }
    use proptest::prelude::*;

    fn nal(kind: u8, first_mb_zero: bool, body: &[u8]) -> Vec<u8> {
        let mut v = vec![0x60 | kind, if first_mb_zero { 0x88 } else { 0x48 }];
        v.extend_from_slice(body);
        v
    }

    fn stream(nals: &[(Vec<u8>, bool)]) -> Vec<u8> {
        let mut out = Vec::new();
        for (n, four) in nals {
            if *four {
                out.push(0);
            }
            out.extend_from_slice(&[0, 0, 1]);
            out.extend_from_slice(n);
        }
        out
    }

    #[test]
    fn splits_nal_units_with_mixed_start_codes() {
        let data = stream(&[
            (vec![0x67, 1, 2], true),
            (vec![0x68, 3], false),
            (vec![0x65, 0x88], false),
        ]);
        let units: Vec<_> = nal_units(&data).collect();
        assert_eq!(
            units,
            vec![&[0x67, 1, 2][..], &[0x68, 3][..], &[0x65, 0x88][..]]
        );
    }

    #[test]
    fn groups_multi_slice_pictures_into_access_units() {
        let data = stream(&[
            (vec![0x67, 0xaa], true),
            (vec![0x68, 0xbb], false),
            (nal(NAL_IDR, true, &[1]), false),
            (nal(NAL_IDR, false, &[2]), false),
            (nal(NAL_SLICE, true, &[3]), false),
            (nal(NAL_SLICE, false, &[4]), false),
            (nal(NAL_SLICE, true, &[5]), false),
        ]);
        let aus = split_access_units(&data);
        assert_eq!(aus.len(), 3);
        assert!(is_idr(&aus[0]));
        assert!(!is_idr(&aus[1]));
        assert_eq!(nal_units(&aus[0]).count(), 4);
        assert_eq!(nal_units(&aus[1]).count(), 2);
        assert_eq!(nal_units(&aus[2]).count(), 1);
    }

    #[test]
    fn inserts_before_first_slice() {
        let au = stream(&[(vec![0x67, 1], true), (nal(NAL_IDR, true, &[9]), true)]);
        let out = insert_before_first_slice(&au, &[0x06, 5, 0x80]);
        let types: Vec<u8> = nal_units(&out).map(nal_type).collect();
        assert_eq!(types, vec![NAL_SPS, NAL_SEI, NAL_IDR]);
    }

    proptest! {
        #[test]
        fn escape_roundtrips_and_never_emits_start_codes(rbsp in proptest::collection::vec(0u8..5, 0..200)) {
            let escaped = escape_rbsp(&rbsp);
            prop_assert!(find_start_code(&escaped, 0).is_none());
            prop_assert!(!escaped.windows(3).any(|w| w == [0, 0, 0]));
            prop_assert_eq!(unescape_rbsp(&escaped), rbsp);
        }

        #[test]
        fn nal_units_never_panic_on_garbage(data in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = split_access_units(&data);
            for n in nal_units(&data) { let _ = starts_picture(n); }
        }
    }
}
