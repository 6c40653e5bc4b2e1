//! The console's accounts: an organisation's users (email and an Argon2id hash of the
//! password), their server-side sessions and the lockout after failed sign-ins, all kept in
//! the issuer store ([`IssuerStorage`], so sled and PostgreSQL alike, and every agent on a
//! shared database sees the same sessions).
//!
//! - `console_users`: the lower-cased email → [`User`]. An email belongs to one
//!   organisation.
//! - `console_sessions`: SHA-256 of the session token (hex) → [`Session`]. The token itself
//!   is only ever in the browser's cookie.
//! - `console_user_sessions`: `<email>/<token hash>` → when it expires: a user's sessions,
//!   so that each sign-in prunes the expired ones and keeps at most
//!   [`SignInPolicy::max_sessions`].
//!
//! What a stranger can make the agent store is bounded: failed sign-ins are counted only on
//! existing users' records; attempts are rate-limited agent-wide (one bucket, so bounded
//! memory) and the Argon2id work runs a few at a time.

use std::sync::Arc;
use std::time::Duration;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use hmac::{Hmac, Mac};
use rand_core::{OsRng, RngCore};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::issuer::rate::RateLimiter;
use crate::issuer::store::{BatchError, Expect, IssuerStorage, IssuerStorageExt, Write};
use crate::issuer::{valid_email, IssuerError, Rate};

const USERS: &str = "console_users";
const SESSIONS: &str = "console_sessions";
const USER_SESSIONS: &str = "console_user_sessions";

/// The shortest password a user may have, in characters.
pub const MIN_PASSWORD_CHARS: usize = 12;
/// The longest password taken, in bytes (the hash's work does not grow with it, but what a
/// stranger may post is bounded).
pub const MAX_PASSWORD_BYTES: usize = 1024;

/// A console user as stored. `Debug` leaves the password hash out.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    /// The email, lower-cased: how the user signs in.
    pub email: String,
    /// The organisation the user works for.
    pub org_id: String,
    /// The Argon2id hash of the password (PHC string).
    password_hash: String,
    /// When the user was added (ms since the epoch).
    pub created_ms: u64,
    /// Failed sign-ins since the last one that succeeded.
    failures: u32,
    /// Until when sign-in is refused (ms since the epoch; 0: not locked).
    locked_until_ms: u64,
}

impl std::fmt::Debug for User {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("User")
            .field("email", &self.email)
            .field("org_id", &self.org_id)
            .field("password_hash", &"[redacted]")
            .field("created_ms", &self.created_ms)
            .field("failures", &self.failures)
            .field("locked_until_ms", &self.locked_until_ms)
            .finish()
    }
}

impl User {
    /// Failed sign-ins since the last one that succeeded.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// Until when sign-in is refused (ms since the epoch), when it is.
    pub fn locked_until_ms(&self) -> Option<u64> {
        (self.locked_until_ms > 0).then_some(self.locked_until_ms)
    }
}

/// A signed-in session as stored (under the hash of its token).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    /// The user's organisation.
    pub org_id: String,
    /// The user's email.
    pub email: String,
    /// When it began (ms since the epoch).
    pub created_ms: u64,
    /// When it ends (ms since the epoch).
    pub expires_ms: u64,
}

/// A session token as the browser holds it: 32 random bytes, base64url. Zeroized on drop;
/// `Debug` shows nothing of it.
#[derive(Clone, PartialEq, Eq)]
pub struct SessionToken(Zeroizing<String>);

impl std::fmt::Debug for SessionToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionToken([redacted])")
    }
}

impl SessionToken {
    /// A fresh random token.
    pub fn generate() -> SessionToken {
        let mut bytes = Zeroizing::new([0u8; 32]);
        OsRng.fill_bytes(bytes.as_mut());
        SessionToken(Zeroizing::new(lanyard_protocol::encoding::b64u_encode(
            bytes.as_ref(),
        )))
    }

