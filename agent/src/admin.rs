//! Administration from the command line (`agent org create`, `agent user add`). With the configuration `serve`
//! reads (`lanyard.toml`, `LANYARD_*`): when no agent holds the data folder, directly on it;
//! when one does (sled lets one process open it at a time), through that agent's admin API at
//! the address it recorded in the data folder, or at a configured one (`LANYARD_PUBLIC_URL`,
//! `LANYARD_LISTEN`). The admin token goes only over https or to a loopback address.

use std::net::SocketAddr;
use std::path::Path;

use axum::http::{header, HeaderMap};
use serde_json::{json, Value};
use zeroize::Zeroizing;

use crate::config::Config;
use crate::issuer::store::SledIssuerStorage;
use crate::issuer::Issuer;

/// The shortest admin token the agent accepts, from `LANYARD_ADMIN_TOKEN` or the token file.
pub const MIN_ADMIN_TOKEN_LEN: usize = 16;

/// The admin bearer token (`/admin/*`): at least [`MIN_ADMIN_TOKEN_LEN`] visible ASCII
/// characters, zeroized when dropped, `[redacted]` in `Debug`.
#[derive(Clone)]
pub struct AdminToken(Zeroizing<String>);

impl std::fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AdminToken([redacted])")
    }
}

/// Why an admin token was refused at start.
#[derive(Debug, thiserror::Error)]
pub enum AdminTokenError {
    /// Shorter than [`MIN_ADMIN_TOKEN_LEN`].
    #[error(
        "{origin} holds an admin token of {len} characters; at least {MIN_ADMIN_TOKEN_LEN} are required"
    )]
    TooShort {
        /// Where the token was read (a variable's or a file's name).
        origin: String,
        /// Its length in characters.
        len: usize,
    },
    /// Holds spaces, control or non-ASCII characters.
    #[error("{origin}: the admin token must be visible ASCII characters without spaces")]
    NotPrintable {
        /// Where the token was read.
        origin: String,
    },
}

impl AdminToken {
    /// Checks a token read from `source` (the variable's or the file's name, for the error);
    /// surrounding whitespace (a file's final newline) is not part of it.
    pub fn new(token: &str, source: &str) -> Result<AdminToken, AdminTokenError> {
        let token = token.trim();
        let len = token.chars().count();
        if len < MIN_ADMIN_TOKEN_LEN {
            return Err(AdminTokenError::TooShort {
                origin: source.to_string(),
                len,
            });
        }
        if !token.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(AdminTokenError::NotPrintable {
                origin: source.to_string(),
            });
        }
        Ok(AdminToken(Zeroizing::new(token.to_string())))
    }

    /// The token, to send as a bearer token.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether `headers` carry `Authorization: Bearer <this token>`, compared in constant time.
    /// A missing or empty token never matches.
    pub fn authorises(&self, headers: &HeaderMap) -> bool {
        use subtle::ConstantTimeEq;
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        !given.is_empty()
            && !self.0.is_empty()
            && bool::from(given.as_bytes().ct_eq(self.0.as_bytes()))
    }
}

