//! W3C Bitstring Status List v1.0: a GZIP-compressed bitstring, multibase base64url encoded
//! (`u` prefix, no padding), at least 131,072 entries; entry `i` is bit `i` counting from the
//! most significant bit of the first byte. A set bit with purpose `revocation` means revoked.

use std::io::{Read, Write};

use serde_json::{json, Value};

use super::vc::{read_credential, StatusEntry, VC_CONTEXT};
use super::CredentialError;
use crate::encoding::{b64u_decode, b64u_encode};

/// The smallest list the spec allows (16 KiB), which is what Lanyard publishes.
pub const MIN_BITS: usize = 131_072;
/// The largest decompressed list accepted (a bomb guard).
const MAX_BYTES: usize = 16 << 20;

/// A status bitstring.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatusList {
    bits: Vec<u8>,
}

impl StatusList {
    /// A list of `bits` entries (at least [`MIN_BITS`]), all clear.
    pub fn new(bits: usize) -> StatusList {
        StatusList {
            bits: vec![0; bits.max(MIN_BITS).div_ceil(8)],
        }
    }

    /// How many entries it has.
    pub fn len(&self) -> usize {
        self.bits.len() * 8
    }

    /// Whether it has no entries (never, for a list built here).
    pub fn is_empty(&self) -> bool {
        self.bits.is_empty()
    }

    /// Sets or clears entry `index` (an index past the end changes nothing).
    pub fn set(&mut self, index: usize, value: bool) {
        if let Some(byte) = self.bits.get_mut(index / 8) {
            let mask = 0x80 >> (index % 8);
            if value {
                *byte |= mask;
            } else {
                *byte &= !mask;
            }
        }
    }

    /// Entry `index`; None beyond the list.
    pub fn get(&self, index: usize) -> Option<bool> {
        self.bits
            .get(index / 8)
            .map(|byte| byte & (0x80 >> (index % 8)) != 0)
    }

    /// The `encodedList` form.
    pub fn encode(&self) -> String {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(&self.bits)
            .expect("writing to a Vec does not fail");
        format!(
            "u{}",
            b64u_encode(gz.finish().expect("writing to a Vec does not fail"))
        )
    }

    /// Reads an `encodedList`.
    pub fn decode(encoded: &str) -> Result<StatusList, CredentialError> {
        let bad = |why: &str| CredentialError::StatusList(format!("encodedList {why}"));
        let data = encoded
            .strip_prefix('u')
            .ok_or_else(|| bad("is not base64url multibase (no 'u' prefix)"))?;
        let compressed = b64u_decode(data).map_err(|_| bad("is not base64url"))?;
        let mut bits = Vec::new();
        flate2::read::GzDecoder::new(compressed.as_slice())
            .take(MAX_BYTES as u64 + 1)
            .read_to_end(&mut bits)
            .map_err(|e| bad(&format!("is not GZIP: {e}")))?;
        if bits.len() > MAX_BYTES {
            return Err(bad("decompresses to more than 16 MiB"));
        }
        if bits.len() * 8 < MIN_BITS {
            return Err(bad(&format!(
                "has {} entries, fewer than {MIN_BITS}",
                bits.len() * 8
            )));
        }
        Ok(StatusList { bits })
    }
}

/// The unsigned `BitstringStatusListCredential` of `list`, published at `url`.
pub fn status_list_credential(
    url: &str,
    issuer: &str,
    valid_from: &str,
    list: &StatusList,
) -> Value {
    json!({
        "@context": [VC_CONTEXT],
        "id": url,
        "type": ["VerifiableCredential", "BitstringStatusListCredential"],
        "issuer": issuer,
        "validFrom": valid_from,
        "credentialSubject": {
            "id": format!("{url}#list"),
            "type": "BitstringStatusList",
            "statusPurpose": "revocation",
            "encodedList": list.encode(),
        },
    })
}

/// Whether `entry` is set in `list_credential` (already verified by the caller, and issued by
/// the same issuer as the credential it is about): true means revoked.
pub fn is_set(entry: &StatusEntry, list_credential: &Value) -> Result<bool, CredentialError> {
    let read = read_credential(list_credential)?;
    let id = list_credential.get("id").and_then(Value::as_str);
    if id != Some(entry.list.as_str()) {
        return Err(CredentialError::StatusList(format!(
            "the list at {} says it is {}",
            entry.list,
            id.unwrap_or("(no id)")
        )));
    }
    let purpose = read.claims.get("statusPurpose").and_then(Value::as_str);
    if purpose != Some(entry.purpose.as_str()) {
        return Err(CredentialError::StatusList(format!(
            "the list's purpose is {}, the entry's {}",
            purpose.unwrap_or("(none)"),
            entry.purpose
        )));
    }
    let encoded = read
        .claims
        .get("encodedList")
        .and_then(Value::as_str)
        .ok_or_else(|| CredentialError::StatusList("encodedList is missing".into()))?;
    let list = StatusList::decode(encoded)?;
    usize::try_from(entry.index)
        .ok()
        .and_then(|index| list.get(index))
        .ok_or_else(|| {
            CredentialError::StatusList(format!(
                "index {} is beyond the list's {} entries",
                entry.index,
                list.len()
            ))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bits_count_from_the_first_bytes_most_significant_bit() {
        let mut list = StatusList::new(0);
        assert_eq!(list.len(), MIN_BITS);
        list.set(0, true);
        list.set(9, true);
        assert_eq!(&list.bits[..2], &[0b1000_0000, 0b0100_0000]);
        let decoded = StatusList::decode(&list.encode()).unwrap();
        assert_eq!(decoded.get(0), Some(true));
        assert_eq!(decoded.get(1), Some(false));
        assert_eq!(decoded.get(9), Some(true));
        assert_eq!(decoded.get(MIN_BITS), None);
        list.set(9, false);
        assert_eq!(list.get(9), Some(false));
    }

    #[test]
    fn bad_lists_are_refused_by_what_is_wrong() {
        assert!(StatusList::decode("H4sI")
            .unwrap_err()
            .to_string()
            .contains("'u' prefix"));
        assert!(StatusList::decode("u!!")
            .unwrap_err()
            .to_string()
            .contains("base64url"));
        assert!(StatusList::decode("uAAAA")
            .unwrap_err()
            .to_string()
            .contains("GZIP"));
        let short = {
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            gz.write_all(&[0u8; 16]).unwrap();
            format!("u{}", b64u_encode(gz.finish().unwrap()))
        };
        assert!(StatusList::decode(&short)
            .unwrap_err()
            .to_string()
            .contains("fewer than"));
        let bomb = {
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
            gz.write_all(&vec![0u8; MAX_BYTES + 1]).unwrap();
            format!("u{}", b64u_encode(gz.finish().unwrap()))
        };
        assert!(StatusList::decode(&bomb)
            .unwrap_err()
            .to_string()
            .contains("16 MiB"));
    }
}