    /// A token as a cookie carried it, when it has a token's shape (43 base64url characters).
    pub fn parse(text: &str) -> Option<SessionToken> {
        (text.len() == 43
            && text
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'))
        .then(|| SessionToken(Zeroizing::new(text.to_string())))
    }

    /// The token, for the cookie.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The key its session is stored under: SHA-256 of the token, hex.
    pub fn storage_key(&self) -> String {
        hex(&Sha256::digest(self.0.as_bytes()))
    }

    /// The CSRF token of the session: HMAC-SHA256 keyed by the session token, base64url.
    /// Nothing more is stored; a page's forms carry it, and it is worthless without the cookie.
    pub fn csrf_token(&self) -> String {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(self.0.as_bytes())
            .expect("HMAC takes any key length");
        mac.update(b"lanyard console csrf v1");
        lanyard_protocol::encoding::b64u_encode(mac.finalize().into_bytes())
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// How sign-in is bounded; `config.rs` reads each from a knob.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignInPolicy {
    /// How long a session lasts after sign-in.
    pub session_ttl: Duration,
    /// Sessions a user may hold at once; signing in again ends the oldest beyond it.
    pub max_sessions: usize,
    /// Failed sign-ins in a row after which the account is locked.
    pub max_failures: u32,
    /// How long the first lock lasts; each further failure doubles it, up to an hour.
    pub lockout: Duration,
    /// Sign-in attempts this agent takes, over all accounts (each costs an Argon2id hash).
    pub attempts: Rate,
    /// Argon2id hashes computed at once.
    pub concurrent_hashes: usize,
}

impl Default for SignInPolicy {
    fn default() -> Self {
        SignInPolicy {
            session_ttl: Duration::from_secs(12 * 3600),
            max_sessions: 10,
            max_failures: 5,
            lockout: Duration::from_secs(60),
            attempts: Rate {
                per_period: 600,
                period: Duration::from_secs(60),
                burst: 60,
            },
            concurrent_hashes: 2,
        }
    }
}

/// The longest a lock lasts.
const MAX_LOCK: Duration = Duration::from_secs(3600);

/// The message of every refused password or unknown email: which of the two is not said.
pub const WRONG_CREDENTIALS: &str = "the email or the password is wrong";

/// Users and sessions over an issuer store, with the sign-in bounds.
pub struct Accounts {
    policy: SignInPolicy,
    hashing: Arc<tokio::sync::Semaphore>,
    attempts: RateLimiter,
    /// A hash checked when the email is unknown, so that the answer takes as long.
    decoy: String,
}

impl std::fmt::Debug for Accounts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Accounts")
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

/// An email as users sign in with it: trimmed, lower-cased, a valid address.
pub fn normalise_email(email: &str) -> Result<String, IssuerError> {
    let email = email.trim().to_lowercase();
    if email.len() > 254 || !valid_email(&email) {
        return Err(IssuerError::field("email", "must be a valid email address"));
    }
    Ok(email)
}

/// Whether `password` may be a user's password; the refusal names the rule.
pub fn check_password(password: &str) -> Result<(), IssuerError> {
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(IssuerError::field(
            "password",
            &format!("must be at least {MIN_PASSWORD_CHARS} characters"),
        ));
    }
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(IssuerError::field(
            "password",
            &format!("must be at most {MAX_PASSWORD_BYTES} bytes"),
        ));
    }
    Ok(())
}

impl Accounts {
    /// Accounts under `policy`.
    pub fn new(policy: SignInPolicy) -> Accounts {
        let decoy = Argon2::default()
            .hash_password(b"no such user", &SaltString::generate(&mut OsRng))
            .expect("Argon2id with default parameters hashes")
            .to_string();
        Accounts {
            hashing: Arc::new(tokio::sync::Semaphore::new(policy.concurrent_hashes.max(1))),
            attempts: RateLimiter::new(policy.attempts),
            policy,
            decoy,
        }
    }

    /// The bounds in force.
    pub fn policy(&self) -> &SignInPolicy {
        &self.policy
    }

    /// Runs `work` (an Argon2id hash) on a blocking thread, a few at a time.
    async fn hash_work<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, IssuerError> {
        let _permit = self
            .hashing
            .acquire()
            .await
            .map_err(|_| IssuerError::internal("the password hashing pool is closed"))?;
        tokio::task::spawn_blocking(work)
            .await
            .map_err(|e| IssuerError::internal(&format!("password hashing: {e}")))
    }

