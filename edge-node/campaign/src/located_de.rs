//! serde reads typed values straight from the located tree.
//!
//! Going through the tree rather than a JSON copy keeps two YAML habits that a JSON value
//! loses: a section left empty (`encode:` with nothing under it) is an empty section, as an
//! empty `[encode]` table is in TOML, and an empty value is `None` for an optional key.

use crate::located::{Entry, Located, Node};
use serde::de::value::{Error, StrDeserializer};
use serde::de::{self, DeserializeSeed, IntoDeserializer, Visitor};
use serde::forward_to_deserialize_any;

impl<'de> de::Deserializer<'de> for &'de Located {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match &self.node {
            Node::Null => visitor.visit_unit(),
            Node::Bool(b) => visitor.visit_bool(*b),
            Node::Int(i) => visitor.visit_i64(*i),
            // No value in a config is meant to be infinite or NaN; such a value fails as an
            // empty one would rather than slipping past a range check.
            Node::Float(x) if !x.is_finite() => visitor.visit_unit(),
            Node::Float(x) => visitor.visit_f64(*x),
            Node::Str(s) => visitor.visit_borrowed_str(s),
            Node::Seq(items) => visit_seq(items, visitor),
            Node::Map(entries) => visit_map(entries, visitor),
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.node {
            Node::Null => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match &self.node {
            Node::Null => visit_map(&[], visitor),
            _ => self.deserialize_any(visitor),
        }
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.deserialize_map(visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        match &self.node {
            // A unit variant by name: `anchor: top-left`.
            Node::Str(s) => visitor.visit_enum(s.as_str().into_deserializer()),
            // A variant with content: `{ variant: content }`.
            Node::Map(entries) if entries.len() == 1 => {
                visitor.visit_enum(VariantAccess(&entries[0]))
            }
            _ => Err(de::Error::invalid_type(unexpected(self), &"a variant name")),
        }
    }

    forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf unit unit_struct seq tuple tuple_struct identifier ignored_any
    }
}

fn unexpected(value: &Located) -> de::Unexpected<'_> {
    match &value.node {
        Node::Null => de::Unexpected::Unit,
        Node::Bool(b) => de::Unexpected::Bool(*b),
        Node::Int(i) => de::Unexpected::Signed(*i),
        Node::Float(x) => de::Unexpected::Float(*x),
        Node::Str(s) => de::Unexpected::Str(s),
        Node::Seq(_) => de::Unexpected::Seq,
        Node::Map(_) => de::Unexpected::Map,
    }
}

fn visit_seq<'de, V: Visitor<'de>>(items: &'de [Located], visitor: V) -> Result<V::Value, Error> {
    let mut access = de::value::SeqDeserializer::new(items.iter());
    let value = visitor.visit_seq(&mut access)?;
    access.end()?;
    Ok(value)
}

fn visit_map<'de, V: Visitor<'de>>(entries: &'de [Entry], visitor: V) -> Result<V::Value, Error> {
    let mut access =
        de::value::MapDeserializer::new(entries.iter().map(|e| (e.key.as_str(), &e.value)));
    let value = visitor.visit_map(&mut access)?;
    access.end()?;
    Ok(value)
}

impl<'de> IntoDeserializer<'de, Error> for &'de Located {
    type Deserializer = Self;

    fn into_deserializer(self) -> Self {
        self
    }
}

/// The one entry of `{ variant: content }`.
struct VariantAccess<'de>(&'de Entry);

impl<'de> de::EnumAccess<'de> for VariantAccess<'de> {
    type Error = Error;
    type Variant = &'de Located;

    fn variant_seed<S: DeserializeSeed<'de>>(
        self,
        seed: S,
    ) -> Result<(S::Value, Self::Variant), Error> {
        let name: StrDeserializer<'de, Error> = self.0.key.as_str().into_deserializer();
        Ok((seed.deserialize(name)?, &self.0.value))
    }
}

impl<'de> de::VariantAccess<'de> for &'de Located {
    type Error = Error;

    fn unit_variant(self) -> Result<(), Error> {
        de::Deserialize::deserialize(self)
    }

    fn newtype_variant_seed<S: DeserializeSeed<'de>>(self, seed: S) -> Result<S::Value, Error> {
        seed.deserialize(self)
    }

    fn tuple_variant<V: Visitor<'de>>(self, _len: usize, visitor: V) -> Result<V::Value, Error> {
        de::Deserializer::deserialize_seq(self, visitor)
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        de::Deserializer::deserialize_map(self, visitor)
    }
}

#[cfg(test)]
mod tests {
    use crate::located::{parse, KeyPath};
    use crate::Format;
    use serde::Deserialize;

    #[derive(Debug, Default, Deserialize, PartialEq)]
    #[serde(default, deny_unknown_fields)]
    struct Section {
        size: u32,
        path: Option<String>,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(rename_all = "kebab-case")]
    enum Anchor {
        TopLeft,
        Offset { x: i32 },
    }

    #[derive(Debug, Default, Deserialize, PartialEq)]
    #[serde(default, deny_unknown_fields)]
    struct Doc {
        section: Section,
        anchors: Vec<Option<Anchor>>,
        ratio: f64,
    }

    fn read(text: &str) -> Result<Doc, (KeyPath, String)> {
        parse(text, Format::Yaml)
            .unwrap()
            .deserialize(&KeyPath::default())
    }

    #[test]
    fn an_empty_section_takes_its_defaults_and_an_empty_value_is_none() {
        let doc = read("section:\nanchors: [top-left, {offset: {x: -3}}, ~]\nratio: 2\n").unwrap();
        assert_eq!(doc.section, Section::default());
        assert_eq!(
            doc.anchors,
            [Some(Anchor::TopLeft), Some(Anchor::Offset { x: -3 }), None]
        );
        assert_eq!(doc.ratio, 2.0);
        assert_eq!(read("section:\n  path:\n").unwrap().section.path, None);
    }

    #[test]
    fn wrong_values_name_their_path() {
        let (path, message) = read("section:\n  size: -1\n").unwrap_err();
        assert_eq!(path.to_string(), "section.size");
        assert!(message.contains("expected u32"), "{message}");
        let (path, message) = read("ratio: .nan\n").unwrap_err();
        assert_eq!(path.to_string(), "ratio");
        assert!(message.contains("expected f64"), "{message}");
        let (path, message) = read("anchors: [middle]\n").unwrap_err();
        assert_eq!(path.to_string(), "anchors[0]");
        assert!(message.contains("unknown variant `middle`"), "{message}");
    }
}
