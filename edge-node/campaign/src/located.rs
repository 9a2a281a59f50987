//! A parsed document that remembers where every key and value was.
//!
//! serde alone says where a *syntax* error is, but not where a value is that turns out wrong
//! later (an unknown zone, an unclosed ring). So both formats are first read into this tree,
//! whose nodes carry their line and column; the typed model is deserialized from it piece by
//! piece, and every problem found afterwards is located by its key path.

use crate::problem::line_col;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::collections::HashMap;
use std::fmt;
use std::path::Path;
use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};
use yaml_rust2::Yaml;

/// The two file formats of a campaign file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    Toml,
    Yaml,
}

impl Format {
    /// YAML for `.yaml`/`.yml`, TOML otherwise (the node config's rule).
    pub fn from_path(path: &Path) -> Self {
        match path.extension().and_then(|e| e.to_str()) {
            Some("yaml" | "yml") => Format::Yaml,
            _ => Format::Toml,
        }
    }
}

/// 1-based line and column in the source text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Pos {
    pub line: usize,
    pub col: usize,
}

#[derive(Clone, Debug)]
pub(crate) enum Node {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Seq(Vec<Located>),
    Map(Vec<Entry>),
}

#[derive(Clone, Debug)]
pub(crate) struct Entry {
    pub key: String,
    pub key_pos: Option<Pos>,
    pub value: Located,
}

/// A value and where it starts (for a table, its header; else where its key is).
#[derive(Clone, Debug)]
pub(crate) struct Located {
    pub pos: Option<Pos>,
    pub node: Node,
}

/// One step of a key path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Seg {
    Key(String),
    Index(usize),
}

/// A key path such as `zones[1].geofence.coordinates[0]`. `at_key` says a problem is about
/// the last key itself (an unknown key), so it is located at the key rather than its value.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct KeyPath(pub Vec<Seg>, pub bool);

impl KeyPath {
    pub fn key(&self, key: &str) -> KeyPath {
        let mut p = self.clone();
        p.0.push(Seg::Key(key.to_string()));
        p
    }

    pub fn index(&self, index: usize) -> KeyPath {
        let mut p = self.clone();
        p.0.push(Seg::Index(index));
        p
    }

    /// This path, for a problem with the key rather than its value.
    pub fn the_key(mut self) -> KeyPath {
        self.1 = true;
        self
    }
}

impl fmt::Display for KeyPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, seg) in self.0.iter().enumerate() {
            match seg {
                Seg::Key(k) if i == 0 => write!(f, "{k}")?,
                Seg::Key(k) => write!(f, ".{k}")?,
                Seg::Index(n) => write!(f, "[{n}]")?,
            }
        }
        Ok(())
    }
}

/// A syntax error: where (when the parser knows) and what.
#[derive(Debug)]
pub(crate) struct SyntaxError {
    pub pos: Option<Pos>,
    pub message: String,
}

impl Located {
    pub fn get(&self, key: &str) -> Option<&Located> {
        match &self.node {
            Node::Map(entries) => entries.iter().find(|e| e.key == key).map(|e| &e.value),
            _ => None,
        }
    }

    /// Where `path` is, or where the deepest part of it that exists is (a missing key is
    /// reported at the table that should hold it).
    pub fn locate(&self, path: &KeyPath) -> Option<Pos> {
        let mut here = self;
        let mut best = self.pos;
        for (i, seg) in path.0.iter().enumerate() {
            let last = i + 1 == path.0.len();
            let next = match (seg, &here.node) {
                (Seg::Key(k), Node::Map(entries)) => {
                    let entry = entries.iter().find(|e| &e.key == k);
                    if let (true, true, Some(key_pos)) =
                        (last, path.1, entry.and_then(|e| e.key_pos))
                    {
                        return Some(key_pos);
                    }
                    entry.map(|e| &e.value)
                }
                (Seg::Index(i), Node::Seq(items)) => items.get(*i),
                _ => None,
            };
            let Some(next) = next else { break };
            here = next;
            best = here.pos.or(best);
        }
        best
    }

