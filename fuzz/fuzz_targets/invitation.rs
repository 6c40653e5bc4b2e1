//! The wallet's invitation reader (`wallet_core::read_invitation`, what
//! `Wallet::accept_invitation` runs first): https links with `_oob`, custom-scheme deep links,
//! `didcomm://` links, short URLs and raw OOB 2.0 JSON, from arbitrary text.
//!
//! Checks besides "no panic": what is read inline is an OOB 2.0 invitation from a DID; a short
//! URL is an http(s) link; and an invitation read inline reads again, the same, when carried
//! in a deep link's `_oob`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use lanyard_protocol::encoding::b64u_encode;
use wallet_core::{read_invitation, InvitationSource, OOB_INVITATION};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match read_invitation(text) {
        Ok(InvitationSource::Inline(message)) => {
            assert_eq!(message.type_, OOB_INVITATION);
            assert!(message
                .from
                .as_deref()
                .is_some_and(|f| f.starts_with("did:")));
            let link = format!("lanyard://oob?_oob={}", b64u_encode(message.to_json()));
            if link.len() <= 64 * 1024 {
                match read_invitation(&link) {
                    Ok(InvitationSource::Inline(again)) => {
                        assert_eq!(again.id, message.id);
                        assert_eq!(again.from, message.from);
                        assert_eq!(again.attachments.len(), message.attachments.len());
                    }
                    Ok(InvitationSource::Fetch(url)) => {
                        panic!("{link:?} re-read as a short URL {url:?}")
                    }
                    // Expiry is checked against the clock: only that may differ on re-reading.
                    Err(error) => assert!(
                        message.expires_time.is_some(),
                        "{link:?} did not re-read: {error}"
                    ),
                }
            }
        }
        Ok(InvitationSource::Fetch(url)) => {
            let lower = url.to_ascii_lowercase();
            assert!(
                lower.starts_with("https://") || lower.starts_with("http://"),
                "fetch of a non-http URL {url:?}"
            );
        }
        Err(error) => {
            let _ = error.to_string();
        }
    }
});
