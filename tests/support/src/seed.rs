//! The seed's template document: its examples and a shape comparison against them.

use serde_json::{json, Value};

/// The seed's example create request (the fields of its "Create Template" example response).
pub fn seed_template_request() -> Value {
    json!({
        "templateName": "Template Demo",
        "credentialIssuer": "Dentity",
        "credentialType": "Credential Type",
        "logoURL": "https://example.com/logo.png",
        "credentialExpiration": null,
        "customFields": ["holderFullNamePopulatedAtIssuance"],
        "descriptions": ["Holder Full Name (Populated at Issuance)"],
        "numberOfCredentials": null
    })
}

/// The JSON examples of the seed's template document, in order: create, get, list, delete.
pub fn seed_examples() -> Vec<Value> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/seeds/004_fe6b1c65c50f2b61.txt"
    );
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let mut examples = Vec::new();
    let mut rest = text.as_str();
    while let Some(start) = rest.find("{\n    \"data\"") {
        let mut stream = serde_json::Deserializer::from_str(&rest[start..]).into_iter::<Value>();
        let value = stream
            .next()
            .expect("a JSON value")
            .expect("the seed's JSON parses");
        let end = start + stream.byte_offset();
        examples.push(value);
        rest = &rest[end..];
    }
    examples
}

/// Checks that `ours` has every member of `example` with the same JSON type, recursively (a
/// `null` in the example stands for any type; for maps keyed by field name, every entry of
/// ours is checked against the example's first). Returns what differs.
pub fn shape_differences(example: &Value, ours: &Value, path: &str) -> Vec<String> {
    let kind = |v: &Value| match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    };
    let mut differences = Vec::new();
    match (example, ours) {
        (Value::Null, _) => {}
        (Value::Object(example), Value::Object(ours))
            if path.ends_with(".fields") || path.ends_with(".fieldOrdering") =>
        {
            if let Some(first) = example.values().next() {
                for (key, value) in ours {
                    differences.extend(shape_differences(first, value, &format!("{path}.{key}")));
                }
            }
        }
        (Value::Object(example), Value::Object(ours)) => {
            for (key, value) in example {
                match ours.get(key) {
                    Some(mine) => {
                        differences.extend(shape_differences(value, mine, &format!("{path}.{key}")))
                    }
                    None => differences.push(format!("{path}.{key} is missing")),
                }
            }
        }
        (Value::Array(example), Value::Array(ours)) => {
            if let (Some(first), Some(mine)) = (example.first(), ours.first()) {
                differences.extend(shape_differences(first, mine, &format!("{path}[0]")));
            }
        }
        (example, ours) if kind(example) == kind(ours) => {}
        (example, ours) => differences.push(format!(
            "{path} is {} in the seed but {} here",
            kind(example),
            kind(ours)
        )),
    }
    differences
}