/// Why an administration step did not happen; each names what was wrong and where.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// The admin token is not usable.
    #[error(transparent)]
    Token(#[from] AdminTokenError),
    /// The data folder (its identity, keys or token file) cannot be read or written.
    #[error(transparent)]
    DataFolder(#[from] crate::identity::IdentityError),
    /// The shared database (`LANYARD_DATABASE_URL`) cannot be used.
    #[error(transparent)]
    Database(#[from] crate::postgres::DatabaseError),
    /// The agent's address could not be recorded in the data folder.
    #[error("{}: {source}", path.display())]
    Record {
        /// The address file.
        path: std::path::PathBuf,
        /// Why it was not written.
        source: std::io::Error,
    },
    /// An agent URL that is not one.
    #[error("{url:?} is not a URL: {reason}")]
    NotAUrl {
        /// The URL as given.
        url: String,
        /// Why it does not parse.
        reason: String,
    },
    /// The admin token would go over plain http to a host that is not this machine.
    #[error(
        "not sending the admin token over plain http to {host}: use an https URL \
         (LANYARD_PUBLIC_URL=https://...), or run this on the agent's machine where it \
         answers on a loopback address"
    )]
    PlainHttp {
        /// The host it would go to.
        host: String,
    },
    /// An agent URL of another scheme than http(s).
    #[error("{url}: {scheme} is neither http nor https")]
    Scheme {
        /// The URL.
        url: String,
        /// Its scheme.
        scheme: String,
    },
    /// The HTTP client could not be built.
    #[error("the HTTP client: {0}")]
    Client(reqwest::Error),
    /// The agent at `url` could not be asked, or its answer not read.
    #[error("the agent at {url}: {reason}")]
    Unreachable {
        /// The agent's URL.
        url: String,
        /// What failed.
        reason: reqwest::Error,
    },
    /// The agent answered without JSON.
    #[error("the agent at {url} answered {status} without JSON: {reason}")]
    NotJson {
        /// The agent's URL.
        url: String,
        /// Its answer's status.
        status: reqwest::StatusCode,
        /// Why the body does not read.
        reason: reqwest::Error,
    },
    /// The agent refused the request; its message says why.
    #[error("the agent at {url} refused: {message}")]
    Refused {
        /// The agent's URL.
        url: String,
        /// The agent's error message.
        message: String,
    },
    /// An agent holds the data folder but answered at none of the addresses tried.
    #[error(
        "an agent is running on the data folder {} (its store is locked), but nothing \
         answered at {tried}{refusals}. Run this with the agent's configuration \
         (LANYARD_CONFIG, or LANYARD_LISTEN / LANYARD_PUBLIC_URL as the agent has them), \
         or stop the agent and run it again",
        data_dir.display()
    )]
    NoAnswer {
        /// The data folder.
        data_dir: std::path::PathBuf,
        /// The addresses tried (or "any address").
        tried: String,
        /// Why other addresses were not tried, each after "; ".
        refusals: String,
    },
    /// Every address was refused for the admin token.
    #[error("{}; nothing was created", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Withheld(Vec<AdminError>),
    /// The issuer store could not be opened.
    #[error("issuer store: {0}")]
    Store(crate::storage::StorageError),
    /// The issuer refused or failed to create the organisation.
    #[error(transparent)]
    Issuer(#[from] crate::issuer::IssuerError),
    /// Several agents share one database but no admin token was configured.
    #[error(
        "LANYARD_ADMIN_TOKEN must be set when agents share a database (LANYARD_DATABASE_URL): \
         every agent behind the load balancer must accept the same admin token, and a random \
         one made in each data folder would differ per agent"
    )]
    SharedTokenMissing,
}

/// The admin token of `config`: `LANYARD_ADMIN_TOKEN`, else the one kept in the data folder.
pub fn admin_token(config: &Config) -> Result<AdminToken, AdminError> {
    match &config.admin_token {
        Some(token) => Ok(AdminToken::new(token, "LANYARD_ADMIN_TOKEN")?),
        None => crate::identity::admin_token(&config.data_dir).map_err(AdminError::DataFolder),
    }
}

/// The admin token of agents sharing one database (`LANYARD_DATABASE_URL`): the same on every
/// agent, so it must be given as `LANYARD_ADMIN_TOKEN` (env or `lanyard.toml`); refused with
/// [`AdminError::SharedTokenMissing`] otherwise, since a token made in each data folder
/// ([`admin_token`]) would differ per agent and an admin request would pass or fail by which
/// agent the load balancer picked. `start` calls this instead of [`admin_token`] in PostgreSQL
/// mode.
pub fn shared_admin_token(config: &Config) -> Result<AdminToken, AdminError> {
    match &config.admin_token {
        Some(token) => Ok(AdminToken::new(token, "LANYARD_ADMIN_TOKEN")?),
        None => Err(AdminError::SharedTokenMissing),
    }
}

/// The file in the data folder where a running agent records the URL it answers at on this
/// machine.
const ADDRESS_FILE: &str = "agent.url";

