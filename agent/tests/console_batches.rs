//! The console's batch issuance and verification pages over HTTP (the browser journey is in
//! tests/tests/console.rs): the CSV upload refused without the CSRF token, refusals shown
//! beside the field with nothing stored, another organisation's batch not found, hostile
//! names escaped in the report, the failures' CSV, and a batch uploaded at one agent of a
//! PostgreSQL cluster watched to its end from another.

use lanyard_test_support as support;

use std::time::Duration;

use serde_json::{json, Value};
use support::console::{ConsoleClient, ConsolePage, TEST_PASSWORD};
use support::{Agent, Cluster, OrgClient};

/// A multipart form body of `fields` (`(name, file name, content)`) and its content type.
fn multipart(fields: &[(&str, Option<&str>, &[u8])]) -> (String, Vec<u8>) {
    let boundary = "lanyard-test-boundary-7f3a9c";
    let mut body = Vec::new();
    for (name, file, content) in fields {
        body.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
        match file {
            Some(file) => body.extend_from_slice(
                format!(
                    "Content-Disposition: form-data; name=\"{name}\"; filename=\"{file}\"\r\n\
                     Content-Type: text/csv\r\n\r\n"
                )
                .as_bytes(),
            ),
            None => body.extend_from_slice(
                format!("Content-Disposition: form-data; name=\"{name}\"\r\n\r\n").as_bytes(),
            ),
        }
        body.extend_from_slice(content);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

/// Uploads `csv` for `template` as the console's form does, with `csrf` as its token.
async fn upload(
    console: &ConsoleClient,
    csrf: Option<&str>,
    template: &str,
    csv: &[u8],
) -> ConsolePage {
    let mut fields: Vec<(&str, Option<&str>, &[u8])> = Vec::new();
    if let Some(csrf) = csrf {
        fields.push(("_csrf", None, csrf.as_bytes()));
    }
    fields.push(("templateId", None, template.as_bytes()));
    fields.push(("file", Some("members.csv"), csv));
    let (content_type, body) = multipart(&fields);
    let response = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .post(format!("{}/console/batches", console.url))
        .header("content-type", content_type)
        .header(
            "cookie",
            format!("lanyard_console={}", console.session.as_deref().unwrap()),
        )
        .body(body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response.text().await.unwrap();
    ConsolePage {
        status,
        headers,
        body,
    }
}

/// The batch id a successful upload redirected to.
fn batch_id(page: &ConsolePage) -> String {
    assert_eq!(page.status, 303, "{}", page.body);
    page.location()
        .unwrap()
        .strip_prefix("/console/batches/")
        .unwrap()
        .to_string()
}

/// Asks for the batch's progress until it is done (the worker runs in the background).
async fn until_done(console: &ConsoleClient, id: &str) -> Value {
    for _ in 0..600 {
        let page = console
            .get(&format!("/console/batches/{id}/progress"))
            .await;
        assert_eq!(page.status, 200, "{}", page.body);
        let progress: Value = serde_json::from_str(&page.body).unwrap();
        if progress["state"] == "done" {
            return progress;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("batch {id} did not finish");
}

async fn org_with_user(agent: &Agent, name: &str, email: &str) -> (OrgClient, ConsoleClient) {
    let org = OrgClient::create(agent, name).await;
    let console = org.console_user(email).await;
    (org, console)
}

#[tokio::test]
async fn console_batch_upload_without_the_csrf_token_is_refused_and_stores_nothing() {
    let agent = Agent::start(Default::default()).await;
    let (acme, console) = org_with_user(&agent, "Acme", "staff@acme.test").await;
    let template = acme.template("Membership").await;
    let csv = b"name,medium\nAda,email\n";

    let refused = upload(&console, None, &template, csv).await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert!(
        refused.text().contains("the request carries no CSRF token"),
        "{}",
        refused.body
    );
    let wrong = upload(&console, Some("not-the-token"), &template, csv).await;
    assert_eq!(wrong.status, 403);
    assert!(
        wrong.text().contains("the request's CSRF token is wrong"),
        "{}",
        wrong.body
    );
    let list = console.get("/console/batches").await;
    assert!(list.text().contains("No batch yet."), "{}", list.body);
}

#[tokio::test]
async fn console_batch_refusals_are_shown_beside_the_field_and_store_nothing() {
    let agent = Agent::start(Default::default()).await;
    let (acme, console) = org_with_user(&agent, "Acme", "staff@acme.test").await;
    let template = acme.template("Membership").await;
    let csrf = console.csrf().await;

    let page = upload(
        &console,
        Some(&csrf),
        &template,
        b"email\nada@example.com\n",
    )
    .await;
    assert_eq!(page.status, 400, "{}", page.body);
    assert!(
        page.text().contains(
            "<p class=\"field-error\" id=\"file-error\">The file: name is a required column of the CSV header row</p>"
        ),
        "{}",
        page.body
    );
    assert!(page.body.contains("aria-describedby=\"file-error\""));

    let page = upload(
        &console,
        Some(&csrf),
        "urn:template:nope",
        b"name,medium\nA,email\n",
    )
    .await;
    assert_eq!(page.status, 400, "{}", page.body);
    assert!(
        page.text()
            .contains("id=\"templateId-error\">The template names no template of Acme</p>"),
        "{}",
        page.body
    );
    let page = upload(&console, Some(&csrf), &template, b"").await;
    assert_eq!(page.status, 422);
    assert!(
        page.text()
            .contains("Choose a CSV file with a header row and one customer a row"),
        "{}",
        page.body
    );
    // Beyond the console's usual body limit the upload is still read, and refused only
    // beyond the batch's own, naming it.
    let mut wide = String::from("email\n");
    while wide.len() < 300 * 1024 {
        wide.push_str("someone@example.com\n");
    }
    let page = upload(&console, Some(&csrf), &template, wide.as_bytes()).await;
    assert_eq!(page.status, 400, "{}", page.body);
    assert!(
        page.text()
            .contains("The file: name is a required column of the CSV header row"),
        "{}",
        page.body
    );
    let big = vec![b'a'; agent::issuer::MAX_BATCH_CSV_BYTES + 1];
    let page = upload(&console, Some(&csrf), &template, &big).await;
    assert_eq!(page.status, 400, "{}", page.body);
    assert!(
        page.text().contains(&format!(
            "The file is {} bytes; a batch CSV is at most {} bytes",
            big.len(),
            agent::issuer::MAX_BATCH_CSV_BYTES
        )),
        "{}",
        page.body
    );
    let list = console.get("/console/batches").await;
    assert!(list.text().contains("No batch yet."), "{}", list.body);
}

#[tokio::test]
async fn console_batch_of_another_organisation_is_not_found_and_names_are_escaped() {
    let agent = Agent::start(Default::default()).await;
    let (acme, console) = org_with_user(&agent, "Acme", "staff@acme.test").await;
    let (_, other) = org_with_user(&agent, "Globex", "staff@globex.test").await;
    let template = acme.template("Membership").await;
    let csrf = console.csrf().await;
    let csv = "name,medium,email\n\
               \"<img src=x onerror=alert(1)>\",email,not-an-email\n\
               Ada,email,ada@example.com\n";
    let id = batch_id(&upload(&console, Some(&csrf), &template, csv.as_bytes()).await);
    let progress = until_done(&console, &id).await;
    assert_eq!(
        (
            &progress["succeeded"],
            &progress["failed"],
            &progress["total"]
        ),
        (&json!(1), &json!(1), &json!(2))
    );

    let page = console.get(&format!("/console/batches/{id}")).await;
    assert_eq!(page.status, 200);
    assert!(
        page.body.contains("&#60;img src=x onerror=alert(1)&#62;"),
        "{}",
        page.body
    );
    assert!(
        !page.body.contains("<img src=x"),
        "a hostile name reached the page raw"
    );

    let failures = console
        .get(&format!("/console/batches/{id}/failures.csv"))
        .await;
    assert_eq!(failures.status, 200);
    assert_eq!(failures.headers["content-type"], "text/csv; charset=utf-8");
    assert_eq!(
        failures.headers["content-disposition"],
        format!("attachment; filename=\"failures-{id}.csv\"").as_str()
    );
    let lines: Vec<&str> = failures.body.lines().collect();
    assert_eq!(lines[0], "name,medium,email,error");
    assert!(
        lines[1].starts_with("<img src=x onerror=alert(1)>,email,not-an-email,"),
        "{}",
        failures.body
    );
    assert_eq!(lines.len(), 2);

    for path in [
        format!("/console/batches/{id}"),
        format!("/console/batches/{id}/progress"),
        format!("/console/batches/{id}/failures.csv"),
    ] {
        let page = other.get(&path).await;
        assert_eq!(page.status, 404, "{path}: {}", page.body);
        assert!(
            page.text()
                .contains(&format!("no batch has the id \"{id}\"")),
            "{}",
            page.body
        );
    }
    let list = other.get("/console/batches").await;
    assert!(
        list.text().contains("No batch yet."),
        "Globex sees no batch of Acme"
    );
}

#[tokio::test]
async fn console_batch_uploaded_at_one_agent_is_watched_to_its_end_at_another_on_postgres() {
    let cluster = Cluster::start(2);
    let first = cluster.direct(0);
    let second = cluster.direct(1);
    let acme = OrgClient::create(&first, "Acme").await;
    let template = acme.template("Membership").await;
    let added = acme.add_user("staff@acme.test", TEST_PASSWORD).await;
    assert_eq!(added.status, 201, "{}", added.body);
    let at_first = ConsoleClient::sign_in(&first.url, "staff@acme.test", TEST_PASSWORD)
        .await
        .unwrap_or_else(|page| panic!("{}", page.body));
    let csrf = at_first.csrf().await;
    let mut csv = String::from("name,medium,email,skill\n");
    for i in 0..20 {
        csv.push_str(&format!("Customer {i},email,c{i}@example.com,s{i}\n"));
    }
    csv.push_str("Bad,email,nope,x\n");
    let id = batch_id(&upload(&at_first, Some(&csrf), &template, csv.as_bytes()).await);

    // The same session at the other agent: the batch and its progress are in the store.
    let mut at_second = ConsoleClient::anonymous(&second.url);
    at_second.session = at_first.session.clone();
    let progress = until_done(&at_second, &id).await;
    assert_eq!(
        (
            &progress["processed"],
            &progress["succeeded"],
            &progress["failed"]
        ),
        (&json!(21), &json!(20), &json!(1))
    );
    let page = at_second.get(&format!("/console/batches/{id}")).await;
    assert!(page.text().contains("Customer 19"), "{}", page.body);
    let failures = at_second
        .get(&format!("/console/batches/{id}/failures.csv"))
        .await;
    assert!(
        failures
            .body
            .lines()
            .nth(1)
            .unwrap()
            .starts_with("Bad,email,nope,x,\"email \"\"nope\"\""),
        "{}",
        failures.body
    );
    let customers = acme
        .call(
            "GET",
            "/core/api/v1/programmatic/customer?pageSize=50",
            None,
        )
        .await;
    assert_eq!(customers.status, 200);
    assert_eq!(
        customers.body["data"]["totalItem"], 20,
        "each good row onboarded one customer, once"
    );
}

#[tokio::test]
async fn console_verification_is_created_from_the_form_and_kept_to_its_organisation() {
    let agent = Agent::start(Default::default()).await;
    let (acme, console) = org_with_user(&agent, "Acme", "staff@acme.test").await;
    let (_, other) = org_with_user(&agent, "Globex", "staff@globex.test").await;
    let template = acme.template("Membership").await;

    let form = console
        .get(&format!("/console/verifications/new?templateId={template}"))
        .await;
    assert_eq!(form.status, 200, "{}", form.body);
    assert!(form.body.contains("value=\"skill\""), "{}", form.body);

    // Without the token: refused, nothing created.
    let refused = console
        .post_raw(
            "/console/verifications",
            &[
                ("templateId", template.as_str()),
                ("requiredFields", "skill"),
            ],
        )
        .await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert!(refused.text().contains("the request carries no CSRF token"));
    // No field chosen: said beside the fields.
    let page = console
        .post(
            "/console/verifications",
            &[("templateId", template.as_str())],
        )
        .await;
    assert_eq!(page.status, 422);
    assert!(
        page.text().contains(
            "id=\"requiredFields-error\">Choose at least one field the holder must disclose"
        ),
        "{}",
        page.body
    );
    let page = console
        .post(
            "/console/verifications",
            &[
                ("templateId", template.as_str()),
                ("requiredFields", "shoeSize"),
            ],
        )
        .await;
    assert_eq!(page.status, 422);
    assert!(
        page.text().contains(&format!(
            "requiredFields[0] \"shoeSize\" is not a field of template {template}"
        )),
        "{}",
        page.body
    );
    let list = console.get("/console/verifications").await;
    assert!(
        list.text().contains("No verification yet."),
        "{}",
        list.body
    );

    let hostile = "<script>alert(1)</script>";
    let created = console
        .post(
            "/console/verifications",
            &[
                ("templateId", template.as_str()),
                ("requiredFields", "skill"),
                ("purpose", hostile),
            ],
        )
        .await;
    assert_eq!(created.status, 303, "{}", created.body);
    let path = created.location().unwrap().to_string();
    let id = path.strip_prefix("/console/verifications/").unwrap();
    let page = console.get(&path).await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("<svg"), "the QR code is on the page");
    assert!(page
        .body
        .contains("&#60;script&#62;alert(1)&#60;/script&#62;"));
    assert!(
        !page.body.contains(hostile),
        "the purpose reached the page raw"
    );
    let result = console
        .get(&format!("/console/verifications/{id}/result?wait=0"))
        .await;
    let result: Value = serde_json::from_str(&result.body).unwrap();
    assert_eq!(result["state"], "pending");
    let (status, api) = acme.api("GET", &format!("/verification/{id}"), None).await;
    assert_eq!(status, 200);
    assert_eq!(
        api["purpose"], hostile,
        "the console made it with the API's code"
    );

    for path in [
        format!("/console/verifications/{id}"),
        format!("/console/verifications/{id}/result?wait=0"),
    ] {
        let page = other.get(&path).await;
        assert_eq!(page.status, 404, "{path}: {}", page.body);
        assert!(
            page.text()
                .contains(&format!("no verification has the id \"{id}\"")),
            "{}",
            page.body
        );
    }
}
