//! An organisation's API keys: several, each named, shown once when made, kept only as the
//! SHA-256 of its secret part, revocable. The key an organisation was created with is kept
//! on its record ([`super::Organisation`]); it is listed as "First key" and, once revoked,
//! refused by a tombstone in `api_keys` under its hash.
//!
//! Collection `api_keys`: `<org id>/<SHA-256 of the secret, hex>` → [`ApiKey`]: a key is
//! found from what the caller sent in one read, whatever how many keys there are.

use rand_core::{OsRng, RngCore};
use serde::{Deserialize, Serialize};

use super::store::{Expect, IssuerStorage, IssuerStorageExt, Write};
use super::time::now_ms;
use super::{new_object_id, sha256_hex, Issuer, IssuerError, Org};

const API_KEYS: &str = "api_keys";

/// The most unrevoked API keys an organisation may hold.
pub const MAX_API_KEYS: usize = 20;

/// The id the first key (the one made with the organisation) is listed under.
const FIRST_KEY_ID: &str = "first";

/// An API key as stored and listed (never its secret). `Debug` shows no hash.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKey {
    /// Its id (24 hex digits, or `first` for the key the organisation was created with).
    pub id: String,
    /// What its owner called it.
    pub name: String,
    /// When it was made (ms since the epoch).
    pub created_ms: u64,
    /// Who made it (a console user's email; None for the first key).
    pub created_by: Option<String>,
    /// When it was revoked: only the first key's tombstone has one.
    revoked_ms: Option<u64>,
    /// SHA-256 of its secret part, hex.
    sha256: String,
}

impl std::fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiKey")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("created_ms", &self.created_ms)
            .field("created_by", &self.created_by)
            .field("revoked_ms", &self.revoked_ms)
            .finish_non_exhaustive()
    }
}

/// Checks an API key's name: 1 to 100 characters without control characters.
fn key_name(name: &str) -> Result<String, IssuerError> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
        return Err(IssuerError::field(
            "name",
            "must be 1 to 100 characters without control characters",
        ));
    }
    Ok(name.to_string())
}

impl<S: IssuerStorage> Issuer<S> {
    /// Every record of `org`'s keys (at most the cap, plus the first key's tombstone).
    async fn key_records(&self, org: &Org) -> Result<Vec<ApiKey>, IssuerError> {
        Ok(self
            .storage
            .scan_json(
                API_KEYS,
                &format!("{}/", org.record.id),
                0,
                MAX_API_KEYS + 1,
            )
            .await?)
    }

    /// `org`'s unrevoked API keys, oldest first.
    pub async fn api_keys(&self, org: &Org) -> Result<Vec<ApiKey>, IssuerError> {
        let records = self.key_records(org).await?;
        let first = &org.record.api_key_sha256;
        let mut keys: Vec<ApiKey> = records
            .into_iter()
            .filter(|k| k.revoked_ms.is_none())
            .collect();
        if !self.first_key_revoked(org).await? {
            keys.push(ApiKey {
                id: FIRST_KEY_ID.into(),
                name: "First key".into(),
                created_ms: org.record.created_ms,
                created_by: None,
                revoked_ms: None,
                sha256: first.clone(),
            });
        }
        keys.sort_by(|a, b| a.created_ms.cmp(&b.created_ms).then(a.id.cmp(&b.id)));
        Ok(keys)
    }

    async fn first_key_revoked(&self, org: &Org) -> Result<bool, IssuerError> {
        let key = format!("{}/{}", org.record.id, org.record.api_key_sha256);
        Ok(self.storage.get(API_KEYS, &key).await?.is_some())
    }

    /// Makes a new API key for `org` named `name` (by `created_by`); returns it and the key,
    /// which is shown this once.
    pub async fn create_api_key(
        &self,
        org: &Org,
        name: &str,
        created_by: Option<&str>,
    ) -> Result<(ApiKey, String), IssuerError> {
        let name = key_name(name)?;
        if self.api_keys(org).await?.len() >= MAX_API_KEYS {
            return Err(IssuerError::conflict(&format!(
                "an organisation may hold at most {MAX_API_KEYS} API keys: revoke one first"
            )));
        }
        let mut secret = [0u8; 32];
        OsRng.fill_bytes(&mut secret);
        let secret = lanyard_protocol::encoding::b64u_encode(secret);
        let key = ApiKey {
            id: new_object_id(),
            name,
            created_ms: now_ms(),
            created_by: created_by.map(str::to_string),
            revoked_ms: None,
            sha256: sha256_hex(secret.as_bytes()),
        };
        let storage_key = format!("{}/{}", org.record.id, key.sha256);
        self.storage
            .apply(
                vec![Expect::Absent {
                    collection: API_KEYS,
                    key: storage_key.clone(),
                }],
                vec![Write::put(API_KEYS, storage_key, &key)?],
            )
            .await?;
        tracing::info!(org = %org.record.id, key = %key.id, "API key created");
        Ok((key, format!("lk_{}_{secret}", org.record.id)))
    }

    /// Revokes `org`'s API key `id`: the API refuses it from now on.
    pub async fn revoke_api_key(&self, org: &Org, id: &str) -> Result<ApiKey, IssuerError> {
        let not_found = || IssuerError::not_found(&format!("no API key has the id {id:?}"));
        let key = self
            .api_keys(org)
            .await?
            .into_iter()
            .find(|k| k.id == id)
            .ok_or_else(not_found)?;
        let storage_key = format!("{}/{}", org.record.id, key.sha256);
        let write = if key.sha256 == org.record.api_key_sha256 {
            // The first key is on the organisation's record: a tombstone refuses it.
            let mut tombstone = key.clone();
            tombstone.revoked_ms = Some(now_ms());
            Write::put(API_KEYS, storage_key, &tombstone)?
        } else {
            Write::delete(API_KEYS, storage_key)
        };
        self.storage.apply(vec![], vec![write]).await?;
        tracing::info!(org = %org.record.id, key = %key.id, "API key revoked");
        Ok(key)
    }

    /// Whether the secret part of an API key of `org` (its SHA-256, hex) is one the API takes.
    pub(super) async fn api_key_valid(
        &self,
        org_id: &str,
        given_sha256: &str,
    ) -> Result<Option<bool>, IssuerError> {
        let record: Option<ApiKey> = self
            .storage
            .get_json(API_KEYS, &format!("{org_id}/{given_sha256}"))
            .await?;
        Ok(record.map(|k| k.revoked_ms.is_none()))
    }
}
