//! A JWT header or payload as decisions read it: the members the code knows sit in fixed
//! slots, so decoding allocates no key and a lookup compares no more than a few bytes.

use std::fmt;

use serde::Deserializer as _;
use serde::de::{self, DeserializeSeed, MapAccess, Visitor};
use serde_json::{Map, Value};

/// The header members verification reads.
pub const HEADER: [&str; 4] = ["alg", "kid", "typ", "cat"];

/// The payload members verification, the cookie rules and the auth object read. The first
/// seven are `Claim::ALL`, in its order, so a claim is its own slot.
pub const PAYLOAD: [&str; 19] = [
    "sub",
    "aud",
    "azp",
    "exp",
    "nbf",
    "iat",
    "iss",
    "sid",
    "sts",
    "act",
    "fea",
    "pla",
    "fva",
    "v",
    "o",
    "org_id",
    "org_slug",
    "org_role",
    "org_permissions",
];

pub type Header = Members<{ HEADER.len() }>;
pub type Payload = Members<{ PAYLOAD.len() }>;

/// A JSON object: its well-known members in slots named by `names`, any other in `rest`.
/// As with a JSON object parsed anywhere else, a repeated name keeps its last value.
#[derive(Clone, Debug)]
pub struct Members<const N: usize> {
    names: &'static [&'static str; N],
    known: [Option<Value>; N],
    rest: Map<String, Value>,
}

impl Header {
    /// Parses one JSON object; anything else (an array, trailing bytes) is an error.
    pub fn from_json(json: &[u8]) -> serde_json::Result<Self> {
        Members::parse(&HEADER, json)
    }
}

impl Payload {
    /// Parses one JSON object; anything else (an array, trailing bytes) is an error.
    pub fn from_json(json: &[u8]) -> serde_json::Result<Self> {
        Members::parse(&PAYLOAD, json)
    }

    /// A payload from an already parsed object (tests, and callers holding a `Value`).
    pub fn from_map(map: Map<String, Value>) -> Self {
        let mut members = Members::empty(&PAYLOAD);
        for (name, value) in map {
            members.set(&name, value);
        }
        members
    }
}

impl<const N: usize> Members<N> {
    fn empty(names: &'static [&'static str; N]) -> Self {
        Self {
            names,
            known: [const { None }; N],
            rest: Map::new(),
        }
    }

    fn parse(names: &'static [&'static str; N], json: &[u8]) -> serde_json::Result<Self> {
        let mut deserializer = serde_json::Deserializer::from_slice(json);
        let members = deserializer.deserialize_map(MembersVisitor(Self::empty(names)))?;
        deserializer.end()?;
        Ok(members)
    }

    fn slot(&self, name: &str) -> Option<usize> {
        slot_of(self.names, name)
    }

    fn set(&mut self, name: &str, value: Value) {
        self.put(Key::of(self.names, name), value);
    }

    fn put(&mut self, key: Key, value: Value) {
        match key {
            Key::Known(slot) => self.known[slot] = Some(value),
            Key::Other(name) => {
                self.rest.insert(name, value);
            }
        }
    }

    pub fn get(&self, name: &str) -> Option<&Value> {
        match self.slot(name) {
            Some(slot) => self.known[slot].as_ref(),
            None => self.rest.get(name),
        }
    }

    /// The member in slot `slot` of `names` (a caller's constant, so no name is compared).
    pub fn slot_value(&self, slot: usize) -> Option<&Value> {
        self.known.get(slot)?.as_ref()
    }

    /// Moves a member out, for a caller that keeps it longer than the object.
    pub fn take(&mut self, name: &str) -> Option<Value> {
        match self.slot(name) {
            Some(slot) => self.known[slot].take(),
            None => self.rest.remove(name),
        }
    }

    /// The whole object, in the usual (sorted) order: for display.
    pub fn to_map(&self) -> Map<String, Value> {
        let mut map = self.rest.clone();
        for (name, value) in self.names.iter().zip(&self.known) {
            if let Some(value) = value {
                map.insert((*name).to_owned(), value.clone());
            }
        }
        map
    }
}

