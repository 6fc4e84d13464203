//! Comparing JSON payloads whose lists carry no order: who is subscribed,
//! which clients are listening, who is present. The server lists them in
//! whatever order its maps keep, so tests compare them as sets.

use serde_json::Value;

/// `value` with every array under `subscribers` or `clients` sorted, and
/// every `members` array sorted by `clientID`, at any depth.
pub fn normalized(mut value: Value) -> Value {
    match &mut value {
        Value::Object(map) => {
            for (key, child) in map.iter_mut() {
                *child = normalized(child.take());
                if let Value::Array(items) = child {
                    match key.as_str() {
                        "subscribers" | "clients" => {
                            items.sort_by(|a, b| a.as_str().cmp(&b.as_str()));
                        }
                        "members" => items
                            .sort_by(|a, b| a["clientID"].as_str().cmp(&b["clientID"].as_str())),
                        _ => {}
                    }
                }
            }
        }
        Value::Array(items) => {
            for item in items {
                *item = normalized(item.take());
            }
        }
        _ => {}
    }
    value
}

/// Asserts that two payloads are equal, the order of those lists aside.
#[track_caller]
pub fn assert_same(actual: &Value, expected: &Value) {
    assert_eq!(
        normalized(actual.clone()),
        normalized(expected.clone()),
        "\nactual:   {actual}\nexpected: {expected}"
    );
}
