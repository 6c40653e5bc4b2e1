//! The two JWTs the gateway signs (RFC 7519, compact JWS): APNs' provider token (ES256) and
//! Google's OAuth2 JWT-bearer assertion (RS256), with keys read from PEM PKCS#8 files. The
//! signing keys live in ring's key pairs and never leave them.

use base64::Engine as _;
use lanyard_protocol::encoding::b64u_encode;
use ring::rand::SystemRandom;
use ring::signature::{
    EcdsaKeyPair, RsaKeyPair, ECDSA_P256_SHA256_FIXED_SIGNING, RSA_PKCS1_SHA256,
};
use serde_json::Value;
use zeroize::Zeroizing;

/// The DER of the first `-----BEGIN PRIVATE KEY-----` block of `pem`; what is wrong otherwise.
pub(crate) fn pkcs8_der(pem: &str) -> Result<Zeroizing<Vec<u8>>, String> {
    let begin = "-----BEGIN PRIVATE KEY-----";
    let end = "-----END PRIVATE KEY-----";
    let start = pem
        .find(begin)
        .ok_or("it holds no \"BEGIN PRIVATE KEY\" (PKCS#8 PEM) block")?
        + begin.len();
    let stop = pem[start..]
        .find(end)
        .ok_or("its PRIVATE KEY block has no END line")?
        + start;
    let body: Zeroizing<String> = Zeroizing::new(
        pem[start..stop]
            .chars()
            .filter(|c| !c.is_ascii_whitespace())
            .collect(),
    );
    base64::engine::general_purpose::STANDARD
        .decode(body.as_bytes())
        .map(Zeroizing::new)
        .map_err(|e| format!("its PRIVATE KEY block is not base64: {e}"))
}

/// `header.claims` in base64url, the signing input.
fn signing_input(header: &Value, claims: &Value) -> String {
    format!(
        "{}.{}",
        b64u_encode(header.to_string()),
        b64u_encode(claims.to_string())
    )
}

/// An ES256 signing key (APNs' `.p8`).
pub(crate) struct Es256 {
    key: EcdsaKeyPair,
    rng: SystemRandom,
}

impl Es256 {
    /// The key of a PEM PKCS#8 P-256 file's text.
    pub(crate) fn from_pem(pem: &str) -> Result<Es256, String> {
        let der = pkcs8_der(pem)?;
        let rng = SystemRandom::new();
        let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &der, &rng)
            .map_err(|e| format!("it is not a PKCS#8 P-256 key: {e}"))?;
        Ok(Es256 { key, rng })
    }

    /// The compact JWS of `claims` under `header` (whose `alg` is set to ES256).
    pub(crate) fn sign(&self, mut header: Value, claims: &Value) -> Result<String, String> {
        header["alg"] = "ES256".into();
        let input = signing_input(&header, claims);
        let signature = self
            .key
            .sign(&self.rng, input.as_bytes())
            .map_err(|_| "ES256 signing failed".to_string())?;
        Ok(format!("{input}.{}", b64u_encode(signature.as_ref())))
    }
}

/// An RS256 signing key (a Google service account's `private_key`).
pub(crate) struct Rs256 {
    key: RsaKeyPair,
    rng: SystemRandom,
}

impl Rs256 {
    /// The key of a PEM PKCS#8 RSA key's text.
    pub(crate) fn from_pem(pem: &str) -> Result<Rs256, String> {
        let der = pkcs8_der(pem)?;
        let key =
            RsaKeyPair::from_pkcs8(&der).map_err(|e| format!("it is not a PKCS#8 RSA key: {e}"))?;
        Ok(Rs256 {
            key,
            rng: SystemRandom::new(),
        })
    }

    /// The compact JWS of `claims` under `header` (whose `alg` is set to RS256).
    pub(crate) fn sign(&self, mut header: Value, claims: &Value) -> Result<String, String> {
        header["alg"] = "RS256".into();
        let input = signing_input(&header, claims);
        let mut signature = vec![0u8; self.key.public().modulus_len()];
        self.key
            .sign(
                &RSA_PKCS1_SHA256,
                &self.rng,
                input.as_bytes(),
                &mut signature,
            )
            .map_err(|_| "RS256 signing failed".to_string())?;
        Ok(format!("{input}.{}", b64u_encode(signature)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pem_without_a_pkcs8_block_is_refused_by_name() {
        let refused =
            pkcs8_der("-----BEGIN EC PRIVATE KEY-----\nAAAA\n-----END EC PRIVATE KEY-----")
                .unwrap_err();
        assert!(refused.contains("BEGIN PRIVATE KEY"), "{refused}");
        let refused =
            pkcs8_der("-----BEGIN PRIVATE KEY-----\n!!!!\n-----END PRIVATE KEY-----").unwrap_err();
        assert!(refused.contains("not base64"), "{refused}");
        let refused =
            Es256::from_pem("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----")
                .err()
                .unwrap();
        assert!(refused.contains("not a PKCS#8 P-256 key"), "{refused}");
    }
}
