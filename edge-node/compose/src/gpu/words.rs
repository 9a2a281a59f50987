//! How an I420 frame sits in a GPU storage buffer of u32 words.
//!
//! WGSL can only load and store whole words, so each plane starts on a word boundary and each
//! row is padded to whole words. Then one shader invocation owns one word and no two
//! invocations write the same word. Rows of a tight frame whose luma width is a multiple of 8
//! (1280, 1920, 3840, ...) are already word-aligned in every plane, and the GPU layout is
//! byte-for-byte the tight layout: upload and readback are one memcpy. Other widths are
//! repacked row by row while copying, which the upload and readback copies do anyway.

use edge_core::PlaneLayout;

use super::params::PlaneParams;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WordLayout {
    pub frame: PlaneLayout,
    /// Y, U, V.
    pub planes: [PlaneParams; 3],
    pub total_words: u32,
}

impl WordLayout {
    /// `frame` was checked by `plan::checked_layout`, so every count here fits u32.
    pub fn new(frame: PlaneLayout) -> Self {
        let sizes = [
            (frame.width, frame.height),
            (frame.chroma_width(), frame.chroma_height()),
            (frame.chroma_width(), frame.chroma_height()),
        ];
        let mut offset_words = 0;
        let planes = sizes.map(|(width, height)| {
            let stride_words = width.div_ceil(4);
            let plane = PlaneParams {
                offset_words,
                stride_words,
                width,
                height,
            };
            offset_words += stride_words * height;
            plane
        });
        Self {
            frame,
            planes,
            total_words: offset_words,
        }
    }

    pub fn size_bytes(&self) -> u64 {
        u64::from(self.total_words) * 4
    }

    /// True when the word layout is the tight layout.
    pub fn is_tight(&self) -> bool {
        self.planes.iter().all(|p| p.stride_words * 4 == p.width)
    }

    /// Calls `copy(tight_range, padded_byte_offset)` for each row of each plane.
    pub fn for_each_row(&self, mut copy: impl FnMut(std::ops::Range<usize>, usize)) {
        let tight_offsets = [0, self.frame.u_offset(), self.frame.v_offset()];
        for (plane, tight_offset) in self.planes.iter().zip(tight_offsets) {
            let width = plane.width as usize;
            for row in 0..plane.height as usize {
                let tight = tight_offset + row * width;
                let padded = (plane.offset_words as usize + row * plane.stride_words as usize) * 4;
                copy(tight..tight + width, padded);
            }
        }
    }

    /// Tight I420 bytes out of a buffer in this layout.
    pub fn unpack(&self, padded: &[u8]) -> Vec<u8> {
        if self.is_tight() {
            return padded[..self.frame.total_len()].to_vec();
        }
        let mut tight = vec![0; self.frame.total_len()];
        self.for_each_row(|range, padded_offset| {
            let len = range.len();
            tight[range].copy_from_slice(&padded[padded_offset..padded_offset + len]);
        });
        tight
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn widths_multiple_of_8_are_tight() {
        let l = WordLayout::new(PlaneLayout::new(1280, 720).unwrap());
        assert!(l.is_tight());
        assert_eq!(l.size_bytes() as usize, l.frame.total_len());
        assert_eq!(l.planes[2].offset_words as usize * 4, l.frame.v_offset());
    }

    #[test]
    fn odd_chroma_widths_are_padded_and_round_trip() {
        let frame = PlaneLayout::new(322, 182).unwrap();
        let l = WordLayout::new(frame);
        assert!(!l.is_tight());
        // Luma 322 -> 81 words; chroma 161 -> 41 words.
        assert_eq!(l.planes[0].stride_words, 81);
        assert_eq!(l.planes[1].stride_words, 41);
        assert_eq!(l.planes[1].offset_words, 81 * 182);
        assert_eq!(l.total_words, 81 * 182 + 2 * 41 * 91);

        let tight: Vec<u8> = (0..frame.total_len()).map(|i| (i % 253) as u8).collect();
        let mut padded = vec![0; l.size_bytes() as usize];
        l.for_each_row(|range, offset| {
            let len = range.len();
            padded[offset..offset + len].copy_from_slice(&tight[range]);
        });
        assert_eq!(l.unpack(&padded), tight);
    }
}
