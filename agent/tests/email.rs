//! The invitation email as it arrives and as a mail client shows it, and the organisations'
//! own email templates (`/core/api/v1/programmatic/email-template`, chosen at onboarding by
//! `emailTemplateId`). Each message goes over real SMTP to the sink (aiosmtpd); its MIME
//! structure is read back with `mail-parser` (independent of lettre, which wrote it); its HTML
//! part, with the `cid:` images resolved from the same message, is rendered by headless
//! Chromium like a mail client's HTML view, and `zbarimg` reads the QR code in that
//! screenshot (kept under the target dir's `test-artifacts/email/`).

use lanyard_test_support as support;

use std::path::{Path, PathBuf};
use std::process::Command;

use base64::Engine as _;
use mail_parser::{MessageParser, MimeHeaders, PartType};
use serde_json::{json, Value};
use support::{Agent, OrgClient, SmtpSink};

const CUSTOMERS: &str = "/core/api/v1/programmatic/customer";
const EMAIL_TEMPLATES: &str = "/core/api/v1/programmatic/email-template";

fn logo_data_url() -> String {
    let png = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/acme-logo.png"
    ))
    .unwrap();
    format!(
        "data:image/png;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(png)
    )
}

fn email_customer(name: &str, email: &str) -> Value {
    json!({ "name": name, "medium": "email", "email": email })
}

fn template_request() -> Value {
    json!({
        "name": "Welcome to the gym",
        "subject": "{{customerName}}, your {{organizationName}} membership card",
        "htmlBody": "<p style=\"margin:0 0 16px;\">Hi {{customerName}},</p>\
                     <p style=\"margin:0 0 16px;\">Your membership card is ready. Add it to the \
                     Lanyard app and show it at the front desk from now on.</p>",
        "textBody": "Hi {{customerName}},\n\nYour {{organizationName}} membership card is ready: {{inviteUrl}}",
        "logo": logo_data_url(),
    })
}

async fn agent_with_sink() -> (Agent, SmtpSink) {
    let sink = SmtpSink::start();
    let smtp = sink.url();
    let agent = Agent::start_with(Default::default(), |config| config.smtp_url = Some(smtp)).await;
    (agent, sink)
}

/// A parsed message's MIME tree: `type/subtype[children]`, images with `#content-id`.
fn tree(message: &mail_parser::Message<'_>, id: u32) -> String {
    let part = message.part(id).unwrap();
    let kind = part
        .content_type()
        .map(|t| format!("{}/{}", t.ctype(), t.subtype().unwrap_or("")))
        .unwrap_or_else(|| "text/plain".into());
    match &part.body {
        PartType::Multipart(children) => format!(
            "{kind}[{}]",
            children
                .iter()
                .map(|child| tree(message, *child))
                .collect::<Vec<_>>()
                .join(",")
        ),
        _ => match part.content_id() {
            Some(cid) => format!("{kind}#{}", cid.trim_matches(['<', '>'])),
            None => kind,
        },
    }
}

/// The HTML part of `raw` with each `cid:` image written beside it as a file and referenced
/// by its path, as a mail client resolves them from the message itself; the page's path.
/// Fails when the HTML names an image the message does not carry.
fn resolve_cids(raw: &[u8], dir: &Path) -> PathBuf {
    let message = MessageParser::default().parse(raw).unwrap();
    let mut html = message.body_html(0).unwrap().into_owned();
    let mut images = Vec::new();
    for part in &message.parts {
        let (Some(cid), Some(kind)) = (part.content_id(), part.content_type()) else {
            continue;
        };
        if kind.ctype() == "image" {
            let cid = cid.trim_matches(['<', '>']).to_string();
            let file = dir.join(format!("{cid}.{}", kind.subtype().unwrap_or("bin")));
            std::fs::write(&file, part.contents()).unwrap();
            images.push((cid, file));
        }
    }
    for (cid, file) in &images {
        html = html.replace(&format!("cid:{cid}"), &format!("file://{}", file.display()));
    }
    assert!(
        !html.contains("cid:"),
        "the HTML names an image the message does not carry: {html}"
    );
    let page = dir.join("email.html");
    std::fs::write(&page, html).unwrap();
    page
}

