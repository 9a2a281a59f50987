//! Which font files the cards use. Only these files are loaded: no fontconfig and no scan of
//! the system's font folders, which costs seconds at start and makes output depend on the host.

use std::path::{Path, PathBuf};

use cosmic_text::fontdb;

use crate::error::CardError;

/// Folders where distributions install Noto Sans CJK (Debian/Ubuntu `fonts-noto-cjk` first).
const NOTO_CJK_FOLDERS: &[&str] = &[
    "/usr/share/fonts/opentype/noto",
    "/usr/share/fonts/noto-cjk",
    "/usr/share/fonts/google-noto-cjk",
    "/usr/share/fonts/truetype/noto",
];
const NOTO_CJK_REGULAR: &str = "NotoSansCJK-Regular.ttc";
const NOTO_CJK_BOLD: &str = "NotoSansCJK-Bold.ttc";

/// Font files for the cards, in order: the family of the first file's faces draws the text
/// (Simplified Chinese preferred inside a CJK collection); later files add weights (bold) and
/// fallback glyphs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CardFonts {
    pub paths: Vec<PathBuf>,
}

impl CardFonts {
    /// Noto Sans CJK Regular and, where installed beside it, Bold, from the usual system folders.
    pub fn noto_cjk_system() -> Result<Self, CardError> {
        Self::noto_cjk_in(NOTO_CJK_FOLDERS.iter().map(Path::new))
    }

    /// Noto Sans CJK from the first of `folders` that holds the Regular collection.
    pub fn noto_cjk_in<'a>(folders: impl IntoIterator<Item = &'a Path>) -> Result<Self, CardError> {
        let mut searched = Vec::new();
        for folder in folders {
            let regular = folder.join(NOTO_CJK_REGULAR);
            if regular.is_file() {
                let bold = folder.join(NOTO_CJK_BOLD);
                let mut paths = vec![regular];
                if bold.is_file() {
                    paths.push(bold);
                }
                return Ok(Self { paths });
            }
            searched.push(regular);
        }
        Err(CardError::NoSystemFont { searched })
    }
}

/// The loaded faces and the family name that selects them.
pub(crate) struct LoadedFonts {
    pub database: fontdb::Database,
    pub family: String,
}

pub(crate) fn load(fonts: &CardFonts) -> Result<LoadedFonts, CardError> {
    let mut database = fontdb::Database::new();
    let mut primary_family = None;
    for path in &fonts.paths {
        let unreadable = |source| CardError::FontUnreadable {
            path: path.clone(),
            source,
        };
        // Opened here first so a missing file is reported with its own io error rather than
        // silently skipped, as fontdb does for data it cannot parse.
        let metadata = std::fs::metadata(path).map_err(unreadable)?;
        if !metadata.is_file() {
            return Err(unreadable(std::io::Error::other("not a regular file")));
        }
        let faces_before = database.len();
        database.load_font_file(path).map_err(unreadable)?;
        if database.len() == faces_before {
            return Err(CardError::NoFaceInFont { path: path.clone() });
        }
        if primary_family.is_none() {
            primary_family = Some(preferred_family(&database, path));
        }
    }
    let family = primary_family
        .flatten()
        .ok_or(CardError::NoFontConfigured)?;
    Ok(LoadedFonts { database, family })
}

/// The family to draw with among the faces loaded from `path`: a CJK collection holds one
/// family per region (SC, TC, HK, JP, KR) whose Han glyphs differ; Simplified Chinese suits
/// the mainland campaigns, and the first family is taken otherwise.
fn preferred_family(database: &fontdb::Database, path: &Path) -> Option<String> {
    let families: Vec<&str> = database
        .faces()
        .filter(|face| matches!(&face.source, fontdb::Source::File(p) if p == path))
        .filter_map(|face| face.families.first().map(|(name, _)| name.as_str()))
        .collect();
    families
        .iter()
        .find(|name| name.ends_with(" SC") && !name.contains("Mono"))
        .or_else(|| families.first())
        .map(|name| name.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_system_font_names_every_path_searched() {
        let folders = [Path::new("/nonexistent/a"), Path::new("/nonexistent/b")];
        let error = CardFonts::noto_cjk_in(folders).unwrap_err();
        let message = error.to_string();
        assert!(
            message.contains("/nonexistent/a/NotoSansCJK-Regular.ttc"),
            "{message}"
        );
        assert!(
            message.contains("/nonexistent/b/NotoSansCJK-Regular.ttc"),
            "{message}"
        );
        assert!(message.contains("fonts-noto-cjk"), "{message}");
    }

    #[test]
    fn empty_font_list_is_refused() {
        let error = load(&CardFonts { paths: vec![] }).err().unwrap();
        assert!(matches!(error, CardError::NoFontConfigured));
    }

    #[test]
    fn a_file_that_is_no_font_is_refused() {
        let path =
            std::env::temp_dir().join(format!("edge-cards-not-a-font-{}.ttf", std::process::id()));
        std::fs::write(&path, b"definitely not a font").unwrap();
        let error = load(&CardFonts {
            paths: vec![path.clone()],
        })
        .err()
        .unwrap();
        std::fs::remove_file(&path).unwrap();
        assert!(matches!(error, CardError::NoFaceInFont { .. }), "{error}");
        assert!(error.to_string().contains("edge-cards-not-a-font"));
    }

    #[test]
    fn a_folder_is_refused_as_a_font() {
        let error = load(&CardFonts {
            paths: vec![std::env::temp_dir()],
        })
        .err()
        .unwrap();
        assert!(matches!(error, CardError::FontUnreadable { .. }), "{error}");
    }
}
