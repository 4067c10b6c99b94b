//! docs/protocol.md and the code name the same things: every command type, event type, error
//! code, query and config key of the code is in the contract, and nothing the contract names is
//! missing from the code.

use std::collections::BTreeSet;

use disputes_domain::{CommandType, ErrorCode, EVENT_TYPES};
use serde_json::Value;

use crate::config::Config;

fn protocol() -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/protocol.md");
    std::fs::read_to_string(path).expect("docs/protocol.md")
}

/// The text of the `## <heading>` section, up to the next `## `.
fn section<'a>(doc: &'a str, heading: &str) -> &'a str {
    let start = doc
        .find(&format!("\n## {heading}\n"))
        .unwrap_or_else(|| panic!("docs/protocol.md has no section `## {heading}`"));
    let rest = &doc[start + 1..];
    let end = rest[3..].find("\n## ").map_or(rest.len(), |i| i + 3);
    &rest[..end]
}

/// The backticked first column of the section's first table.
fn first_column(section: &str) -> BTreeSet<String> {
    let rows = section
        .lines()
        .skip_while(|line| !line.starts_with('|'))
        .take_while(|line| line.starts_with('|'))
        .skip(2); // the header and its rule
    rows.filter_map(|row| {
        let cell = row.split('|').nth(1)?.trim();
        let name = cell.strip_prefix('`')?.split('`').next()?;
        Some(name.to_owned())
    })
    .collect()
}

fn names<'a>(names: impl IntoIterator<Item = &'a str>) -> BTreeSet<String> {
    names.into_iter().map(str::to_owned).collect()
}

#[test]
fn every_command_type_of_the_code_and_no_other_is_in_the_contract() {
    let code = names(
        CommandType::ALL
            .iter()
            .filter(|t| t.is_public())
            .map(|t| t.as_str()),
    );
    assert_eq!(first_column(section(&protocol(), "Commands")), code);
}

#[test]
fn every_event_type_of_the_code_and_no_other_is_in_the_contract() {
    assert_eq!(
        first_column(section(&protocol(), "Events")),
        names(EVENT_TYPES.iter().copied())
    );
}

#[test]
fn every_error_code_of_the_code_and_no_other_is_in_the_contract() {
    let code = names(ErrorCode::ALL.iter().map(|c| c.as_str()));
    assert_eq!(first_column(section(&protocol(), "Error codes")), code);
}

#[test]
fn every_query_of_the_code_and_no_other_is_in_the_contract() {
    assert_eq!(
        first_column(section(&protocol(), "Queries")),
        names(disputes_readside::QUERY_NAMES)
    );
}

/// `table.key` of every key in the section's ```toml block, commented-out ones included.
fn documented_keys(section: &str) -> BTreeSet<String> {
    let block = section
        .split("```toml\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("a ```toml block");
    let mut table = String::new();
    let mut keys = BTreeSet::new();
    for line in block.lines() {
        let line = line.trim_start_matches("# ").trim();
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.split(']').next()) {
            table = name.to_owned();
        } else if let Some((key, _)) = line.split_once(" = ") {
            if key.chars().all(|c| c.is_ascii_lowercase() || c == '_') {
                keys.insert(format!("{table}.{key}"));
            }
        }
    }
    keys
}

/// `table.key` of every key the config accepts (unset options included, as `null`).
fn code_keys() -> BTreeSet<String> {
    let Value::Object(tables) = serde_json::to_value(Config::default()).expect("config serializes")
    else {
        panic!("the config is a table of tables")
    };
    let mut keys = BTreeSet::new();
    for (table, value) in tables {
        let Value::Object(fields) = value else {
            panic!("[{table}] is a table")
        };
        keys.extend(fields.keys().map(|key| format!("{table}.{key}")));
    }
    keys
}

#[test]
fn every_config_key_of_the_code_and_no_other_is_in_the_contract() {
    let documented = documented_keys(section(&protocol(), "Configuration"));
    assert_eq!(documented, code_keys());
}

#[test]
fn the_contracts_config_block_is_a_config_the_service_accepts() {
    let doc = protocol();
    let block = section(&doc, "Configuration")
        .split("```toml\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("a ```toml block");
    let config: Config = toml::from_str(block).expect("the documented defaults parse");
    let defaults = serde_json::to_value(Config::default()).unwrap();
    assert_eq!(
        serde_json::to_value(config).unwrap(),
        defaults,
        "the documented values are the defaults"
    );
}
