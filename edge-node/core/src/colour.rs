//! How a stream's Y'CbCr code values mean colours: the matrix, the range and where chroma
//! samples sit. Read from the decoder (caps), used to convert overlays into the video's own
//! terms, to place chroma when scaling, and to tag the encoded stream (VUI) so that a player
//! decodes it the same way.

/// The Y'CbCr matrix (the luma coefficients Kr, Kb).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum ColourMatrix {
    /// ITU-R BT.601 (SD): Kr 0.299, Kb 0.114.
    Bt601,
    /// ITU-R BT.709 (HD and larger): Kr 0.2126, Kb 0.0722.
    #[default]
    Bt709,
}

/// Code values used for black..white.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum ColourRange {
    /// "TV" / studio swing: Y 16..=235, Cb and Cr 16..=240 (8 bits). What cameras and
    /// encoders write unless told otherwise.
    #[default]
    Limited,
    /// "PC" / JPEG: all of 0..=255.
    Full,
}

/// Where each 4:2:0 chroma sample sits relative to the 2x2 luma block it belongs to.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum ChromaSite {
    /// On the block's left luma column, vertically between its two rows: MPEG-2, and H.264's
    /// default when the VUI says nothing (chroma_sample_loc_type 0).
    #[default]
    Left,
    /// In the middle of the block: MPEG-1, JPEG (type 1).
    Centre,
    /// On the block's top-left luma sample: BT.2020 / HEVC UHD sources (type 2).
    TopLeft,
}

impl ChromaSite {
    /// The chroma sample's position from the top-left corner of its 2x2 luma block, in luma
    /// pixels along (x, y), pixels being unit squares: 1.0 is the block's middle, 0.5 the
    /// centre of its first column or row.
    pub fn offset_in_block(self) -> (f64, f64) {
        match self {
            Self::Left => (0.5, 1.0),
            Self::Centre => (1.0, 1.0),
            Self::TopLeft => (0.5, 0.5),
        }
    }
}

/// A stream's colour description.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct VideoColour {
    pub matrix: ColourMatrix,
    pub range: ColourRange,
    pub chroma_site: ChromaSite,
}

impl VideoColour {
    /// The matrix to assume for a stream that does not say: BT.709 for HD and larger,
    /// BT.601 for SD, as players (ffmpeg, mpv, browsers) decide. A 1280-wide or taller than
    /// 576-line picture is HD.
    pub fn assumed_matrix(width: u32, height: u32) -> ColourMatrix {
        if width >= 1280 || height > 576 {
            ColourMatrix::Bt709
        } else {
            ColourMatrix::Bt601
        }
    }

    /// Limited range, left-sited chroma and the matrix players assume for this size: what
    /// an H.264 stream without colour information means.
    pub fn assumed_for(width: u32, height: u32) -> Self {
        Self {
            matrix: Self::assumed_matrix(width, height),
            range: ColourRange::Limited,
            chroma_site: ChromaSite::Left,
        }
    }

    /// (Kr, Kb) of the matrix.
    pub fn luma_coefficients(&self) -> (f64, f64) {
        match self.matrix {
            ColourMatrix::Bt601 => (0.299, 0.114),
            ColourMatrix::Bt709 => (0.2126, 0.0722),
        }
    }

    /// Non-linear R'G'B' in 0..=1 to 8-bit Y'CbCr code values, unrounded.
    pub fn rgb_to_ycbcr(&self, rgb: [f64; 3]) -> [f64; 3] {
        let (kr, kb) = self.luma_coefficients();
        let [r, g, b] = rgb;
        let y = kr * r + (1.0 - kr - kb) * g + kb * b;
        let pb = (b - y) / (2.0 * (1.0 - kb));
        let pr = (r - y) / (2.0 * (1.0 - kr));
        match self.range {
            ColourRange::Limited => [16.0 + 219.0 * y, 128.0 + 224.0 * pb, 128.0 + 224.0 * pr],
            ColourRange::Full => [255.0 * y, 128.0 + 255.0 * pb, 128.0 + 255.0 * pr],
        }
    }

    /// 8-bit Y'CbCr code values to non-linear R'G'B' in 0..=1 (not clamped).
    pub fn ycbcr_to_rgb(&self, ycbcr: [f64; 3]) -> [f64; 3] {
        let (kr, kb) = self.luma_coefficients();
        let [y, cb, cr] = ycbcr;
        let (y, pb, pr) = match self.range {
            ColourRange::Limited => (
                (y - 16.0) / 219.0,
                (cb - 128.0) / 224.0,
                (cr - 128.0) / 224.0,
            ),
            ColourRange::Full => (y / 255.0, (cb - 128.0) / 255.0, (cr - 128.0) / 255.0),
        };
        let r = y + 2.0 * (1.0 - kr) * pr;
        let b = y + 2.0 * (1.0 - kb) * pb;
        let g = (y - kr * r - kb * b) / (1.0 - kr - kb);
        [r, g, b]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hd_is_assumed_bt709_and_sd_bt601() {
        assert_eq!(VideoColour::assumed_matrix(1920, 1080), ColourMatrix::Bt709);
        assert_eq!(VideoColour::assumed_matrix(1280, 720), ColourMatrix::Bt709);
        assert_eq!(VideoColour::assumed_matrix(720, 1280), ColourMatrix::Bt709);
        assert_eq!(VideoColour::assumed_matrix(720, 576), ColourMatrix::Bt601);
        assert_eq!(VideoColour::assumed_matrix(640, 360), ColourMatrix::Bt601);
    }

    #[test]
    fn published_code_values() {
        // BT.709 limited: 75% colour bars' red is (51, 109, 212) (SMPTE RP 219); BT.601
        // limited full red is (81, 90, 240).
        let bt709 = VideoColour::default();
        let red75 = bt709.rgb_to_ycbcr([0.75, 0.0, 0.0]).map(f64::round);
        assert_eq!(red75, [51.0, 109.0, 212.0]);
        let bt601 = VideoColour {
            matrix: ColourMatrix::Bt601,
            ..VideoColour::default()
        };
        assert_eq!(
            bt601.rgb_to_ycbcr([1.0, 0.0, 0.0]).map(f64::round),
            [81.0, 90.0, 240.0]
        );
        let full = VideoColour {
            range: ColourRange::Full,
            ..bt601
        };
        assert_eq!(
            full.rgb_to_ycbcr([1.0, 1.0, 1.0]).map(f64::round),
            [255.0, 128.0, 128.0]
        );
        for colour in [bt709, bt601, full] {
            let back = colour.ycbcr_to_rgb(colour.rgb_to_ycbcr([0.894, 0.0, 0.169]));
            for (a, b) in back.iter().zip([0.894, 0.0, 0.169]) {
                assert!((a - b).abs() < 1e-12);
            }
        }
    }
}