    /// Adds a user of organisation `org_id` (which the caller has checked exists).
    pub async fn add_user<S: IssuerStorage>(
        &self,
        storage: &S,
        org_id: &str,
        email: &str,
        password: &str,
    ) -> Result<User, IssuerError> {
        let email = normalise_email(email)?;
        check_password(password)?;
        let password = Zeroizing::new(password.to_string());
        let password_hash = self
            .hash_work(move || {
                Argon2::default()
                    .hash_password(password.as_bytes(), &SaltString::generate(&mut OsRng))
                    .map(|hash| hash.to_string())
                    .map_err(|e| IssuerError::internal(&format!("password hashing: {e}")))
            })
            .await??;
        let user = User {
            email: email.clone(),
            org_id: org_id.to_string(),
            password_hash,
            created_ms: now_ms(),
            failures: 0,
            locked_until_ms: 0,
        };
        storage
            .apply(
                vec![Expect::Absent {
                    collection: USERS,
                    key: email.clone(),
                }],
                vec![Write::put(USERS, &email, &user)?],
            )
            .await
            .map_err(|error| match error {
                BatchError::Conflict => IssuerError::conflict(&format!(
                    "a console user with the email {email} exists already"
                )),
                other => other.into(),
            })?;
        tracing::info!(org = %org_id, "console user added");
        Ok(user)
    }

    /// A user by email, if there is one.
    pub async fn user<S: IssuerStorage>(
        &self,
        storage: &S,
        email: &str,
    ) -> Result<Option<User>, IssuerError> {
        let Ok(email) = normalise_email(email) else {
            return Ok(None);
        };
        Ok(storage.get_json(USERS, &email).await?)
    }

    /// Checks `email` and `password`; on success starts a session and returns it with its
    /// token. Refusals: a rate-limited agent or a locked account (`RateLimited`, saying
    /// when to try again), a wrong email or password ([`WRONG_CREDENTIALS`], not saying
    /// which). Each failure on an existing account counts towards its lock.
    pub async fn sign_in<S: IssuerStorage>(
        &self,
        storage: &S,
        email: &str,
        password: &str,
    ) -> Result<(Session, SessionToken), IssuerError> {
        if let Err(wait) = self.attempts.take("sign-in") {
            return Err(IssuerError::too_many_requests(&format!(
                "too many sign-in attempts on this agent: try again in {} s",
                wait.as_secs().max(1)
            )));
        }
        let email =
            normalise_email(email).map_err(|_| IssuerError::unauthorised(WRONG_CREDENTIALS))?;
        if password.len() > MAX_PASSWORD_BYTES {
            return Err(IssuerError::unauthorised(WRONG_CREDENTIALS));
        }
        let stored = storage.get(USERS, &email).await?;
        let user: Option<User> = match &stored {
            Some(bytes) => Some(
                serde_json::from_slice(bytes)
                    .map_err(|e| IssuerError::internal(&format!("console user record: {e}")))?,
            ),
            None => None,
        };
        let now = now_ms();
        if let Some(user) = &user {
            if user.locked_until_ms > now {
                return Err(locked(user.locked_until_ms - now));
            }
        }
        let hash = user
            .as_ref()
            .map_or_else(|| self.decoy.clone(), |u| u.password_hash.clone());
        let password = Zeroizing::new(password.to_string());
        let matches = self
            .hash_work(move || {
                PasswordHash::new(&hash).is_ok_and(|parsed| {
                    Argon2::default()
                        .verify_password(password.as_bytes(), &parsed)
                        .is_ok()
                })
            })
            .await?;
        let (Some(user), Some(stored)) = (user, stored) else {
            return Err(IssuerError::unauthorised(WRONG_CREDENTIALS));
        };
        if !matches {
            let mut updated = user.clone();
            updated.failures = updated.failures.saturating_add(1);
            let locked_for = if updated.failures >= self.policy.max_failures {
                let doublings = (updated.failures - self.policy.max_failures).min(16);
                let lock = self
                    .policy
                    .lockout
                    .saturating_mul(1u32 << doublings)
                    .min(MAX_LOCK);
                updated.locked_until_ms = now + lock.as_millis() as u64;
                Some(lock)
            } else {
                None
            };
            // A failure another agent counted meanwhile is not counted twice: the record
            // changed, and this one is dropped.
            match storage
                .apply(
                    vec![Expect::Equals {
                        collection: USERS,
                        key: email.clone(),
                        value: stored,
                    }],
                    vec![Write::put(USERS, &email, &updated)?],
                )
                .await
            {
                Ok(()) | Err(BatchError::Conflict) => {}
                Err(BatchError::Storage(error)) => return Err(error.into()),
            }
            tracing::info!(org = %user.org_id, failures = updated.failures, "console sign-in refused");
            return Err(match locked_for {
                Some(lock) => locked(lock.as_millis() as u64),
                None => IssuerError::unauthorised(WRONG_CREDENTIALS),
            });
        }
        let mut writes = Vec::new();
        let mut expect = Vec::new();
        if user.failures > 0 || user.locked_until_ms > 0 {
            let mut updated = user.clone();
            updated.failures = 0;
            updated.locked_until_ms = 0;
            expect.push(Expect::Equals {
                collection: USERS,
                key: email.clone(),
                value: stored,
            });
            writes.push(Write::put(USERS, &email, &updated)?);
        }
        let token = SessionToken::generate();
        let key = token.storage_key();
        let session = Session {
            org_id: user.org_id.clone(),
            email: email.clone(),
            created_ms: now,
            expires_ms: now + self.policy.session_ttl.as_millis() as u64,
        };
        // The user's sessions: the expired ones go, and the oldest beyond the cap.
        let prefix = format!("{email}/");
        let mut held: Vec<(String, u64)> = Vec::new();
        for (index_key, bytes) in storage
            .scan(USER_SESSIONS, &prefix, 0, self.policy.max_sessions * 2 + 8)
            .await?
        {
            let expires: u64 = serde_json::from_slice(&bytes).unwrap_or(0);
            held.push((index_key, expires));
        }
        held.sort_by_key(|(_, expires)| std::cmp::Reverse(*expires));
        let keep = self.policy.max_sessions.max(1) - 1;
        for (i, (index_key, expires)) in held.into_iter().enumerate() {
            if i >= keep || expires <= now {
                if let Some(hash) = index_key.strip_prefix(&prefix) {
                    writes.push(Write::delete(SESSIONS, hash));
                }
                writes.push(Write::delete(USER_SESSIONS, index_key));
            }
        }
        writes.push(Write::put(SESSIONS, &key, &session)?);
        writes.push(Write::put(
            USER_SESSIONS,
            format!("{prefix}{key}"),
            &session.expires_ms,
        )?);
        storage
            .apply(expect, writes)
            .await
            .map_err(|error| match error {
                BatchError::Conflict => {
                    IssuerError::conflict("the account changed meanwhile: sign in again")
                }
                other => other.into(),
            })?;
        tracing::info!(org = %user.org_id, "console user signed in");
        Ok((session, token))
    }