/// The URL a socket address answers at from this machine (loopback for "every interface").
fn local_url(mut addr: SocketAddr) -> String {
    if addr.ip().is_unspecified() {
        addr.set_ip(match addr {
            SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    format!("http://{addr}")
}

/// Records in `data_dir` the URL an agent bound to `addr` answers at on this machine, for
/// `agent org create` (written whole or not at all).
pub fn record_address(data_dir: &Path, addr: SocketAddr) -> Result<(), AdminError> {
    let path = data_dir.join(ADDRESS_FILE);
    let partial = data_dir.join(format!("{ADDRESS_FILE}.partial"));
    std::fs::write(&partial, format!("{}\n", local_url(addr)))
        .and_then(|()| std::fs::rename(&partial, &path))
        .map_err(|source| AdminError::Record { path, source })
}

/// The URL the agent holding `data_dir` recorded, if it is one (a loopback http URL).
fn recorded_url(data_dir: &Path) -> Option<String> {
    let text = std::fs::read_to_string(data_dir.join(ADDRESS_FILE)).ok()?;
    let url = text.trim();
    (url.len() < 100 && token_may_go_to(url).is_ok()).then(|| url.to_string())
}

/// Whether the admin token may be sent to `url`: over https, or plain http to a loopback
/// address only. The refusal says why.
fn token_may_go_to(url: &str) -> Result<(), AdminError> {
    let parsed = reqwest::Url::parse(url).map_err(|e| AdminError::NotAUrl {
        url: url.to_string(),
        reason: e.to_string(),
    })?;
    let host = parsed.host_str().unwrap_or_default();
    let loopback = host.eq_ignore_ascii_case("localhost")
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    match parsed.scheme() {
        "https" => Ok(()),
        "http" if loopback => Ok(()),
        "http" => Err(AdminError::PlainHttp {
            host: host.to_string(),
        }),
        other => Err(AdminError::Scheme {
            url: url.to_string(),
            scheme: other.to_string(),
        }),
    }
}

/// Whether another process holds the data folder's identity store (sled's file lock).
fn held_by_an_agent(data_dir: &Path) -> bool {
    let Ok(file) = std::fs::File::open(data_dir.join("identity").join("db").join("db")) else {
        return false;
    };
    // A shared lock is refused while the agent holds its exclusive one; ours goes with `file`.
    // (fs2's, not std's newer method of the same name: the crate's MSRV is 1.85.)
    fs2::FileExt::try_lock_shared(&file).is_err()
}

/// How a POST to one agent went.
enum Reached {
    /// The agent answered: the organisation, or its refusal.
    Answered(Result<Value, AdminError>),
    /// Nothing answers there.
    Nobody,
}

async fn post_admin(
    client: &reqwest::Client,
    url: &str,
    token: &str,
    request: &AdminRequest<'_>,
) -> Reached {
    let response = match client
        .post(format!("{url}{}", request.path()))
        .bearer_auth(token)
        .json(&request.body())
        .send()
        .await
    {
        Ok(response) => response,
        Err(error) if error.is_connect() => return Reached::Nobody,
        Err(reason) => {
            return Reached::Answered(Err(AdminError::Unreachable {
                url: url.to_string(),
                reason,
            }))
        }
    };
    let status = response.status();
    let body: Value = match response.json().await {
        Ok(body) => body,
        Err(reason) => {
            return Reached::Answered(Err(AdminError::NotJson {
                url: url.to_string(),
                status,
                reason,
            }))
        }
    };
    Reached::Answered(if status.is_success() {
        Ok(body["data"].clone())
    } else {
        Err(AdminError::Refused {
            url: url.to_string(),
            message: body["error"]["message"]
                .as_str()
                .unwrap_or("(no message)")
                .to_string(),
        })
    })
}

/// What `agent org create` and `agent user add` ask for.
pub enum AdminRequest<'a> {
    /// An organisation, with its first console user when `user` is given.
    CreateOrg {
        /// Its name.
        name: &'a str,
        /// Its first console user.
        user: Option<crate::console::FirstUser<'a>>,
    },
    /// A console user of an existing organisation.
    AddUser {
        /// The organisation's id.
        org_id: &'a str,
        /// The user's email.
        email: &'a str,
        /// The user's password.
        password: &'a str,
    },
}

impl AdminRequest<'_> {
    /// The admin API's path for it.
    fn path(&self) -> String {
        match self {
            AdminRequest::CreateOrg { .. } => "/admin/orgs".to_string(),
            AdminRequest::AddUser { org_id, .. } => format!("/admin/orgs/{org_id}/users"),
        }
    }

    /// The admin API's body for it.
    fn body(&self) -> Value {
        match self {
            AdminRequest::CreateOrg { name, user: None } => json!({ "name": name }),
            AdminRequest::CreateOrg {
                name,
                user: Some(user),
            } => json!({ "name": name, "email": user.email, "password": user.password }),
            AdminRequest::AddUser {
                email, password, ..
            } => json!({ "email": email, "password": password }),
        }
    }

    /// Carries it out on `issuer` directly; the answer as the admin API gives it.
    async fn run_on<S: crate::issuer::store::IssuerStorage>(
        &self,
        issuer: &Issuer<S>,
        config: &Config,
    ) -> Result<Value, AdminError> {
        let accounts = crate::console::Accounts::new(config.console_sign_in.clone());
        match self {
            AdminRequest::CreateOrg { name, user } => {
                let user = user.as_ref().map(|u| crate::console::FirstUser {
                    email: u.email,
                    password: u.password,
                });
                let (org, api_key, user) =
                    crate::console::create_org_with_user(issuer, &accounts, name, user).await?;
                let mut answer = crate::api::org_json(&org, Some(&api_key));
                if let Some(user) = user {
                    answer["userEmail"] = json!(user.email);
                }
                Ok(answer)
            }
            AdminRequest::AddUser {
                org_id,
                email,
                password,
            } => {
                let user = crate::console::add_org_user(issuer, &accounts, org_id, email, password)
                    .await?;
                Ok(json!({ "email": user.email, "orgId": user.org_id }))
            }
        }
    }
}

/// Creates an organisation; returns it as the API shows it, with its API key.
pub async fn create_org(config: &Config, name: &str) -> Result<Value, AdminError> {
    run(config, &AdminRequest::CreateOrg { name, user: None }).await
}

/// Carries out `request` where the agent's state is: in the shared database, in the data
/// folder when no agent holds it, else through the running agent's admin API. Returns the
/// answer as the admin API gives it.
pub async fn run(config: &Config, request: &AdminRequest<'_>) -> Result<Value, AdminError> {
    if let Some(url) = &config.database_url {
        // Every agent reads the organisations from the shared database: write it there.
        return create_in_database(config, url, request).await;
    }
    let data_dir = &config.data_dir;
    let has_data = data_dir.join("identity").exists();
    if has_data {
        match create_offline(config, request).await {
            Err(error) if !held_by_an_agent(data_dir) => return Err(error),
            Err(_) => {} // A running agent holds the folder: ask it.
            done => return done,
        }
    }
    let mut urls = Vec::new();
    if has_data {
        urls.extend(recorded_url(data_dir));
    }
    urls.extend(config.public_url.clone());
    urls.push(local_url(config.listen));
    urls.dedup();
    let token = match &config.admin_token {
        Some(_) => Some(admin_token(config)?),
        None if data_dir.join("admin.token").exists() => Some(admin_token(config)?),
        None => None,
    };
    let mut refused = Vec::new();
    let mut tried = Vec::new();
    if let Some(token) = &token {
        let client = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(AdminError::Client)?;
        for url in &urls {
            if tried.contains(url) {
                continue;
            }
            if let Err(why) = token_may_go_to(url) {
                refused.push(why);
                continue;
            }
            match post_admin(&client, url, token.expose(), request).await {
                Reached::Answered(result) => return result,
                Reached::Nobody => tried.push(url.clone()),
            }
        }
    }
    let refusals = refused
        .iter()
        .map(|why| format!("; {why}"))
        .collect::<String>();
    if has_data {
        return Err(AdminError::NoAnswer {
            data_dir: data_dir.clone(),
            tried: if tried.is_empty() {
                "any address".to_string()
            } else {
                tried.join(", ")
            },
            refusals,
        });
    }
    if !refused.is_empty() {
        return Err(AdminError::Withheld(refused));
    }
    create_offline(config, request).await
}

/// Creates the organisation in the data folder, with no agent running on it.
/// Creates the organisation in the shared database the agents run on (migrated first, as an
/// agent's start does), under the identity they share (the same key file).
async fn create_in_database(
    config: &Config,
    url: &str,
    request: &AdminRequest<'_>,
) -> Result<Value, AdminError> {
    let public_url = config
        .public_url
        .clone()
        .unwrap_or_else(|| local_url(config.listen));
    let database = crate::postgres::Database::connect(url, 2).await?;
    database.migrate().await?;
    let identity = crate::identity::load_or_create_shared(
        &database,
        &config.key_file(),
        &format!("{public_url}/didcomm"),
    )
    .await?;
    let store_key = identity.issuer_store_key()?;
    let storage = crate::postgres::PgIssuerStorage::new(database, &store_key);
    let issuer = Issuer::new(storage, identity.keys.clone(), &store_key, public_url);
    request.run_on(&issuer, config).await
}

async fn create_offline(config: &Config, request: &AdminRequest<'_>) -> Result<Value, AdminError> {
    let url = config
        .public_url
        .clone()
        .unwrap_or_else(|| local_url(config.listen));
    let identity = crate::identity::load_or_create(&config.data_dir, &format!("{url}/didcomm"))
        .map_err(AdminError::DataFolder)?;
    let store_key = identity
        .issuer_store_key()
        .map_err(AdminError::DataFolder)?;
    let storage = SledIssuerStorage::open(
        &config.data_dir.join("issuer"),
        config.commit_window,
        &store_key,
    )
    .map_err(AdminError::Store)?;
    let issuer = Issuer::new(storage, identity.keys.clone(), &store_key, url);
    request.run_on(&issuer, config).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agents_sharing_a_database_need_the_admin_token_configured() {
        let dir = tempfile::tempdir().unwrap();
        let config = Config {
            data_dir: dir.path().to_path_buf(),
            ..Config::default()
        };
        let refused = shared_admin_token(&config).unwrap_err().to_string();
        assert!(
            refused.contains("LANYARD_ADMIN_TOKEN must be set when agents share a database"),
            "{refused}"
        );
        assert!(
            !dir.path().join("admin.token").exists(),
            "no per-folder token was made"
        );
        let token = "a-shared-admin-token-long-enough-for-the-minimum";
        let configured = Config {
            admin_token: Some(token.into()),
            ..config
        };
        let shared = shared_admin_token(&configured).unwrap();
        assert_eq!(shared.expose(), token);
    }

    #[test]
    fn the_admin_token_goes_over_https_or_to_loopback_only() {
        for url in [
            "https://agent.example.com",
            "http://127.0.0.1:8080",
            "http://127.9.9.9",
            "http://[::1]:8080",
            "http://localhost:8080",
        ] {
            assert!(
                token_may_go_to(url).is_ok(),
                "{url}: {:?}",
                token_may_go_to(url)
            );
        }
        for (url, host) in [
            ("http://agent.example.com", "agent.example.com"),
            ("http://10.0.0.5:8080", "10.0.0.5"),
            ("http://[fd00::2]:8080", "[fd00::2]"),
            ("http://localhost.example.com", "localhost.example.com"),
        ] {
            let error = token_may_go_to(url).unwrap_err().to_string();
            assert!(
                error.contains(&format!("over plain http to {host}:")),
                "{url}: {error}"
            );
        }
        assert!(token_may_go_to("ftp://x")
            .unwrap_err()
            .to_string()
            .contains("ftp"));
    }

    #[test]
    fn every_interface_is_reached_on_loopback() {
        assert_eq!(
            local_url("0.0.0.0:8080".parse().unwrap()),
            "http://127.0.0.1:8080"
        );
        assert_eq!(local_url("[::]:8080".parse().unwrap()), "http://[::1]:8080");
        assert_eq!(
            local_url("192.0.2.7:80".parse().unwrap()),
            "http://192.0.2.7:80"
        );
    }
}
