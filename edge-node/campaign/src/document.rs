//! Any serde type read from TOML or YAML text through the located parser, so that other files
//! (the node config) use the same YAML parser as campaign files and say where their problems
//! are in the same way.

use crate::located::{self, KeyPath, Pos};
use crate::Format;
use serde::de::DeserializeOwned;

/// One problem of a document: where it is (1-based line and column, when the text says) and
/// what. `path` is the key path of a wrongly typed value (`encode.bitrate_kbps`), empty for a
/// syntax error.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DocumentProblem {
    pub line: Option<usize>,
    pub col: Option<usize>,
    pub path: String,
    pub message: String,
}

impl DocumentProblem {
    fn at(pos: Option<Pos>, path: String, message: String) -> Self {
        Self {
            line: pos.map(|p| p.line),
            col: pos.map(|p| p.col),
            path,
            message,
        }
    }
}

/// Parses `text` and deserializes it as `T`. Syntax errors are all reported (a YAML file's
/// duplicate keys, too deep nesting and runaway aliases each count); otherwise the first value
/// that does not fit `T` is, at its key path.
pub fn read_document<T: DeserializeOwned>(
    text: &str,
    format: Format,
) -> Result<T, Vec<DocumentProblem>> {
    let doc = located::parse(text, format).map_err(|errors| {
        errors
            .into_iter()
            .map(|e| DocumentProblem::at(e.pos, String::new(), e.message))
            .collect::<Vec<_>>()
    })?;
    doc.deserialize(&KeyPath::default())
        .map_err(|(path, message)| {
            vec![DocumentProblem::at(
                doc.locate(&path),
                path.to_string(),
                message,
            )]
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Encode {
        bitrate_kbps: u32,
        #[serde(default)]
        gop_ms: u64,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Config {
        encode: Encode,
    }

    #[test]
    fn yaml_reads_into_any_type() {
        let c: Config = read_document("encode:\n  bitrate_kbps: 2500\n", Format::Yaml).unwrap();
        assert_eq!(
            c.encode,
            Encode {
                bitrate_kbps: 2500,
                gop_ms: 0
            }
        );
    }

    #[test]
    fn a_wrong_type_is_located_at_its_value_and_an_unknown_key_at_the_key() {
        let e =
            read_document::<Config>("encode:\n  bitrate_kbps: fast\n", Format::Yaml).unwrap_err();
        assert_eq!((e[0].line, e[0].col), (Some(2), Some(17)), "{e:?}");
        assert_eq!(e[0].path, "encode.bitrate_kbps");
        assert!(e[0].message.contains("expected u32"), "{e:?}");
        let e = read_document::<Config>("encode:\n  bitrate_kbps: 1\n  gop: 5\n", Format::Yaml)
            .unwrap_err();
        assert_eq!((e[0].line, e[0].col), (Some(3), Some(3)), "{e:?}");
        assert!(e[0].message.contains("unknown field `gop`"), "{e:?}");
    }

    #[test]
    fn every_syntax_problem_is_reported() {
        let e = read_document::<serde_json::Value>("a: 1\na: 2\nb: 1\nb: 3\n", Format::Yaml)
            .unwrap_err();
        let lines: Vec<_> = e.iter().map(|p| p.line).collect();
        assert_eq!(lines, [Some(2), Some(4)], "{e:?}");
        let e =
            read_document::<serde_json::Value>("a: 1\nb: *nowhere\n", Format::Yaml).unwrap_err();
        assert_eq!(e[0].line, Some(2), "{e:?}");
    }
}
