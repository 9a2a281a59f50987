//! The decoded stream's colour description, read from the decoder's caps, and the caps that
//! tell the encoder to write it into the stream's VUI.

use std::str::FromStr;

use edge_core::{ChromaSite, ColourMatrix, ColourRange, VideoColour};

/// What the caps say, with players' assumptions where they say nothing: limited range,
/// left-sited chroma, BT.709 for HD and larger, BT.601 for SD. avdec_h264 writes
/// `colorimetry=2:0:0:0` (limited, matrix unknown) for a stream whose VUI names no matrix,
/// and `chroma-site=mpeg2` when it names no site.
pub fn colour_from_caps(caps: &gst::CapsRef, width: u32, height: u32) -> VideoColour {
    let mut colour = VideoColour::assumed_for(width, height);
    let Some(s) = caps.structure(0) else {
        return colour;
    };
    if let Some(colorimetry) = s
        .get::<&str>("colorimetry")
        .ok()
        .and_then(|c| gst_video::VideoColorimetry::from_str(c).ok())
    {
        if colorimetry.range() == gst_video::VideoColorRange::Range0_255 {
            colour.range = ColourRange::Full;
        }
        match colorimetry.matrix() {
            gst_video::VideoColorMatrix::Bt601 | gst_video::VideoColorMatrix::Fcc => {
                colour.matrix = ColourMatrix::Bt601
            }
            gst_video::VideoColorMatrix::Bt709 | gst_video::VideoColorMatrix::Smpte240m => {
                colour.matrix = ColourMatrix::Bt709
            }
            gst_video::VideoColorMatrix::Bt2020 => {
                // Not converted to: BT.709's matrix is the nearest this node knows.
                tracing::warn!("BT.2020 source: overlays converted with BT.709's matrix");
            }
            _ => {}
        }
    }
    if let Ok(site) = s.get::<&str>("chroma-site") {
        colour.chroma_site = chroma_site_from_caps(site);
    }
    colour
}

/// GStreamer's chroma-site strings: the old names (`jpeg`, `mpeg2`, `dv`, `cosited`) and the
/// flag lists of 1.20 (`h-cosited`, `v-cosited+h-cosited`, ...).
fn chroma_site_from_caps(site: &str) -> ChromaSite {
    let flags: Vec<&str> = site.split('+').collect();
    let has = |f: &str| flags.contains(&f);
    let h = has("mpeg2") || has("h-cosited") || has("cosited") || has("dv");
    let v = has("v-cosited") || has("cosited") || has("dv");
    match (h, v) {
        (true, false) => ChromaSite::Left,
        (true, true) => ChromaSite::TopLeft,
        (false, false) => ChromaSite::Centre,
        // Vertically cosited only: nothing writes this; the middle is the nearer guess.
        (false, true) => ChromaSite::Centre,
    }
}

/// `colorimetry` and `chroma-site` caps values for raw video described by `colour`, which
/// x264enc writes into the VUI (colour_primaries, transfer, matrix, full range flag,
/// chroma_sample_loc_type). Primaries and transfer follow the matrix: this node never
/// converts between them, and sources that carry one carry the matching others.
pub fn caps_fields(colour: VideoColour) -> (String, &'static str) {
    let range = match colour.range {
        ColourRange::Limited => gst_video::VideoColorRange::Range16_235,
        ColourRange::Full => gst_video::VideoColorRange::Range0_255,
    };
    let colorimetry = match colour.matrix {
        ColourMatrix::Bt709 => gst_video::VideoColorimetry::new(
            range,
            gst_video::VideoColorMatrix::Bt709,
            gst_video::VideoTransferFunction::Bt709,
            gst_video::VideoColorPrimaries::Bt709,
        ),
        ColourMatrix::Bt601 => gst_video::VideoColorimetry::new(
            range,
            gst_video::VideoColorMatrix::Bt601,
            gst_video::VideoTransferFunction::Bt601,
            gst_video::VideoColorPrimaries::Smpte170m,
        ),
    };
    let site = match colour.chroma_site {
        ChromaSite::Left => "mpeg2",
        ChromaSite::Centre => "jpeg",
        ChromaSite::TopLeft => "cosited",
    };
    (colorimetry.to_string(), site)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caps(fields: &str) -> gst::Caps {
        crate::gst_util::init().unwrap();
        gst::Caps::from_str(&format!("video/x-raw, format=I420{fields}")).unwrap()
    }

    #[test]
    fn unsigned_streams_get_players_assumptions() {
        let hd = colour_from_caps(&caps(", colorimetry=(string)2:0:0:0"), 1280, 720);
        assert_eq!(hd, VideoColour::assumed_for(1280, 720));
        assert_eq!(hd.matrix, ColourMatrix::Bt709);
        let sd = colour_from_caps(&caps(""), 640, 480);
        assert_eq!(sd.matrix, ColourMatrix::Bt601);
        assert_eq!(sd.chroma_site, ChromaSite::Left);
    }

    #[test]
    fn signed_streams_are_taken_at_their_word() {
        let c = colour_from_caps(
            &caps(", colorimetry=(string)bt601, chroma-site=(string)jpeg"),
            1920,
            1080,
        );
        assert_eq!(c.matrix, ColourMatrix::Bt601);
        assert_eq!(c.chroma_site, ChromaSite::Centre);
        let c = colour_from_caps(
            &caps(", colorimetry=(string)1:3:5:1, chroma-site=(string)v-cosited+h-cosited"),
            640,
            360,
        );
        assert_eq!(c.matrix, ColourMatrix::Bt709);
        assert_eq!(c.range, ColourRange::Full);
        assert_eq!(c.chroma_site, ChromaSite::TopLeft);
    }

    #[test]
    fn caps_fields_round_trip() {
        for matrix in [ColourMatrix::Bt601, ColourMatrix::Bt709] {
            for range in [ColourRange::Limited, ColourRange::Full] {
                for chroma_site in [ChromaSite::Left, ChromaSite::Centre, ChromaSite::TopLeft] {
                    let colour = VideoColour {
                        matrix,
                        range,
                        chroma_site,
                    };
                    let (colorimetry, site) = caps_fields(colour);
                    let fields =
                        format!(", colorimetry=(string){colorimetry}, chroma-site=(string){site}");
                    // SD size: the matrix must come from the caps, not the assumption.
                    assert_eq!(colour_from_caps(&caps(&fields), 640, 360), colour);
                }
            }
        }
    }
}
