//! The onboard-with-auto-issue setup the issuance, verification and callback tests share: a
//! template with a `skill` field, a customer onboarded by email (no transport configured, so
//! the invitation link comes back in the answer) with auto-issue, a phone with mediation that
//! answers the invitation, and the credential it receives.

use agent::config::Config;
use lanyard_protocol::didcomm::Message;
use lanyard_protocol::protocols::issue_credential;
use serde_json::{json, Value};

use crate::{seed_template_request, Agent, OrgClient, Phone, TEMPLATES};

/// The customer API's path.
pub const CUSTOMERS: &str = "/core/api/v1/programmatic/customer";

/// Creates the seed's template with one custom field, `skill`, after `edit` adjusts the
/// request; returns its id.
pub async fn skill_template_with(org: &OrgClient, edit: impl FnOnce(&mut Value)) -> String {
    let mut request = seed_template_request();
    request["customFields"] = json!(["skill"]);
    request["descriptions"] = json!(["Skill"]);
    edit(&mut request);
    let created = org.call("POST", TEMPLATES, Some(request)).await;
    assert_eq!(created.status, 201, "{}", created.body);
    created.body["data"]["templateId"]
        .as_str()
        .unwrap()
        .to_string()
}

/// Creates the seed's template with one custom field, `skill`; returns its id.
pub async fn skill_template(org: &OrgClient) -> String {
    skill_template_with(org, |_| {}).await
}

/// An onboarding request by email for `name` at `email`, auto-issuing `template` with
/// `values`.
pub fn auto_issue_customer(name: &str, email: &str, template: &str, values: Value) -> Value {
    json!({
        "name": name,
        "medium": "email",
        "email": email,
        "autoIssue": { "templateId": template, "values": values }
    })
}

/// Onboards a customer (`request` as the API takes it); returns the customer's `data`.
pub async fn onboard(org: &OrgClient, request: Value) -> Value {
    let onboarded = org.call("POST", CUSTOMERS, Some(request)).await;
    assert_eq!(onboarded.status, 201, "{}", onboarded.body);
    onboarded.body["data"].clone()
}

/// A phone with mediation at `agent`.
pub async fn mediated_phone(agent: &Agent) -> Phone {
    let phone = Phone::new(&agent.did);
    phone.connect(agent).await;
    phone
}

/// Picks up the messages waiting for the phone and keeps those of `type_`.
pub async fn picked(phone: &Phone, agent: &Agent, type_: &str) -> Vec<Message> {
    phone
        .pick_up(agent, 100)
        .await
        .into_iter()
        .filter(|m| m.type_ == type_)
        .collect()
}

/// Takes the offer waiting for the phone, requests it from `org`, and returns the credential
/// issued.
pub async fn receive_credential(phone: &Phone, agent: &Agent, org: &OrgClient) -> Value {
    let offers = picked(phone, agent, issue_credential::OFFER).await;
    let offer = issue_credential::parse_offer(&offers[0]).unwrap();
    let status = phone
        .tell(&org.didcomm_did, issue_credential::request_message(&offer))
        .await;
    assert_eq!(status, 202);
    let issued = picked(phone, agent, issue_credential::ISSUE).await;
    issue_credential::parse_issue(&issued[0]).unwrap().1
}

/// An agent, its organisation "Acme", a `skill` template and a phone holding a credential of
/// it (`skill` = Rust, holderFullName left out), issued to customer Jane.
pub struct Holder {
    /// The agent, in process.
    pub agent: Agent,
    /// The organisation.
    pub acme: OrgClient,
    /// The template's id.
    pub template: String,
    /// The phone holding the credential.
    pub phone: Phone,
    /// The credential, as issued.
    pub credential: Value,
}

impl Holder {
    /// Sets it all up on an agent whose configuration `edit` adjusts.
    pub async fn start_with(edit: impl FnOnce(&mut Config)) -> Holder {
        let agent = Agent::start_with(Default::default(), edit).await;
        let acme = OrgClient::create(&agent, "Acme").await;
        let template = skill_template(&acme).await;
        let customer = onboard(
            &acme,
            auto_issue_customer(
                "Jane",
                "jane@example.com",
                &template,
                json!({ "skill": "Rust" }),
            ),
        )
        .await;
        let phone = mediated_phone(&agent).await;
        phone
            .accept_invitation(customer["invitation"]["url"].as_str().unwrap())
            .await;
        let credential = receive_credential(&phone, &agent, &acme).await;
        Holder {
            agent,
            acme,
            template,
            phone,
            credential,
        }
    }
}
