//! Canonical JSON: object keys sorted by code point (UTF-8 byte order), no whitespace, numbers and
//! strings as serde_json writes them. Written by hand so the result does not depend on whether some
//! crate in the build enables serde_json's `preserve_order` feature.

use serde_json::Value;

/// The canonical bytes of `value`: what the hash chain covers (`docs/protocol.md`), and what
/// tells one command body from another (the command side's idempotency fingerprint).
pub fn to_vec(value: &Value) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    write_value(value, &mut out);
    out
}

fn write_value(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Number(number) => out.extend_from_slice(number.to_string().as_bytes()),
        Value::String(text) => write_string(text, out),
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_value(item, out);
            }
            out.push(b']');
        }
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            out.push(b'{');
            for (i, (key, item)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_string(key, out);
                out.push(b':');
                write_value(item, out);
            }
            out.push(b'}');
        }
    }
}

fn write_string(text: &str, out: &mut Vec<u8>) {
    serde_json::to_writer(&mut *out, text).expect("writing a string into a Vec cannot fail");
}

/// The depth of `value` (a scalar is 1), counting no further than `limit + 1`.
pub fn depth(value: &Value, limit: usize) -> usize {
    if limit == 0 {
        return 1;
    }
    let children = match value {
        Value::Array(items) => items.iter().map(|v| depth(v, limit - 1)).max().unwrap_or(0),
        Value::Object(map) => map.values().map(|v| depth(v, limit - 1)).max().unwrap_or(0),
        _ => 0,
    };
    1 + children
}

/// Whether `value` holds a number that is not an integer (canonical form is defined for integers).
pub fn has_float(value: &Value) -> bool {
    match value {
        Value::Number(number) => number.is_f64(),
        Value::Array(items) => items.iter().any(has_float),
        Value::Object(map) => map.values().any(has_float),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn keys_sorted_at_every_level_without_whitespace() {
        let value = json!({"b": 1, "a": {"z": [3, {"y": null, "x": true}], "é": "s", "Z": -2}});
        let text = String::from_utf8(to_vec(&value)).unwrap();
        assert_eq!(
            text,
            r#"{"a":{"Z":-2,"z":[3,{"x":true,"y":null}],"é":"s"},"b":1}"#
        );
    }

    #[test]
    fn strings_escaped_as_serde_json_does() {
        let value = json!({"k\"\n": "tab\there \u{1} \u{2028} ü"});
        assert_eq!(to_vec(&value), serde_json::to_vec(&value).unwrap());
    }

    #[test]
    fn depth_counts_nesting_and_stops_at_the_limit() {
        assert_eq!(depth(&json!(1), 8), 1);
        assert_eq!(depth(&json!({"a": [1]}), 8), 3);
        assert_eq!(depth(&json!([[[[[1]]]]]), 2), 3);
    }
}