struct MembersVisitor<const N: usize>(Members<N>);

impl<'de, const N: usize> Visitor<'de> for MembersVisitor<N> {
    type Value = Members<N>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut members = self.0;
        while let Some(key) = map.next_key_seed(KeySeed(members.names))? {
            members.put(key, map.next_value()?);
        }
        Ok(members)
    }
}

fn slot_of(names: &[&str], name: &str) -> Option<usize> {
    // Most names are three letters, so lengths rarely tell them apart; first letters mostly
    // do, and spare the `memcmp` call a string comparison makes.
    let first = name.as_bytes().first();
    names
        .iter()
        .position(|known| known.as_bytes().first() == first && *known == name)
}

/// A member name: a known one is only its slot, so it is never copied.
enum Key {
    Known(usize),
    Other(String),
}

impl Key {
    fn of(names: &[&str], name: &str) -> Self {
        slot_of(names, name).map_or_else(|| Self::Other(name.to_owned()), Self::Known)
    }
}

struct KeySeed<const N: usize>(&'static [&'static str; N]);

impl<'de, const N: usize> DeserializeSeed<'de> for KeySeed<N> {
    type Value = Key;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Key, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<const N: usize> Visitor<'_> for KeySeed<N> {
    type Value = Key;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a member name")
    }

    // serde_json hands over an escaped name already unescaped, so `"s\u0075b"` is `sub`.
    fn visit_str<E: de::Error>(self, name: &str) -> Result<Key, E> {
        Ok(Key::of(self.0, name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn payload(json: &str) -> Payload {
        Payload::from_json(json.as_bytes()).unwrap()
    }

    #[test]
    fn known_and_other_members_read_the_same_as_a_parsed_object() {
        let text = r#"{"sub":"user_1","exp":5,"o":{"id":"org_1"},"custom":[1,2],"v":2}"#;
        let members = payload(text);
        let map: Map<String, Value> = serde_json::from_str(text).unwrap();
        for name in ["sub", "exp", "o", "custom", "v", "sid", "absent"] {
            assert_eq!(members.get(name), map.get(name), "{name}");
        }
        assert_eq!(members.to_map(), map);
        assert_eq!(members.slot_value(0), Some(&json!("user_1")));
    }

    #[test]
    fn a_repeated_name_keeps_its_last_value_as_json_parse_does() {
        let members = payload(r#"{"sub":"first","x":1,"sub":"last","x":2}"#);
        assert_eq!(members.get("sub"), Some(&json!("last")));
        assert_eq!(members.get("x"), Some(&json!(2)));
    }

    #[test]
    fn an_escaped_name_is_the_name_it_spells() {
        let members = payload(r#"{"s\u0075b":"user_1"}"#);
        assert_eq!(members.slot_value(0), Some(&json!("user_1")));
    }

    #[test]
    fn only_one_json_object_parses() {
        for bad in [r#"["sub"]"#, r#""sub""#, "{} {}", r#"{"sub":1"#, "", "null"] {
            assert!(Payload::from_json(bad.as_bytes()).is_err(), "{bad}");
        }
        assert!(Header::from_json(br#"{"alg":"RS256"} "#).is_ok());
    }

    #[test]
    fn take_moves_a_member_out() {
        let mut members = payload(r#"{"sid":"sess_1","other":true}"#);
        assert_eq!(members.take("sid"), Some(json!("sess_1")));
        assert_eq!(members.take("other"), Some(json!(true)));
        assert_eq!(members.get("sid"), None);
        assert_eq!(members.get("other"), None);
    }

    #[test]
    fn from_map_sorts_members_into_their_slots() {
        let map = json!({"sub": "u", "custom": 1})
            .as_object()
            .unwrap()
            .clone();
        let members = Payload::from_map(map.clone());
        assert_eq!(members.slot_value(0), Some(&json!("u")));
        assert_eq!(members.to_map(), map);
    }
}
