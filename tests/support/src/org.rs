//! An organisation's client of the issuer API.

use serde_json::{json, Value};

use crate::{Endpoint, ADMIN_TOKEN};

/// The template API's path.
pub const TEMPLATES: &str = "/core/api/v1/programmatic/credential/template";

/// An organisation's view of the issuer API: its API key and a client.
pub struct OrgClient {
    /// The agent's base URL.
    pub url: String,
    /// The organisation's API key.
    pub key: String,
    /// The organisation's id.
    pub id: String,
    /// Its did:web issuer DID.
    pub issuer_did: String,
    /// Its did:peer:2 DIDComm DID.
    pub didcomm_did: String,
    client: reqwest::Client,
}

/// A response's status and JSON body.
pub struct Reply {
    /// The HTTP status.
    pub status: u16,
    /// The body as JSON (a string when it is not JSON).
    pub body: Value,
}

impl Reply {
    /// The error message of a refusal.
    pub fn message(&self) -> &str {
        self.body["error"]["message"].as_str().unwrap_or("")
    }
}

impl OrgClient {
    /// Creates an organisation through the admin API.
    pub async fn create(agent: &impl Endpoint, name: &str) -> OrgClient {
        let response = reqwest::Client::new()
            .post(format!("{}/admin/orgs", agent.url()))
            .bearer_auth(ADMIN_TOKEN)
            .json(&json!({ "name": name }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201, "organisation not created");
        let data = response.json::<Value>().await.unwrap()["data"].clone();
        OrgClient::with_key(agent, &data)
    }

    /// A client for an organisation created elsewhere (`data` as the API returned it).
    pub fn with_key(agent: &impl Endpoint, data: &Value) -> OrgClient {
        let text = |key: &str| {
            data[key]
                .as_str()
                .unwrap_or_else(|| panic!("{key} in {data}"))
                .to_string()
        };
        OrgClient {
            url: agent.url().to_string(),
            key: text("apiKey"),
            id: text("id"),
            issuer_did: text("issuerDid"),
            didcomm_did: text("didcommDid"),
            client: reqwest::Client::new(),
        }
    }

    /// Sends `method path` with the organisation's key and an optional JSON body.
    pub async fn call(&self, method: &str, path: &str, body: Option<Value>) -> Reply {
        let mut request = self
            .client
            .request(method.parse().unwrap(), format!("{}{path}", self.url))
            .header("x-api-key", &self.key);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("the agent answers");
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Reply { status, body }
    }

    /// Sends `method` to the programmatic API's `path` (after `/core/api/v1/programmatic`);
    /// returns the status and the response's `data` (the whole body when it has none, as a
    /// refusal's `error`; `null` when it is not JSON).
    pub async fn api(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let reply = self
            .call(method, &format!("/core/api/v1/programmatic{path}"), body)
            .await;
        let body = match reply.body {
            Value::String(_) => Value::Null,
            body => body,
        };
        let data = match body.get("data") {
            Some(data) => data.clone(),
            None => body,
        };
        (reply.status, data)
    }

    /// Creates a template with custom fields `skill` and `level`; returns its id.
    pub async fn template(&self, name: &str) -> String {
        let (status, data) = self
            .api(
                "POST",
                "/credential/template",
                Some(json!({
                    "templateName": name, "credentialIssuer": "Issuer", "credentialType": name,
                    "logoURL": "https://example.com/logo.png", "credentialExpiration": null,
                    "customFields": ["skill", "level"], "descriptions": ["Skill", "Level"],
                    "numberOfCredentials": null
                })),
            )
            .await;
        assert_eq!(status, 201, "{data}");
        data["templateId"].as_str().unwrap().to_string()
    }

    /// Onboards `name` by email at `email` (no auto-issue); returns the customer's `data`
    /// (its `id` and `invitation`).
    pub async fn email_customer(&self, name: &str, email: &str) -> Value {
        let (status, customer) = self
            .api(
                "POST",
                "/customer",
                Some(json!({ "name": name, "medium": "email", "email": email })),
            )
            .await;
        assert_eq!(status, 201, "{customer}");
        customer
    }

    /// Onboards `name` by email at `email` with auto-issue of `template` with `values`;
    /// returns the status and the customer's `data`, as [`OrgClient::api`] does.
    pub async fn onboard_auto_issue(
        &self,
        name: &str,
        email: &str,
        template: &str,
        values: Value,
    ) -> (u16, Value) {
        let request = crate::onboarding::auto_issue_customer(name, email, template, values);
        self.api("POST", "/customer", Some(request)).await
    }

    /// Onboards Jane Doe by email with a membership of `template` (made by
    /// [`OrgClient::template`]) to be auto-issued once her wallet connects; returns the
    /// customer's `data`, checked created.
    pub async fn onboard_member(&self, template: &str) -> Value {
        let (status, customer) = self
            .onboard_auto_issue(
                "Jane Doe",
                "jane@example.com",
                template,
                serde_json::json!({ "skill": "climbing", "level": "gold", "holderFullName": "Jane Doe" }),
            )
            .await;
        assert_eq!(status, 201, "{customer}");
        customer
    }
}
