//! A reader over one JSON object that names each field by its path (`data.proposal.amount`)
//! and refuses, as `invalid_request`, a wrong type, a missing field or a field left unread.

use serde_json::{Map, Value};

use crate::error::Refusal;
use crate::macros::WireEnum;

pub(super) struct Fields {
    path: String,
    map: Map<String, Value>,
}

impl Fields {
    /// The body: it must be an object.
    pub(super) fn root(value: Value) -> Result<Fields, Refusal> {
        match value {
            Value::Object(map) => Ok(Fields {
                path: String::new(),
                map,
            }),
            _ => Err(Refusal::invalid_request("the body must be a JSON object")),
        }
    }

    /// The full name of `key` in this object, for messages.
    pub(super) fn name(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_owned()
        } else {
            format!("{}.{key}", self.path)
        }
    }

    /// A field's value; `null` counts as absent.
    fn take(&mut self, key: &str) -> Option<Value> {
        self.map.remove(key).filter(|value| !value.is_null())
    }

    fn need(&mut self, key: &str) -> Result<Value, Refusal> {
        self.take(key)
            .ok_or_else(|| Refusal::invalid_request(format!("{} is missing", self.name(key))))
    }

    fn wrong(&self, key: &str, expected: &str) -> Refusal {
        Refusal::invalid_request(format!("{} must be {expected}", self.name(key)))
    }

    pub(super) fn object(&mut self, key: &str) -> Result<Fields, Refusal> {
        match self.need(key)? {
            Value::Object(map) => Ok(Fields {
                path: self.name(key),
                map,
            }),
            _ => Err(self.wrong(key, "an object")),
        }
    }

    pub(super) fn string(&mut self, key: &str) -> Result<String, Refusal> {
        let value = self.need(key)?;
        self.as_string(key, value)
    }

    pub(super) fn opt_string(&mut self, key: &str) -> Result<Option<String>, Refusal> {
        self.take(key)
            .map(|value| self.as_string(key, value))
            .transpose()
    }

    fn as_string(&self, key: &str, value: Value) -> Result<String, Refusal> {
        match value {
            Value::String(text) => Ok(text),
            _ => Err(self.wrong(key, "a string")),
        }
    }

    /// An integer of any sign (its range is judged later); a float or a string is refused.
    pub(super) fn integer(&mut self, key: &str) -> Result<i128, Refusal> {
        let value = self.need(key)?;
        self.as_integer(key, &value)
    }

    pub(super) fn opt_integer(&mut self, key: &str) -> Result<Option<i128>, Refusal> {
        self.take(key)
            .map(|value| self.as_integer(key, &value))
            .transpose()
    }

    fn as_integer(&self, key: &str, value: &Value) -> Result<i128, Refusal> {
        let integer = value
            .as_u64()
            .map(i128::from)
            .or_else(|| value.as_i64().map(i128::from));
        integer.ok_or_else(|| self.wrong(key, "an integer (minor units), not a float or a string"))
    }

    pub(super) fn opt_unsigned(&mut self, key: &str) -> Result<Option<u64>, Refusal> {
        match self.take(key) {
            None => Ok(None),
            Some(value) => value
                .as_u64()
                .map(Some)
                .ok_or_else(|| self.wrong(key, "a non-negative integer")),
        }
    }

    pub(super) fn strings(&mut self, key: &str) -> Result<Vec<String>, Refusal> {
        let value = self.need(key)?;
        self.as_strings(key, value)
    }

    pub(super) fn opt_strings(&mut self, key: &str) -> Result<Vec<String>, Refusal> {
        self.take(key)
            .map_or(Ok(Vec::new()), |value| self.as_strings(key, value))
    }

    fn as_strings(&self, key: &str, value: Value) -> Result<Vec<String>, Refusal> {
        let Value::Array(items) = value else {
            return Err(self.wrong(key, "an array of strings"));
        };
        items
            .into_iter()
            .map(|item| match item {
                Value::String(text) => Ok(text),
                _ => Err(self.wrong(key, "an array of strings")),
            })
            .collect()
    }

    /// One of a wire enum's names; any other value is refused, listing the allowed ones.
    pub(super) fn choice<E: WireEnum>(&mut self, key: &str) -> Result<E, Refusal> {
        let value = self.need(key)?;
        let text = self.as_string(key, value)?;
        E::parse(&text).ok_or_else(|| {
            let allowed: Vec<&str> = E::ALL.iter().map(|e| e.as_str()).collect();
            self.wrong(key, &format!("one of {}", allowed.join(", ")))
        })
    }

    /// Every field must have been read: anything left is unknown.
    pub(super) fn finish(self) -> Result<(), Refusal> {
        match self.map.keys().next() {
            None => Ok(()),
            Some(key) => Err(Refusal::invalid_request(format!(
                "unknown field {}",
                self.name(key)
            ))),
        }
    }
}