/// Headless Chromium's screenshot of `page` at `width`×`height`, kept as the test artifact
/// `email/<name>`.
fn screenshot(page: &Path, name: &str, width: u32, height: u32) -> PathBuf {
    let artifacts = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("test-artifacts")
        .join("email");
    std::fs::create_dir_all(&artifacts).unwrap();
    let shot = artifacts.join(name);
    let _ = std::fs::remove_file(&shot);
    let profile = tempfile::tempdir().unwrap();
    let output = Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            "--allow-file-access-from-files",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(format!("--window-size={width},{height}"))
        .arg(format!("--screenshot={}", shot.display()))
        .arg(format!("file://{}", page.display()))
        .output()
        .expect("chromium runs (apt-get install chromium; .ci/run installs it)");
    assert!(
        shot.exists(),
        "chromium wrote no screenshot: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    println!("screenshot: {}", shot.display());
    shot
}

fn zbarimg(image: &Path) -> String {
    let output = Command::new("zbarimg")
        .args(["--raw", "-q"])
        .arg(image)
        .output()
        .expect("zbarimg runs (apt-get install zbar-tools)");
    assert!(
        output.status.success(),
        "zbarimg found no QR code in {}",
        image.display()
    );
    String::from_utf8(output.stdout).unwrap().trim().to_string()
}

#[tokio::test]
async fn the_default_invitation_is_html_and_text_with_the_qr_inline_and_renders_in_a_mail_view() {
    let (agent, sink) = agent_with_sink().await;
    let acme = OrgClient::create(&agent, "Acme Gym").await;
    let onboarded = acme
        .call(
            "POST",
            CUSTOMERS,
            Some(email_customer("Jane Doe", "jane@example.com")),
        )
        .await;
    assert_eq!(onboarded.status, 201, "{}", onboarded.body);
    let url = onboarded.body["data"]["invitation"]["url"]
        .as_str()
        .unwrap()
        .to_string();
    let raw = sink.raw(1).await;
    let message = MessageParser::default().parse(&raw[..]).unwrap();
    assert_eq!(message.subject(), Some("Acme Gym invites you to connect"));
    assert_eq!(
        tree(&message, 0),
        "multipart/alternative[text/plain,multipart/related[text/html,image/png#invite-qr]]"
    );
    let text = message.body_text(0).unwrap();
    assert!(text.starts_with("Hello Jane Doe,"), "{text}");
    assert!(text.contains(&url), "{text}");
    let html = message.body_html(0).unwrap();
    assert!(
        html.contains("<meta name=\"viewport\""),
        "responsive: {html}"
    );
    assert!(html.contains("Acme Gym invites you to connect"));
    assert!(html.contains("Hello Jane Doe,"));
    assert_eq!(
        html.matches(&format!("href=\"{url}\"")).count(),
        2,
        "the button and the fallback link open the invitation: {html}"
    );
    assert!(html.contains(">Open your invitation</a>"));

    let dir = tempfile::tempdir().unwrap();
    let page = resolve_cids(&raw, dir.path());
    let desktop = screenshot(&page, "default-desktop.png", 900, 1100);
    assert_eq!(zbarimg(&desktop), url, "the QR code a desktop reader scans");
    let phone = screenshot(&page, "default-phone.png", 390, 1200);
    assert_eq!(zbarimg(&phone), url);
}

#[tokio::test]
async fn a_stored_template_chosen_at_onboarding_sends_its_text_html_and_logo() {
    let (agent, sink) = agent_with_sink().await;
    let acme = OrgClient::create(&agent, "Acme Gym").await;
    let created = acme
        .call("POST", EMAIL_TEMPLATES, Some(template_request()))
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    let id = created.body["data"]["id"].as_str().unwrap().to_string();
    assert_eq!(created.body["data"]["name"], "Welcome to the gym");
    assert_eq!(created.body["data"]["logo"], logo_data_url());

    let mut request = email_customer("Jane Doe", "jane@example.com");
    request["emailTemplateId"] = json!(id);
    let onboarded = acme.call("POST", CUSTOMERS, Some(request)).await;
    assert_eq!(onboarded.status, 201, "{}", onboarded.body);
    assert_eq!(onboarded.body["data"]["status"], "Invited");
    assert_eq!(onboarded.body["data"]["emailTemplateId"], id.as_str());
    let url = onboarded.body["data"]["invitation"]["url"]
        .as_str()
        .unwrap()
        .to_string();

    let raw = sink.raw(1).await;
    let message = MessageParser::default().parse(&raw[..]).unwrap();
    assert_eq!(
        message.subject(),
        Some("Jane Doe, your Acme Gym membership card")
    );
    assert_eq!(
        tree(&message, 0),
        "multipart/alternative[text/plain,multipart/related[text/html,image/png#invite-qr,image/png#org-logo]]"
    );
    assert_eq!(
        message
            .body_text(0)
            .unwrap()
            .replace("\r\n", "\n")
            .trim_end(),
        format!("Hi Jane Doe,\n\nYour Acme Gym membership card is ready: {url}")
    );
    let html = message.body_html(0).unwrap();
    assert!(html.contains("Your membership card is ready."), "{html}");
    assert!(html.contains("src=\"cid:org-logo\""), "{html}");
    let logo = message
        .parts
        .iter()
        .find(|p| p.content_id().map(|c| c.trim_matches(['<', '>'])) == Some("org-logo"))
        .unwrap();
    assert_eq!(
        logo.contents(),
        std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/data/acme-logo.png"
        ))
        .unwrap()
    );

    let dir = tempfile::tempdir().unwrap();
    let page = resolve_cids(&raw, dir.path());
    let desktop = screenshot(&page, "template-desktop.png", 900, 1100);
    assert_eq!(zbarimg(&desktop), url);
    screenshot(&page, "template-phone.png", 390, 1200);
}