    /// How many values this is, itself included.
    fn size(&self) -> usize {
        1 + match &self.node {
            Node::Seq(items) => items.iter().map(Located::size).sum(),
            Node::Map(entries) => entries.iter().map(|e| e.value.size()).sum(),
            _ => 0,
        }
    }

    /// This value as `T`; a type error says the key path (below `path`, where this value is)
    /// of what is wrong, and an unknown key is located at the key rather than its value.
    pub fn deserialize<T: DeserializeOwned>(&self, path: &KeyPath) -> Result<T, (KeyPath, String)> {
        serde_path_to_error::deserialize::<_, T>(self).map_err(|e| {
            let mut at = path.clone();
            for seg in e.path().iter() {
                at = match seg {
                    serde_path_to_error::Segment::Seq { index } => at.index(*index),
                    serde_path_to_error::Segment::Map { key } => at.key(key),
                    serde_path_to_error::Segment::Enum { .. }
                    | serde_path_to_error::Segment::Unknown => at,
                };
            }
            let message = e.into_inner().to_string();
            if message.starts_with("unknown field") {
                at = at.the_key();
            }
            (at, message)
        })
    }
}

pub(crate) fn parse(text: &str, format: Format) -> Result<Located, Vec<SyntaxError>> {
    match format {
        Format::Toml => parse_toml(text).map_err(|e| vec![e]),
        Format::Yaml => parse_yaml(text),
    }
}

fn pos_at(text: &str, span: Option<std::ops::Range<usize>>) -> Option<Pos> {
    span.map(|s| {
        let (line, col) = line_col(text, s.start);
        Pos { line, col }
    })
}

fn parse_toml(text: &str) -> Result<Located, SyntaxError> {
    let doc = toml_edit::ImDocument::parse(text).map_err(|e| SyntaxError {
        pos: pos_at(text, e.span()),
        message: e.message().trim_end().to_string(),
    })?;
    Ok(Located {
        pos: Some(Pos { line: 1, col: 1 }),
        node: toml_table(text, doc.as_table()),
    })
}

fn toml_table(text: &str, table: &toml_edit::Table) -> Node {
    Node::Map(
        table
            .iter()
            .map(|(key, item)| {
                let key_pos = pos_at(text, table.key(key).and_then(|k| k.span()));
                let mut value = toml_item(text, item);
                value.pos = value.pos.or(key_pos);
                Entry {
                    key: key.to_string(),
                    key_pos,
                    value,
                }
            })
            .collect(),
    )
}

fn toml_item(text: &str, item: &toml_edit::Item) -> Located {
    use toml_edit::Item;
    let node = match item {
        Item::None => Node::Null,
        Item::Value(v) => return toml_value(text, v),
        Item::Table(t) => toml_table(text, t),
        Item::ArrayOfTables(a) => Node::Seq(
            a.iter()
                .map(|t| Located {
                    pos: pos_at(text, t.span()),
                    node: toml_table(text, t),
                })
                .collect(),
        ),
    };
    Located {
        pos: pos_at(text, item.span()),
        node,
    }
}

fn toml_value(text: &str, value: &toml_edit::Value) -> Located {
    use toml_edit::Value;
    let node = match value {
        Value::String(s) => Node::Str(s.value().clone()),
        Value::Integer(i) => Node::Int(*i.value()),
        Value::Float(x) => Node::Float(*x.value()),
        Value::Boolean(b) => Node::Bool(*b.value()),
        // Schedules are RFC 3339 text; a bare TOML date-time reads the same as a quoted one.
        Value::Datetime(d) => Node::Str(d.value().to_string()),
        Value::Array(a) => Node::Seq(a.iter().map(|v| toml_value(text, v)).collect()),
        Value::InlineTable(t) => Node::Map(
            t.iter()
                .map(|(key, v)| {
                    let key_pos = pos_at(text, t.key(key).and_then(|k| k.span()));
                    let mut value = toml_value(text, v);
                    value.pos = value.pos.or(key_pos);
                    Entry {
                        key: key.to_string(),
                        key_pos,
                        value,
                    }
                })
                .collect(),
        ),
    };
    Located {
        pos: pos_at(text, value.span()),
        node,
    }
}

