//! The console from a test: users added through the admin API, and a browser-like HTTP
//! client that signs in, keeps the session cookie, and posts forms with the page's CSRF
//! token (no redirects followed, so a test sees each answer).

use serde_json::{json, Value};

use crate::{OrgClient, Reply, ADMIN_TOKEN};

/// A password long enough for the console's rules, for tests.
pub const TEST_PASSWORD: &str = "correct horse battery staple";

impl OrgClient {
    /// Adds a console user `email` with `password` to this organisation (admin API).
    pub async fn add_user(&self, email: &str, password: &str) -> Reply {
        let response = reqwest::Client::new()
            .post(format!("{}/admin/orgs/{}/users", self.url, self.id))
            .bearer_auth(ADMIN_TOKEN)
            .json(&json!({ "email": email, "password": password }))
            .send()
            .await
            .expect("the agent answers");
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Reply { status, body }
    }

    /// Adds the console user `email` (with [`TEST_PASSWORD`]) and signs them in.
    pub async fn console_user(&self, email: &str) -> ConsoleClient {
        let added = self.add_user(email, TEST_PASSWORD).await;
        assert_eq!(added.status, 201, "user not added: {}", added.body);
        ConsoleClient::sign_in(&self.url, email, TEST_PASSWORD)
            .await
            .unwrap_or_else(|page| panic!("{email} did not sign in: {} {}", page.status, page.body))
    }
}

/// One answer of the console: status, headers and body text.
#[derive(Debug)]
pub struct ConsolePage {
    /// The HTTP status.
    pub status: u16,
    /// The headers.
    pub headers: reqwest::header::HeaderMap,
    /// The body.
    pub body: String,
}

impl ConsolePage {
    /// Where a redirect points.
    pub fn location(&self) -> Option<&str> {
        self.headers
            .get(reqwest::header::LOCATION)
            .and_then(|v| v.to_str().ok())
    }

    /// Every `Set-Cookie` value.
    pub fn set_cookies(&self) -> Vec<String> {
        self.headers
            .get_all(reqwest::header::SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok().map(str::to_string))
            .collect()
    }

    /// The body with HTML's character references for `'`, `"`, `<`, `>` and `&` read back:
    /// what a person sees, for asserting on messages.
    pub fn text(&self) -> String {
        self.body
            .replace("&#39;", "'")
            .replace("&#x27;", "'")
            .replace("&quot;", "\"")
            .replace("&#34;", "\"")
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&amp;", "&")
    }

    /// The value of the first hidden `_csrf` input on the page.
    pub fn csrf(&self) -> Option<String> {
        hidden_value(&self.body, "_csrf")
    }
}

/// The `value` of the first input named `name` in `html`.
pub fn hidden_value(html: &str, name: &str) -> Option<String> {
    let at = html.find(&format!("name=\"{name}\" value=\""))?;
    let rest = &html[at + name.len() + 15..];
    Some(rest[..rest.find('"')?].to_string())
}

/// The `name=value` part of a `Set-Cookie` header named `name`.
pub fn cookie_value(set_cookies: &[String], name: &str) -> Option<String> {
    set_cookies.iter().find_map(|c| {
        let pair = c.split(';').next()?;
        let (key, value) = pair.split_once('=')?;
        (key.trim() == name).then(|| value.to_string())
    })
}

/// A signed-in (or not yet) console session over plain HTTP.
pub struct ConsoleClient {
    /// The agent's base URL.
    pub url: String,
    /// The session cookie's value, once signed in.
    pub session: Option<String>,
    client: reqwest::Client,
}

impl ConsoleClient {
    /// A client without a session.
    pub fn anonymous(url: &str) -> ConsoleClient {
        ConsoleClient {
            url: url.trim_end_matches('/').to_string(),
            session: None,
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
        }
    }

    /// Signs in as a browser does: the sign-in page (its cookie and CSRF token), then the
    /// form. The refusal page when sign-in fails.
    pub async fn sign_in(
        url: &str,
        email: &str,
        password: &str,
    ) -> Result<ConsoleClient, ConsolePage> {
        let mut client = ConsoleClient::anonymous(url);
        let page = client.attempt_sign_in(email, password).await;
        match cookie_value(&page.set_cookies(), "lanyard_console").filter(|v| !v.is_empty()) {
            Some(session) if page.status == 303 => {
                client.session = Some(session);
                Ok(client)
            }
            _ => Err(page),
        }
    }

    /// One sign-in attempt (page, then form); the form's answer.
    pub async fn attempt_sign_in(&self, email: &str, password: &str) -> ConsolePage {
        let form = self.get("/console/sign-in").await;
        let token = cookie_value(&form.set_cookies(), "lanyard_console_signin")
            .expect("the sign-in page sets its cookie");
        let csrf = form.csrf().expect("the sign-in form has a CSRF token");
        self.send(
            self.client
                .post(format!("{}/console/sign-in", self.url))
                .header("cookie", format!("lanyard_console_signin={token}"))
                .form(&[
                    ("_csrf", csrf.as_str()),
                    ("email", email),
                    ("password", password),
                ]),
        )
        .await
    }

    fn with_session(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.session {
            Some(session) => request.header("cookie", format!("lanyard_console={session}")),
            None => request,
        }
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> ConsolePage {
        let response = request.send().await.expect("the agent answers");
        ConsolePage {
            status: response.status().as_u16(),
            headers: response.headers().clone(),
            body: response.text().await.unwrap(),
        }
    }

    /// `GET path` with the session.
    pub async fn get(&self, path: &str) -> ConsolePage {
        self.send(self.with_session(self.client.get(format!("{}{path}", self.url))))
            .await
    }

    /// The session's CSRF token, as its pages carry it.
    pub async fn csrf(&self) -> String {
        self.get("/console")
            .await
            .csrf()
            .expect("a signed-in page carries the CSRF token")
    }

    /// Posts a url-encoded form to `path` as it is (no CSRF token added).
    pub async fn post_raw(&self, path: &str, fields: &[(&str, &str)]) -> ConsolePage {
        self.send(
            self.with_session(self.client.post(format!("{}{path}", self.url)))
                .form(fields),
        )
        .await
    }

    /// Posts a url-encoded form to `path` with the session's CSRF token.
    pub async fn post(&self, path: &str, fields: &[(&str, &str)]) -> ConsolePage {
        let csrf = self.csrf().await;
        let mut all = vec![("_csrf", csrf.as_str())];
        all.extend_from_slice(fields);
        self.post_raw(path, &all).await
    }
}