    /// The live session of `token`, if any (an expired one is removed).
    pub async fn session<S: IssuerStorage>(
        &self,
        storage: &S,
        token: &SessionToken,
    ) -> Result<Option<Session>, IssuerError> {
        let key = token.storage_key();
        let Some(session) = storage.get_json::<Session>(SESSIONS, &key).await? else {
            return Ok(None);
        };
        if session.expires_ms <= now_ms() {
            self.end(storage, &key, &session.email).await?;
            return Ok(None);
        }
        Ok(Some(session))
    }

    /// Ends the session of `token` (nothing when there is none).
    pub async fn sign_out<S: IssuerStorage>(
        &self,
        storage: &S,
        token: &SessionToken,
    ) -> Result<(), IssuerError> {
        let key = token.storage_key();
        if let Some(session) = storage.get_json::<Session>(SESSIONS, &key).await? {
            self.end(storage, &key, &session.email).await?;
        }
        Ok(())
    }

    async fn end<S: IssuerStorage>(
        &self,
        storage: &S,
        key: &str,
        email: &str,
    ) -> Result<(), IssuerError> {
        storage
            .apply(
                vec![],
                vec![
                    Write::delete(SESSIONS, key),
                    Write::delete(USER_SESSIONS, format!("{email}/{key}")),
                ],
            )
            .await?;
        Ok(())
    }

    /// How many sessions `email` holds (expired ones not yet pruned included).
    pub async fn session_count<S: IssuerStorage>(
        &self,
        storage: &S,
        email: &str,
    ) -> Result<usize, IssuerError> {
        let email = normalise_email(email)?;
        Ok(storage.count(USER_SESSIONS, &format!("{email}/")).await?)
    }
}

fn locked(remaining_ms: u64) -> IssuerError {
    let minutes = remaining_ms.div_ceil(60_000).max(1);
    IssuerError::too_many_requests(&format!(
        "too many failed sign-ins for this account: it is locked; try again in {minutes} minute{}",
        if minutes == 1 { "" } else { "s" }
    ))
}
