//! The fingerprint of a command for idempotency: "repeated" means the same command type and an
//! equal JSON body, whatever the key order or whitespace.

use serde_json::Value;

/// `<command_type> <canonical body>`: the body with the keys of every object sorted (by UTF-8
/// bytes), no whitespace, numbers and strings as serde_json writes them. Equal JSON bodies give
/// equal fingerprints and unequal ones unequal fingerprints (no hash, so no collision). Written
/// by hand so it does not depend on serde_json's `preserve_order` feature.
pub fn fingerprint(command_type: &str, body: &Value) -> String {
    let mut out = String::with_capacity(command_type.len() + 256);
    out.push_str(command_type);
    out.push(' ');
    write_value(body, &mut out);
    out
}

fn write_value(value: &Value, out: &mut String) {
    match value {
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_value(item, out);
            }
            out.push(']');
        }
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            out.push('{');
            for (i, (key, item)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_scalar(&Value::String(key.clone()), out);
                out.push(':');
                write_value(item, out);
            }
            out.push('}');
        }
        scalar => write_scalar(scalar, out),
    }
}

fn write_scalar(value: &Value, out: &mut String) {
    out.push_str(&serde_json::to_string(value).expect("a JSON scalar serializes"));
}