/// `html` with the numeric character references the template engine writes for `< > & "`
/// as the named ones, so that one expectation covers both escapers.
fn named_entities(html: &str) -> String {
    html.replace("&#60;", "&lt;")
        .replace("&#62;", "&gt;")
        .replace("&#38;", "&amp;")
        .replace("&#34;", "&quot;")
}

#[tokio::test]
async fn hostile_names_and_values_are_escaped_in_every_part_that_is_html() {
    let (agent, sink) = agent_with_sink().await;
    let org = OrgClient::create(&agent, "Evil <img src=x onerror=alert(1)> & Co").await;
    let mut template = template_request();
    template["name"] = json!("<script>alert('name')</script>");
    let created = org.call("POST", EMAIL_TEMPLATES, Some(template)).await;
    assert_eq!(created.status, 201, "{}", created.body);
    let id = created.body["data"]["id"].as_str().unwrap().to_string();
    let mut request = email_customer("<b onmouseover=\"x()\">Mal</b>", "mal@example.com");
    request["emailTemplateId"] = json!(id);
    let onboarded = org.call("POST", CUSTOMERS, Some(request)).await;
    assert_eq!(onboarded.status, 201, "{}", onboarded.body);

    let raw = sink.raw(1).await;
    let message = MessageParser::default().parse(&raw[..]).unwrap();
    let html = named_entities(&message.body_html(0).unwrap());
    for raw_markup in ["<img src=x", "<b onmouseover", "<script"] {
        assert!(
            !html.contains(raw_markup),
            "{raw_markup} is in the HTML: {html}"
        );
    }
    assert!(
        html.contains("Evil &lt;img src=x onerror=alert(1)&gt; &amp; Co invites you"),
        "{html}"
    );
    assert!(html.contains("Hi &lt;b onmouseover=&quot;x()&quot;&gt;Mal&lt;/b&gt;,"));
    // The text part and the subject are plain text: the values as they are.
    assert!(message
        .body_text(0)
        .unwrap()
        .starts_with("Hi <b onmouseover=\"x()\">Mal</b>,"));

    // The preview escapes the same way.
    let preview = org
        .call("GET", &format!("{EMAIL_TEMPLATES}/{id}/preview"), None)
        .await;
    assert_eq!(preview.status, 200, "{}", preview.body);
    let html = preview.body["data"]["html"].as_str().unwrap();
    assert!(!html.contains("<img src=x"), "{html}");
    assert!(
        html.contains("src=\"data:image/png;base64,"),
        "images inline"
    );
    assert!(!html.contains("cid:"));
}

