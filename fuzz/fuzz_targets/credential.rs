//! Credential and presentation verification (`lanyard_protocol::credentials`) with the local
//! resolver (did:key, did:peer:2; no network). The first byte picks how the rest (JSON) is used:
//!
//! 0. verified as a credential, as it came;
//! 1. verified as a presentation, as it came;
//! 2. signed by the issuer as an unsigned credential, sent as text, then verified;
//! 3. signed as in 2, presented by the holder, sent as text, then verified as a presentation;
//! 4. read as a status list credential (`encodedList` GZIP and all) for a fixed entry.
//!
//! Modes 2 and 3 reach what lies behind the signature check, and check that signing and
//! verifying agree: what the issuer signs verifies exactly when it reads as a credential of
//! that issuer, valid now (and, presented, about the holder).
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use lanyard_protocol::credentials::status_list::is_set;
use lanyard_protocol::credentials::vc::{
    issue, present, read_credential, verify_credential, verify_presentation, StatusEntry,
    VerifiedCredential,
};
use lanyard_protocol::credentials::CredentialError;
use lanyard_protocol::did::Resolver;

use lanyard_fuzz::{fixtures, mode, run, CHALLENGE, DOMAIN, NOW};

/// Over the wire: serialised and parsed again. None when signing nested it deeper than a
/// parser takes (serde_json's 128 levels): a verifier refuses that text, rightly.
fn wire(value: &Value) -> Option<Value> {
    match serde_json::from_str(&value.to_string()) {
        Ok(value) => Some(value),
        Err(error) if error.to_string().contains("recursion limit") => None,
        Err(error) => panic!("serialised JSON does not parse: {error}"),
    }
}

/// Whether `read` is a credential the verifier must accept now, from the fixed issuer.
fn acceptable(read: &VerifiedCredential) -> bool {
    read.issuer == fixtures().issuer.did
        && read.valid_until.is_none_or(|until| NOW < until)
        && read.valid_from.is_none_or(|from| from <= NOW)
}

/// The unsigned credential in `rest` signed by the fixed issuer, with what it reads as.
fn signed(rest: &[u8]) -> Option<(Value, Result<VerifiedCredential, CredentialError>)> {
    let mut unsigned: Value = serde_json::from_slice(rest).ok()?;
    unsigned.as_object_mut()?.remove("proof");
    let issuer = &fixtures().issuer;
    let vc = match issue(&unsigned, &issuer.ring, &issuer.key, &issuer.method, NOW) {
        Ok(vc) => vc,
        Err(error) => panic!("an object without a proof was not signed: {error}"),
    };
    let read = read_credential(&vc);
    Some((wire(&vc)?, read))
}

fuzz_target!(|data: &[u8]| {
    let Some((mode, rest)) = mode(data, 5) else {
        return;
    };
    let resolver = Resolver::default();
    match mode {
        0 => {
            let Ok(vc) = serde_json::from_slice::<Value>(rest) else {
                return;
            };
            if let Ok(verified) = run(verify_credential(&vc, &resolver, NOW)) {
                assert_eq!(Ok(&verified), read_credential(&vc).as_ref());
            }
        }
        1 => {
            let Ok(vp) = serde_json::from_slice::<Value>(rest) else {
                return;
            };
            if let Ok(verified) = run(verify_presentation(&vp, &resolver, CHALLENGE, DOMAIN, NOW)) {
                assert!(verified
                    .credentials
                    .iter()
                    .all(|vc| vc.subject_id == verified.holder));
            }
        }
        2 => {
            let Some((vc, read)) = signed(rest) else {
                return;
            };
            let expected = read.as_ref().is_ok_and(acceptable);
            let size = vc.to_string().len();
            match run(verify_credential(&vc, &resolver, NOW)) {
                Ok(verified) => {
                    assert!(expected, "accepted {vc}");
                    assert_eq!(Ok(verified), read);
                }
                Err(error) => assert!(
                    !expected || size > 256 * 1024,
                    "refused what the issuer signed: {error}\n{vc}"
                ),
            }
        }
        3 => {
            let Some((vc, read)) = signed(rest) else {
                return;
            };
            let holder = &fixtures().holder;
            let expected = read
                .as_ref()
                .is_ok_and(|read| acceptable(read) && read.subject_id == holder.did);
            let vp = present(
                &[vc],
                &holder.did,
                &holder.ring,
                &holder.key,
                &holder.method,
                CHALLENGE,
                DOMAIN,
                NOW,
            )
            .expect("a presentation is signed");
            let size = vp.to_string().len();
            let Some(vp) = wire(&vp) else {
                return;
            };
            match run(verify_presentation(&vp, &resolver, CHALLENGE, DOMAIN, NOW)) {
                Ok(verified) => {
                    assert!(expected, "accepted {vp}");
                    assert_eq!(verified.holder, holder.did);
                    assert_eq!(Ok(&verified.credentials[0]), read.as_ref());
                }
                Err(error) => assert!(
                    !expected || size > 256 * 1024,
                    "refused what the holder presented: {error}\n{vp}"
                ),
            }
        }
        _ => {
            let Ok(list) = serde_json::from_slice::<Value>(rest) else {
                return;
            };
            let entry = StatusEntry {
                list: "https://issuer.example/status/1".to_string(),
                index: 94_567,
                purpose: "revocation".to_string(),
            };
            let _ = is_set(&entry, &list);
        }
    }
});
