//! Reading a request body as JSON, strictly: one reader for every body the service takes.
//!
//! serde_json alone keeps the last of a repeated key and reads an integer literal it cannot hold
//! (`-0`, `18446744073709551616`) as a float. Here a key repeated in any object is
//! `invalid_request`, and an integer literal stays an integer: `-0` reads as 0, and one beyond
//! the range of `u64` (or `i64`, below zero) as `u64::MAX` (or `i64::MIN`). Each is out of range
//! for every integer field the contract has, so it is judged `invalid_value` where an integer is
//! expected, while a float (`1.5`, `1e3`, `-0.0`) stays a float and is `invalid_request` there.

use std::fmt;

use serde::de::{DeserializeSeed, Error as _, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

use crate::error::Refusal;

/// The body as JSON: `invalid_request` when it is not JSON or repeats a key in an object.
pub fn read_json(body: &[u8]) -> Result<Value, Refusal> {
    let mut numbers = Numbers {
        body,
        seen: 0,
        integer_literals: None,
    };
    let mut reader = serde_json::Deserializer::from_slice(body);
    let value = Strict(&mut numbers)
        .deserialize(&mut reader)
        .and_then(|value| reader.end().map(|()| value))
        .map_err(|e| Refusal::invalid_request(format!("the body is not JSON: {e}")))?;
    Ok(value)
}

/// The numbers of the body, in the order serde_json visits them (document order).
struct Numbers<'b> {
    body: &'b [u8],
    /// Numbers visited so far.
    seen: usize,
    /// For each number literal of the body, whether it is an integer (no fraction, no exponent);
    /// scanned only when serde_json hands over a float, which a well-formed command never has.
    integer_literals: Option<Vec<bool>>,
}

impl Numbers<'_> {
    fn integer(&mut self) {
        self.seen += 1;
    }

    /// The value of the float serde_json read for the next number literal.
    fn float(&mut self, value: f64) -> Value {
        let index = self.seen;
        self.seen += 1;
        let literals = self
            .integer_literals
            .get_or_insert_with(|| integer_literals(self.body));
        let is_integer = literals.get(index).copied().unwrap_or(false);
        match is_integer {
            // An integer serde_json could not hold: saturate, keeping the sign (`-0` is 0).
            true if value == 0.0 => Value::from(0u64),
            true if value > 0.0 => Value::from(u64::MAX),
            true => Value::from(i64::MIN),
            false => Number::from_f64(value).map_or(Value::Null, Value::Number),
        }
    }
}

/// Whether each number literal of a JSON text (outside strings), in order, is an integer.
fn integer_literals(body: &[u8]) -> Vec<bool> {
    let mut literals = Vec::new();
    let mut i = 0;
    let mut in_string = false;
    while i < body.len() {
        let byte = body[i];
        if in_string {
            match byte {
                b'\\' => i += 1, // the escaped byte is skipped below
                b'"' => in_string = false,
                _ => {}
            }
            i += 1;
            continue;
        }
        match byte {
            b'"' => in_string = true,
            b'-' | b'0'..=b'9' => {
                let start = i;
                while i < body.len()
                    && matches!(body[i], b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9')
                {
                    i += 1;
                }
                let literal = &body[start..i];
                literals.push(!literal.iter().any(|b| matches!(b, b'.' | b'e' | b'E')));
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    literals
}

/// A `serde_json::Value`, refusing repeated keys and keeping integer literals integers.
struct Strict<'n, 'b>(&'n mut Numbers<'b>);

impl<'de> DeserializeSeed<'de> for Strict<'_, '_> {
    type Value = Value;

    fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Strict<'_, '_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, value: bool) -> Result<Value, E> {
        Ok(Value::Bool(value))
    }

    fn visit_i64<E>(self, value: i64) -> Result<Value, E> {
        self.0.integer();
        Ok(Value::from(value))
    }

    fn visit_u64<E>(self, value: u64) -> Result<Value, E> {
        self.0.integer();
        Ok(Value::from(value))
    }

    fn visit_f64<E>(self, value: f64) -> Result<Value, E> {
        Ok(self.0.float(value))
    }

    fn visit_str<E>(self, value: &str) -> Result<Value, E> {
        Ok(Value::String(value.to_owned()))
    }

    fn visit_string<E>(self, value: String) -> Result<Value, E> {
        Ok(Value::String(value))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(Strict(&mut *self.0))? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut object = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if object.contains_key(&key) {
                return Err(A::Error::custom(format_args!(
                    "the key {key:?} appears twice in one object"
                )));
            }
            let value = map.next_value_seed(Strict(&mut *self.0))?;
            object.insert(key, value);
        }
        Ok(Value::Object(object))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::error::ErrorCode;

    #[test]
    fn a_key_repeated_in_any_object_is_invalid_request() {
        for body in [
            r#"{"a": 1, "a": 1}"#,
            r#"{"actor": {"role": "mediator", "role": "buyer"}}"#,
            r#"[{"x": {"y": [{"k": 1, "k": 2}]}}]"#,
        ] {
            let refusal = read_json(body.as_bytes()).unwrap_err();
            assert_eq!(refusal.code(), ErrorCode::InvalidRequest, "{body}");
            assert!(refusal.message().contains("twice"), "{refusal}");
        }
    }

    #[test]
    fn integer_literals_stay_integers_and_floats_stay_floats() {
        let read = |text: &str| read_json(text.as_bytes()).unwrap();
        assert_eq!(read("-0"), json!(0));
        assert_eq!(read("18446744073709551616"), json!(u64::MAX));
        assert_eq!(read("-9223372036854775809"), json!(i64::MIN));
        assert_eq!(read("12"), json!(12));
        assert!(read("-0.0").is_f64());
        assert!(read("1.5").is_f64());
        assert!(read("1e3").is_f64());
        let mixed = read(r#"{"s": "1.5 -0 \" 7e1", "a": [1.5, -0, 2e3, 99999999999999999999]}"#);
        assert_eq!(mixed["s"], json!("1.5 -0 \" 7e1"));
        assert!(mixed["a"][0].is_f64());
        assert_eq!(mixed["a"][1], json!(0));
        assert!(mixed["a"][2].is_f64());
        assert_eq!(mixed["a"][3], json!(u64::MAX));
    }

    #[test]
    fn what_is_not_json_is_invalid_request() {
        for body in ["", "{", "{} {}", "nul", "{\"a\":}"] {
            let refusal = read_json(body.as_bytes()).unwrap_err();
            assert_eq!(refusal.code(), ErrorCode::InvalidRequest, "{body:?}");
        }
    }
}