fn parse_yaml(text: &str) -> Result<Located, Vec<SyntaxError>> {
    let mut builder = YamlBuilder::default();
    let mut parser = Parser::new_from_str(text);
    parser.load(&mut builder, false).map_err(|e| {
        vec![SyntaxError {
            pos: Some(marker_pos(e.marker())),
            message: e.info().to_string(),
        }]
    })?;
    if !builder.errors.is_empty() {
        return Err(builder.errors);
    }
    // An empty file is an empty document: every section takes its default.
    Ok(builder.root.unwrap_or(Located {
        pos: Some(Pos { line: 1, col: 1 }),
        node: Node::Map(Vec::new()),
    }))
}

fn marker_pos(m: &Marker) -> Pos {
    Pos {
        line: m.line(),
        col: m.col() + 1,
    }
}

enum Frame {
    Seq {
        pos: Pos,
        anchor: usize,
        items: Vec<Located>,
    },
    Map {
        pos: Pos,
        anchor: usize,
        entries: Vec<Entry>,
        key: Option<(String, Option<Pos>)>,
    },
}

/// Builds the tree from the YAML parser's events (each carries its position).
#[derive(Default)]
struct YamlBuilder {
    stack: Vec<Frame>,
    anchors: HashMap<usize, Located>,
    root: Option<Located>,
    errors: Vec<SyntaxError>,
    /// Open containers below [`MAX_DEPTH`] being skipped (their tree would only be deep to
    /// overflow the stack of whatever walks it).
    skipping: usize,
    /// Values copied by aliases so far: a few lines of anchors and aliases can otherwise
    /// expand to billions of values.
    aliased_nodes: usize,
}

const MAX_ALIASED_NODES: usize = 100_000;

/// Far more nesting than a campaign file has (a MultiPolygon position is 6 deep).
const MAX_DEPTH: usize = 32;

impl YamlBuilder {
    /// Adds a finished value to whatever holds it. `key_text` is the scalar's own text, for
    /// when the value is a mapping key.
    fn push(&mut self, value: Located, key_text: Option<String>) {
        match self.stack.last_mut() {
            None => self.root = Some(value),
            Some(Frame::Seq { items, .. }) => items.push(value),
            Some(Frame::Map {
                pos, entries, key, ..
            }) => match key.take() {
                Some((k, key_pos)) => entries.push(Entry {
                    key: k,
                    key_pos,
                    value,
                }),
                None => match key_text {
                    Some(k) if entries.iter().any(|e| e.key == k) => {
                        self.errors.push(SyntaxError {
                            pos: value.pos,
                            message: format!("duplicate key {k:?}"),
                        });
                        // Keep the first value; the duplicate's value is read and dropped.
                        *key = Some((format!("\u{0}duplicate {k}"), None));
                    }
                    Some(k) => {
                        // A block mapping's start event points past its first key; the key
                        // itself is where a reader looks.
                        if let Some(p) = value.pos.filter(|p| (p.line, p.col) < (pos.line, pos.col))
                        {
                            *pos = p;
                        }
                        *key = Some((k, value.pos))
                    }
                    None => {
                        self.errors.push(SyntaxError {
                            pos: value.pos,
                            message: "mapping keys must be plain strings".into(),
                        });
                        *key = Some(("\u{0}bad key".into(), None));
                    }
                },
            },
        }
    }

    fn remember(&mut self, anchor: usize, value: &Located) {
        if anchor != 0 {
            self.anchors.insert(anchor, value.clone());
        }
    }
}