#[tokio::test]
async fn email_templates_are_listed_read_replaced_previewed_and_deleted() {
    let agent = Agent::start(Default::default()).await;
    let acme = OrgClient::create(&agent, "Acme").await;
    let mut ids = Vec::new();
    for n in 0..3 {
        let mut request = template_request();
        request["name"] = json!(format!("T{n}"));
        request["logo"] = Value::Null;
        let created = acme.call("POST", EMAIL_TEMPLATES, Some(request)).await;
        assert_eq!(created.status, 201, "{}", created.body);
        ids.push(created.body["data"]["id"].as_str().unwrap().to_string());
    }
    let page = acme
        .call("GET", &format!("{EMAIL_TEMPLATES}?pageSize=2&page=1"), None)
        .await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert_eq!(page.body["data"]["totalItem"], 3);
    let names: Vec<&str> = page.body["data"]["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["T0", "T1"], "oldest first");

    let mut replacement = template_request();
    replacement["name"] = json!("Renamed");
    replacement["subject"] = json!("New subject for {{customerName}}");
    let replaced = acme
        .call(
            "PUT",
            &format!("{EMAIL_TEMPLATES}/{}", ids[1]),
            Some(replacement),
        )
        .await;
    assert_eq!(replaced.status, 200, "{}", replaced.body);
    let read = acme
        .call("GET", &format!("{EMAIL_TEMPLATES}/{}", ids[1]), None)
        .await;
    assert_eq!(read.body["data"]["name"], "Renamed");
    let preview = acme
        .call(
            "GET",
            &format!("{EMAIL_TEMPLATES}/{}/preview", ids[1]),
            None,
        )
        .await;
    assert_eq!(preview.body["data"]["subject"], "New subject for Jane Doe");
    assert!(preview.body["data"]["text"]
        .as_str()
        .unwrap()
        .contains("/i/PREVIEW"));

    let deleted = acme
        .call("DELETE", &format!("{EMAIL_TEMPLATES}/{}", ids[0]), None)
        .await;
    assert_eq!(deleted.status, 200, "{}", deleted.body);
    let gone = acme
        .call("GET", &format!("{EMAIL_TEMPLATES}/{}", ids[0]), None)
        .await;
    assert_eq!(gone.status, 404);
    assert_eq!(
        gone.body["error"]["message"],
        format!("no email template has the id {:?}", ids[0])
    );
}

#[tokio::test]
async fn bad_email_templates_are_refused_naming_what_is_wrong_and_nothing_is_stored() {
    let agent = Agent::start(Default::default()).await;
    let acme = OrgClient::create(&agent, "Acme").await;
    let with = |field: &str, value: Value| {
        let mut request = template_request();
        request[field] = value;
        request
    };
    let cases = [
        (
            with("subject", json!("Hi {{customer_name}}")),
            "subject uses the unknown placeholder {{customer_name}} (allowed: {{customerName}}, {{organizationName}}, {{inviteUrl}})",
        ),
        (
            with("htmlBody", json!("<p>{{ inviteUrl }}</p>")),
            "htmlBody uses the unknown placeholder {{ inviteUrl }}",
        ),
        (
            with("textBody", json!("Hello, no link here")),
            "textBody must contain the {{inviteUrl}} placeholder",
        ),
        (
            with("textBody", json!("{{inviteUrl}} {{customerName")),
            "textBody has a {{ without its closing }}",
        ),
        (with("name", json!("")), "name must not be empty"),
        (with("subject", json!("two\nlines")), "subject must be one line"),
        (with("logo", json!("https://example.com/logo.png")), "logo must be a data URL"),
        (
            with(
                "logo",
                json!(format!(
                    "data:image/svg+xml;base64,{}",
                    base64::engine::general_purpose::STANDARD.encode("<svg onload=alert(1)/>")
                )),
            ),
            "logo is not a PNG, JPEG or GIF image",
        ),
        (with("colour", json!("red")), "colour is not an email template field"),
        (with("htmlBody", json!(12)), "htmlBody must be a string, not a number"),
    ];
    for (request, expected) in cases {
        let reply = acme.call("POST", EMAIL_TEMPLATES, Some(request)).await;
        assert_eq!(reply.status, 400, "{expected}: {}", reply.body);
        let message = reply.body["error"]["message"].as_str().unwrap();
        assert!(message.starts_with(expected), "{message} / {expected}");
    }
    let list = acme.call("GET", EMAIL_TEMPLATES, None).await;
    assert_eq!(list.body["data"]["totalItem"], 0, "nothing was stored");

    // A bad replacement leaves the template as it was.
    let created = acme
        .call("POST", EMAIL_TEMPLATES, Some(template_request()))
        .await;
    let id = created.body["data"]["id"].as_str().unwrap();
    let reply = acme
        .call(
            "PUT",
            &format!("{EMAIL_TEMPLATES}/{id}"),
            Some(with("subject", json!("{{nope}}"))),
        )
        .await;
    assert_eq!(reply.status, 400);
    let read = acme
        .call("GET", &format!("{EMAIL_TEMPLATES}/{id}"), None)
        .await;
    assert_eq!(read.body["data"], created.body["data"]);
}

#[tokio::test]
async fn an_inline_email_template_with_an_unknown_placeholder_is_refused_naming_it() {
    let agent = Agent::start(Default::default()).await;
    let acme = OrgClient::create(&agent, "Acme").await;
    let mut request = email_customer("Ann", "ann@example.com");
    request["emailTemplate"] = json!({
        "subject": "Hi {{firstName}}",
        "body": "{{inviteUrl}}"
    });
    let reply = acme.call("POST", CUSTOMERS, Some(request)).await;
    assert_eq!(reply.status, 400, "{}", reply.body);
    assert!(reply.body["error"]["message"]
        .as_str()
        .unwrap()
        .starts_with("emailTemplate.subject uses the unknown placeholder {{firstName}}"));
    let customers = acme.call("GET", CUSTOMERS, None).await;
    assert_eq!(customers.body["data"]["totalItem"], 0);
}

#[tokio::test]
async fn onboarding_with_an_email_template_not_of_the_organisation_stores_nothing() {
    let agent = Agent::start(Default::default()).await;
    let acme = OrgClient::create(&agent, "Acme").await;
    let globex = OrgClient::create(&agent, "Globex").await;
    let theirs = globex
        .call("POST", EMAIL_TEMPLATES, Some(template_request()))
        .await;
    let id = theirs.body["data"]["id"].as_str().unwrap().to_string();
    // Another organisation's template cannot be read, changed, previewed or deleted...
    for (method, path, body) in [
        ("GET", format!("{EMAIL_TEMPLATES}/{id}"), None),
        ("GET", format!("{EMAIL_TEMPLATES}/{id}/preview"), None),
        (
            "PUT",
            format!("{EMAIL_TEMPLATES}/{id}"),
            Some(template_request()),
        ),
        ("DELETE", format!("{EMAIL_TEMPLATES}/{id}"), None),
    ] {
        let reply = acme.call(method, &path, body).await;
        assert_eq!(reply.status, 404, "{method} {path}: {}", reply.body);
    }
    // ...nor chosen for an invitation.
    for bad in [id.as_str(), "000000000000000000000000", "../../etc"] {
        let mut request = email_customer("Ann", "ann@example.com");
        request["emailTemplateId"] = json!(bad);
        let reply = acme.call("POST", CUSTOMERS, Some(request)).await;
        assert_eq!(reply.status, 400, "{}", reply.body);
        assert_eq!(
            reply.body["error"]["message"],
            format!("emailTemplateId names no email template of Acme ({bad:?})")
        );
    }
    let mut both = email_customer("Ann", "ann@example.com");
    both["emailTemplateId"] = json!(id);
    both["emailTemplate"] = json!({"subject": "Hi", "body": "{{inviteUrl}}"});
    let reply = acme.call("POST", CUSTOMERS, Some(both)).await;
    assert_eq!(reply.status, 400);
    assert!(reply.body["error"]["message"]
        .as_str()
        .unwrap()
        .starts_with("emailTemplateId and emailTemplate are exclusive"));
    let customers = acme.call("GET", CUSTOMERS, None).await;
    assert_eq!(customers.body["data"]["totalItem"], 0, "nothing was stored");
    let kept = globex
        .call("GET", &format!("{EMAIL_TEMPLATES}/{id}"), None)
        .await;
    assert_eq!(kept.status, 200, "Globex's template is untouched");
}

#[tokio::test]
async fn a_resend_after_the_template_is_deleted_sends_the_default_email() {
    let (agent, sink) = agent_with_sink().await;
    let acme = OrgClient::create(&agent, "Acme Gym").await;
    let created = acme
        .call("POST", EMAIL_TEMPLATES, Some(template_request()))
        .await;
    let id = created.body["data"]["id"].as_str().unwrap().to_string();
    let mut request = email_customer("Jane Doe", "jane@example.com");
    request["emailTemplateId"] = json!(id);
    let onboarded = acme.call("POST", CUSTOMERS, Some(request)).await;
    let customer = onboarded.body["data"]["id"].as_str().unwrap().to_string();
    assert_eq!(
        sink.message(1).await["subject"],
        "Jane Doe, your Acme Gym membership card"
    );
    let resent = acme
        .call("POST", &format!("{CUSTOMERS}/{customer}/invitation"), None)
        .await;
    assert_eq!(resent.status, 200, "{}", resent.body);
    assert_eq!(
        sink.message(2).await["subject"],
        "Jane Doe, your Acme Gym membership card",
        "a resend uses the template chosen at onboarding"
    );
    let deleted = acme
        .call("DELETE", &format!("{EMAIL_TEMPLATES}/{id}"), None)
        .await;
    assert_eq!(deleted.status, 200);
    let resent = acme
        .call("POST", &format!("{CUSTOMERS}/{customer}/invitation"), None)
        .await;
    assert_eq!(resent.status, 200, "{}", resent.body);
    let mail = sink.message(3).await;
    assert_eq!(mail["subject"], "Acme Gym invites you to connect");
    assert_eq!(mail["images"].as_array().unwrap().len(), 1, "no logo");
}

#[tokio::test]
async fn an_organisation_keeps_at_most_the_cap_of_email_templates() {
    let agent = Agent::start(Default::default()).await;
    let acme = OrgClient::create(&agent, "Acme").await;
    let mut request = template_request();
    request["logo"] = Value::Null;
    for _ in 0..agent::issuer::MAX_EMAIL_TEMPLATES {
        let created = acme
            .call("POST", EMAIL_TEMPLATES, Some(request.clone()))
            .await;
        assert_eq!(created.status, 201, "{}", created.body);
    }
    let refused = acme.call("POST", EMAIL_TEMPLATES, Some(request)).await;
    assert_eq!(refused.status, 409, "{}", refused.body);
    assert_eq!(
        refused.body["error"]["message"],
        format!(
            "Acme has {0} email templates, the most it may keep ({0}); delete one first",
            agent::issuer::MAX_EMAIL_TEMPLATES
        )
    );
    let listed = acme.call("GET", EMAIL_TEMPLATES, None).await;
    assert_eq!(
        listed.body["data"]["totalItem"],
        agent::issuer::MAX_EMAIL_TEMPLATES
    );
}
