//! Errors of the card renderer. Fonts come from the operator's config and text from campaigns
//! and viewer tokens: every bad input is answered with one of these, never a panic.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum CardError {
    #[error(
        "no CJK card font found; searched: {}; install Debian's fonts-noto-cjk or configure font paths",
        display_paths(searched)
    )]
    NoSystemFont { searched: Vec<PathBuf> },
    #[error("no card font configured: the list of font paths is empty")]
    NoFontConfigured,
    #[error("card font {path} could not be read: {source}")]
    FontUnreadable {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("card font {path} holds no font face that could be parsed")]
    NoFaceInFont { path: PathBuf },
    #[error("output height {output_height_px} px is outside the supported {min}..={max} px")]
    OutputHeight {
        output_height_px: u32,
        min: u32,
        max: u32,
    },
    #[error("writing PNG {path}: {source}")]
    PngWrite {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("encoding PNG: {0}")]
    PngEncode(#[from] png::EncodingError),
}

fn display_paths(paths: &[PathBuf]) -> String {
    paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}
