//! Small encodings every wire format here shares: unpadded base64url (RFC 7515 §2),
//! base58btc multibase (`z…`) and the unsigned-varint multicodec prefixes of did:key/did:peer.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;

/// Unpadded base64url, as JOSE and did:peer use it.
pub fn b64u_encode(bytes: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Decodes unpadded base64url; padding or characters outside the URL-safe alphabet are refused.
pub fn b64u_decode(text: &str) -> Result<Vec<u8>, base64::DecodeError> {
    URL_SAFE_NO_PAD.decode(text)
}