impl MarkedEventReceiver for YamlBuilder {
    fn on_event(&mut self, event: Event, mark: Marker) {
        let pos = marker_pos(&mark);
        let opens = matches!(event, Event::SequenceStart(..) | Event::MappingStart(..));
        let closes = matches!(event, Event::SequenceEnd | Event::MappingEnd);
        if self.skipping > 0 {
            self.skipping = self.skipping + usize::from(opens) - usize::from(closes);
            if self.skipping == 0 {
                // Stands in for the skipped container, so keys and values still pair up.
                self.push(
                    Located {
                        pos: Some(pos),
                        node: Node::Null,
                    },
                    None,
                );
            }
            return;
        }
        if opens && self.stack.len() >= MAX_DEPTH {
            self.errors.push(SyntaxError {
                pos: Some(pos),
                message: format!("nested deeper than {MAX_DEPTH} levels"),
            });
            self.skipping = 1;
            return;
        }
        match event {
            Event::Scalar(text, style, anchor, tag) => {
                let is_str_tag = tag.as_ref().is_some_and(|t| t.suffix == "str");
                let node = if style != TScalarStyle::Plain || is_str_tag {
                    Node::Str(text.clone())
                } else {
                    match Yaml::from_str(&text) {
                        Yaml::Null => Node::Null,
                        Yaml::Boolean(b) => Node::Bool(b),
                        Yaml::Integer(i) => Node::Int(i),
                        y @ Yaml::Real(_) => {
                            y.as_f64().map_or(Node::Str(text.clone()), Node::Float)
                        }
                        _ => Node::Str(text.clone()),
                    }
                };
                let value = Located {
                    pos: Some(pos),
                    node,
                };
                self.remember(anchor, &value);
                self.push(value, Some(text));
            }
            Event::SequenceStart(anchor, _) => self.stack.push(Frame::Seq {
                pos,
                anchor,
                items: Vec::new(),
            }),
            Event::MappingStart(anchor, _) => self.stack.push(Frame::Map {
                pos,
                anchor,
                entries: Vec::new(),
                key: None,
            }),
            Event::SequenceEnd | Event::MappingEnd => {
                let (pos, anchor, node) = match self.stack.pop() {
                    Some(Frame::Seq { pos, anchor, items }) => (pos, anchor, Node::Seq(items)),
                    Some(Frame::Map {
                        pos,
                        anchor,
                        mut entries,
                        ..
                    }) => {
                        entries.retain(|e| !e.key.starts_with('\u{0}'));
                        (pos, anchor, Node::Map(entries))
                    }
                    None => return,
                };
                let value = Located {
                    pos: Some(pos),
                    node,
                };
                self.remember(anchor, &value);
                self.push(value, None);
            }
            Event::Alias(anchor) => {
                let copied = self
                    .anchors
                    .get(&anchor)
                    .map(|v| (v.node.clone(), v.size()));
                let node = match copied {
                    Some((node, size)) if self.aliased_nodes + size <= MAX_ALIASED_NODES => {
                        self.aliased_nodes += size;
                        node
                    }
                    Some(_) => {
                        self.errors.push(SyntaxError {
                            pos: Some(pos),
                            message: format!(
                                "aliases expand to more than {MAX_ALIASED_NODES} values"
                            ),
                        });
                        Node::Null
                    }
                    None => {
                        self.errors.push(SyntaxError {
                            pos: Some(pos),
                            message: "alias to an unknown anchor".into(),
                        });
                        Node::Null
                    }
                };
                self.push(
                    Located {
                        pos: Some(pos),
                        node,
                    },
                    None,
                );
            }
            Event::Nothing
            | Event::StreamStart
            | Event::StreamEnd
            | Event::DocumentStart
            | Event::DocumentEnd => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(doc: &Located) -> serde_json::Value {
        doc.deserialize(&KeyPath::default()).unwrap()
    }

    fn path(segs: &[Seg]) -> KeyPath {
        KeyPath(segs.to_vec(), false)
    }

    #[test]
    fn toml_values_know_their_line_and_column() {
        let text = "[settings]\nallow_zone_hints = true\n\n[[zones]]\nid = \"a\"\n\n[[zones]]\nid = \"b\"\ncell_ids = [\"x\", \"y\"]\n";
        let doc = parse(text, Format::Toml).unwrap();
        let at = |segs: &[Seg]| doc.locate(&path(segs)).map(|p| (p.line, p.col));
        use Seg::{Index as I, Key as K};
        assert_eq!(
            at(&[K("settings".into()), K("allow_zone_hints".into())]),
            Some((2, 20))
        );
        assert_eq!(at(&[K("zones".into()), I(1)]), Some((7, 1)));
        assert_eq!(
            at(&[K("zones".into()), I(1), K("cell_ids".into()), I(1)]),
            Some((9, 18))
        );
        // A missing key is reported where its table is.
        assert_eq!(
            at(&[K("zones".into()), I(0), K("name".into())]),
            Some((4, 1))
        );
        assert_eq!(
            json(&doc),
            serde_json::json!({"settings": {"allow_zone_hints": true},
                "zones": [{"id": "a"}, {"id": "b", "cell_ids": ["x", "y"]}]})
        );
    }

    #[test]
    fn yaml_values_know_their_line_and_column() {
        let text = "settings:\n  allow_zone_hints: false\nzones:\n  - id: a\n    cell_ids: [x, \"7\"]\n  - &z\n    id: b\n";
        let doc = parse(text, Format::Yaml).unwrap();
        use Seg::{Index as I, Key as K};
        let at = |segs: &[Seg]| doc.locate(&path(segs)).map(|p| (p.line, p.col));
        assert_eq!(
            at(&[K("settings".into()), K("allow_zone_hints".into())]),
            Some((2, 21))
        );
        assert_eq!(at(&[K("zones".into()), I(0)]), Some((4, 5)));
        assert_eq!(
            at(&[K("zones".into()), I(0), K("cell_ids".into()), I(1)]),
            Some((5, 19))
        );
        assert_eq!(
            json(&doc),
            serde_json::json!({"settings": {"allow_zone_hints": false},
                "zones": [{"id": "a", "cell_ids": ["x", "7"]}, {"id": "b"}]})
        );
    }

    #[test]
    fn syntax_errors_are_located() {
        let e = parse("[settings]\nallow_zone_hints = \n", Format::Toml).unwrap_err();
        assert_eq!(e[0].pos.map(|p| p.line), Some(2));
        let e = parse("zones:\n  - id: a\n   bad: [\n", Format::Yaml).unwrap_err();
        assert!(e[0].pos.is_some(), "{e:?}");
        let e = parse("zones: 1\nzones: 2\n", Format::Yaml).unwrap_err();
        assert_eq!(e[0].pos, Some(Pos { line: 2, col: 1 }));
        assert!(e[0].message.contains("duplicate key"), "{e:?}");
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_stack_overflow() {
        let nested = |open: &str, close: &str, depth| {
            format!("zones: [{}{}, 1]", open.repeat(depth), close.repeat(depth))
        };
        let e = parse(&nested("[", "]", 100), Format::Yaml).unwrap_err();
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(e[0].message.contains("nested deeper"), "{e:?}");
        let e = parse(&nested("{a: ", "}", 100), Format::Yaml).unwrap_err();
        assert!(e[0].message.contains("nested deeper"), "{e:?}");
        assert!(parse(&nested("[", "]", 100_000), Format::Yaml).is_err());
        let toml = format!("zones = {}{}", "[".repeat(100_000), "]".repeat(100_000));
        assert!(parse(&toml, Format::Toml).is_err());
    }

    #[test]
    fn aliases_work_but_cannot_explode() {
        let text = "p: &p {anchor: top-left, margin: [1, 2]}\nq: *p\n";
        let doc = parse(text, Format::Yaml).unwrap();
        assert_eq!(json(&doc)["q"]["margin"], serde_json::json!([1, 2]));
        let mut laughs = String::from("a: &a [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]\n");
        for (i, name) in ["b", "c", "d", "e", "f", "g", "h"].iter().enumerate() {
            let prev = ["a", "b", "c", "d", "e", "f", "g"][i];
            laughs.push_str(&format!(
                "{name}: &{name} [{}]\n",
                vec![format!("*{prev}"); 10].join(", ")
            ));
        }
        let e = parse(&laughs, Format::Yaml).unwrap_err();
        assert!(e[0].message.contains("aliases expand"), "{e:?}");
    }

    #[test]
    fn toml_datetimes_read_as_rfc3339_text() {
        let doc = parse("start = 2026-11-11T00:00:00+08:00\n", Format::Toml).unwrap();
        assert_eq!(
            json(&doc),
            serde_json::json!({"start": "2026-11-11T00:00:00+08:00"})
        );
    }

    #[test]
    fn key_paths_print_like_code() {
        let p = KeyPath::default()
            .key("zones")
            .index(1)
            .key("geofence")
            .key("coordinates")
            .index(0)
            .index(3);
        assert_eq!(p.to_string(), "zones[1].geofence.coordinates[0][3]");
    }
}
