//! RFC 8785 JSON Canonicalization Scheme: members sorted by their UTF-16 code units, no
//! whitespace, ECMAScript number and string serialization. The hashing input of
//! `eddsa-jcs-2022`. Done by `serde_json_canonicalizer`, checked here against the vectors.

use serde_json::Value;

use super::CredentialError;

/// The canonical form of `value`.
pub fn canonicalize(value: &Value) -> Result<String, CredentialError> {
    serde_json_canonicalizer::to_string(value)
        .map_err(|e| CredentialError::shape(format!("cannot canonicalize the document: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn members_sort_by_utf16_code_units_and_numbers_follow_ecmascript() {
        // RFC 8785 §3.2.3: "\u{20ac}" (U+20AC) sorts before "\u{1f600}" (surrogates D83D...).
        let value =
            json!({ "b": 1, "a": [1.0, 1e21, 0.000001, -0.0], "\u{1f600}": 2, "\u{20ac}": 3 });
        assert_eq!(
            canonicalize(&value).unwrap(),
            "{\"a\":[1,1e+21,0.000001,0],\"b\":1,\"\u{20ac}\":3,\"\u{1f600}\":2}"
        );
        assert_eq!(
            canonicalize(&json!("\u{7f}\n\"")).unwrap(),
            "\"\u{7f}\\n\\\"\""
        );
    }
}
