//! The credential template API against the seed's document: create, get, list and delete over
//! real HTTP, responses compared member by member with the seed's example JSON, one
//! organisation's templates invisible to another, and the public documents that go with them.

use lanyard_test_support as support;

use lanyard_protocol::did::DidDocument;
use serde_json::{json, Value};
use support::{
    seed_examples, seed_template_request, shape_differences, Agent, OrgClient, TEMPLATES,
};

#[tokio::test]
async fn the_seed_example_creates_a_template_shaped_like_the_seeds() {
    let agent = Agent::start(Default::default()).await;
    let acme = OrgClient::create(&agent, "Acme").await;
    let examples = seed_examples();
    assert_eq!(
        examples.len(),
        4,
        "create, get, list and delete examples in the seed"
    );

    let created = acme
        .call("POST", TEMPLATES, Some(seed_template_request()))
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    let differences = shape_differences(&examples[0], &created.body, "");
    assert!(
        differences.is_empty(),
        "differs from the seed's create example: {differences:#?}"
    );

    let template = &created.body["data"];
    let id = template["templateId"].as_str().unwrap();
    assert!(
        id.starts_with("urn:template:lanyard:template-demo-"),
        "{id}"
    );
    assert_eq!(template["detail"]["id"], template["templateId"]);
    assert_eq!(template["name"], "Template Demo");
    assert_eq!(template["credentialIssuer"], "Dentity");
    assert_eq!(
        template["customFields"],
        json!(["holderFullNamePopulatedAtIssuance"])
    );
    assert_eq!(template["partner"], acme.id.as_str());
    assert_eq!(template["detail"]["createdBy"], acme.issuer_did.as_str());
    // The seed's fields: the standard three, then the custom one with its description.
    let fields = &template["detail"]["fields"];
    assert_eq!(
        fields["holderFullNamePopulatedAtIssuance"],
        json!({
            "title": "holderFullNamePopulatedAtIssuance",
            "description": "Holder Full Name (Populated at Issuance)",
            "optional": true,
            "type": 0
        })
    );
    assert_eq!(fields["credentialIssuer"]["optional"], false);
    assert_eq!(fields["holderFullName"]["optional"], true);
    assert_eq!(
        template["detail"]["fieldOrdering"]["holderFullNamePopulatedAtIssuance"]["order"],
        3
    );
    assert_eq!(
        template["customAttributes"],
        json!([{ "key": "holderFullNamePopulatedAtIssuance", "description": "Holder Full Name (Populated at Issuance)" }])
    );
    assert_eq!(
        (
            template["totalOffered"].as_u64(),
            template["totalIssued"].as_u64()
        ),
        (Some(0), Some(0))
    );

    let path = format!("{TEMPLATES}/{id}");
    let fetched = acme.call("GET", &path, None).await;
    assert_eq!(fetched.status, 200, "{}", fetched.body);
    assert_eq!(fetched.body, created.body, "GET answers what POST did");
    let differences = shape_differences(&examples[1], &fetched.body, "");
    assert!(
        differences.is_empty(),
        "differs from the seed's get example: {differences:#?}"
    );

    let listed = acme
        .call("GET", &format!("{TEMPLATES}?page=1&pageSize=5"), None)
        .await;
    assert_eq!(listed.status, 200, "{}", listed.body);
    let differences = shape_differences(&examples[2], &listed.body, "");
    assert!(
        differences.is_empty(),
        "differs from the seed's list example: {differences:#?}"
    );

    let deleted = acme.call("DELETE", &path, None).await;
    assert_eq!(deleted.status, 200, "{}", deleted.body);
    assert_eq!(deleted.body, examples[3], "the seed's delete answer");
    assert_eq!(acme.call("GET", &path, None).await.status, 404);
    assert_eq!(
        acme.call("DELETE", &path, None).await.status,
        404,
        "deleted once only"
    );

    // The schema URI and the issuer's DID document are served.
    let schema_uri = template["detail"]["schemaUri"].as_str().unwrap();
    assert!(schema_uri.starts_with(&agent.url), "{schema_uri}");
}

/// `n` templates "Member 0", "Member 1", ... of `org`; the create answers, in order.
async fn members(org: &OrgClient, n: usize) -> Vec<Value> {
    let mut made = Vec::new();
    for n in 0..n {
        let mut request = seed_template_request();
        request["templateName"] = json!(format!("Member {n}"));
        let created = org.call("POST", TEMPLATES, Some(request)).await;
        assert_eq!(created.status, 201, "{}", created.body);
        made.push(created.body);
    }
    made
}

#[tokio::test]
async fn a_template_is_found_and_deleted_by_its_id_as_well_as_its_urn() {
    let agent = Agent::start(Default::default()).await;
    let acme = OrgClient::create(&agent, "Acme").await;
    let globex = OrgClient::create(&agent, "Globex").await;
    let made = members(&acme, 3).await;
    let object_id = made[1]["data"]["_id"].as_str().unwrap().to_string();
    let urn = made[1]["data"]["templateId"].as_str().unwrap().to_string();
    assert_eq!(object_id.len(), 24, "{object_id}");

    let by_id = format!("{TEMPLATES}/{object_id}");
    let fetched = acme.call("GET", &by_id, None).await;
    assert_eq!(fetched.status, 200, "{}", fetched.body);
    assert_eq!(fetched.body, made[1], "GET by _id answers what POST did");

    // Another organisation's _id is not found, and nothing of Acme's goes.
    let theirs = globex.call("GET", &by_id, None).await;
    assert_eq!(theirs.status, 404, "{}", theirs.body);
    assert!(
        theirs
            .message()
            .contains(&format!("no template has the id {object_id:?}")),
        "{}",
        theirs.message()
    );
    assert_eq!(globex.call("DELETE", &by_id, None).await.status, 404);
    // An id shaped like an _id that no template has.
    let unknown = acme
        .call("GET", &format!("{TEMPLATES}/{}", "0".repeat(24)), None)
        .await;
    assert_eq!(unknown.status, 404, "{}", unknown.body);

    let deleted = acme.call("DELETE", &by_id, None).await;
    assert_eq!(deleted.status, 200, "{}", deleted.body);
    assert_eq!(deleted.body, json!({ "data": { "isSuccess": true } }));
    for path in [by_id.clone(), format!("{TEMPLATES}/{urn}")] {
        assert_eq!(acme.call("GET", &path, None).await.status, 404, "{path}");
    }
    assert_eq!(
        acme.call("DELETE", &by_id, None).await.status,
        404,
        "deleted once only"
    );
    // The others are untouched.
    let listed = acme.call("GET", TEMPLATES, None).await.body["data"].clone();
    assert_eq!(listed["totalItem"], 2, "{listed}");
    for other in [&made[0], &made[2]] {
        let path = format!("{TEMPLATES}/{}", other["data"]["_id"].as_str().unwrap());
        assert_eq!(acme.call("GET", &path, None).await.body, *other);
    }
}

#[tokio::test]
async fn listing_pages_through_an_organisations_templates_only() {
    let agent = Agent::start(Default::default()).await;
    let acme = OrgClient::create(&agent, "Acme").await;
    let globex = OrgClient::create(&agent, "Globex").await;
    let ids: Vec<Value> = members(&acme, 5)
        .await
        .iter()
        .map(|created| created["data"]["templateId"].clone())
        .collect();
    globex
        .call("POST", TEMPLATES, Some(seed_template_request()))
        .await;

    let page = |n: u32, size: u32| {
        let acme = &acme;
        async move {
            acme.call(
                "GET",
                &format!("{TEMPLATES}?page={n}&pageSize={size}"),
                None,
            )
            .await
            .body["data"]
                .clone()
        }
    };
    let first = page(1, 2).await;
    assert_eq!(
        (first["page"].as_u64(), first["pageSize"].as_u64()),
        (Some(1), Some(2))
    );
    assert_eq!(
        (first["totalItem"].as_u64(), first["totalPage"].as_u64()),
        (Some(5), Some(3))
    );
    let listed: Vec<Value> = [page(1, 2).await, page(2, 2).await, page(3, 2).await]
        .iter()
        .flat_map(|p| p["data"].as_array().unwrap().clone())
        .map(|t| t["templateId"].clone())
        .collect();
    assert_eq!(listed, ids, "every template once, oldest first");
    assert_eq!(page(4, 2).await["data"], json!([]), "past the end is empty");
    let defaults = acme.call("GET", TEMPLATES, None).await.body["data"].clone();
    assert_eq!(
        (defaults["page"].as_u64(), defaults["pageSize"].as_u64()),
        (Some(1), Some(10))
    );

    // Globex sees only its own, and cannot read or delete Acme's.
    let theirs = globex.call("GET", TEMPLATES, None).await.body["data"].clone();
    assert_eq!(theirs["totalItem"], 1);
    let acme_path = format!("{TEMPLATES}/{}", ids[0].as_str().unwrap());
    assert_eq!(globex.call("GET", &acme_path, None).await.status, 404);
    assert_eq!(globex.call("DELETE", &acme_path, None).await.status, 404);
    assert_eq!(
        acme.call("GET", &acme_path, None).await.status,
        200,
        "still there"
    );
}

#[tokio::test]
async fn organisations_publish_their_issuer_did_and_template_schemas() {
    let agent = Agent::start(Default::default()).await;
    let acme = OrgClient::create(&agent, "Acme").await;
    let port = agent.url.rsplit(':').next().unwrap();
    assert_eq!(
        acme.issuer_did,
        format!("did:web:127.0.0.1%3A{port}:orgs:{}", acme.id),
        "did:web under the agent's base URL"
    );
    let response = reqwest::get(format!("{}/orgs/{}/did.json", agent.url, acme.id))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/did+json");
    let document: DidDocument = response.json().await.unwrap();
    assert_eq!(document.id, acme.issuer_did);
    assert_eq!(
        document.assertion_keys().len(),
        1,
        "one key signs credentials"
    );
    assert!(
        acme.didcomm_did.starts_with("did:peer:2."),
        "{}",
        acme.didcomm_did
    );
    let unknown = reqwest::get(format!("{}/orgs/{}/did.json", agent.url, "0".repeat(24)))
        .await
        .unwrap();
    assert_eq!(unknown.status(), 404);

    let created = acme
        .call("POST", TEMPLATES, Some(seed_template_request()))
        .await;
    let schema_uri = created.body["data"]["detail"]["schemaUri"]
        .as_str()
        .unwrap()
        .to_string();
    let schema: Value = reqwest::get(&schema_uri)
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(schema["title"], "Template Demo");
    assert_eq!(
        schema["required"],
        json!(["id", "credentialIssuer", "credentialType"])
    );
    assert!(schema["properties"]["holderFullNamePopulatedAtIssuance"].is_object());
}

// The CLI runs as a child process while this test's runtime serves the agent: two workers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_creates_organisations_through_the_agent_or_on_its_data() {
    use std::process::Command;
    // With an agent running: through its admin API.
    let agent = Agent::start(Default::default()).await;
    let output = Command::new(env!("CARGO_BIN_EXE_agent"))
        .args(["org", "create", "--name", "Initech", "--json"])
        .env("LANYARD_PUBLIC_URL", &agent.url)
        .env("LANYARD_ADMIN_TOKEN", support::ADMIN_TOKEN)
        .env("LANYARD_DATA_DIR", "/nonexistent/not-used")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let data: Value = serde_json::from_slice(&output.stdout).unwrap();
    let initech = OrgClient::with_key(&agent, &data);
    assert_eq!(
        initech.call("GET", TEMPLATES, None).await.status,
        200,
        "the printed key works"
    );
    // The same name again is refused, by name.
    let again = Command::new(env!("CARGO_BIN_EXE_agent"))
        .args(["org", "create", "--name", "initech"])
        .env("LANYARD_PUBLIC_URL", &agent.url)
        .env("LANYARD_ADMIN_TOKEN", support::ADMIN_TOKEN)
        .output()
        .unwrap();
    assert!(!again.status.success());
    let error = String::from_utf8_lossy(&again.stderr);
    assert!(error.contains("\"initech\" exists already"), "{error}");

    // With no agent running: on the data folder, which an agent then serves.
    let data_dir = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_agent"))
        .args(["org", "create", "--name", "Hooli"])
        .env("LANYARD_LISTEN", "127.0.0.1:9")
        .env("LANYARD_DATA_DIR", data_dir.path())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8(output.stdout).unwrap();
    let key = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("API key:"))
        .unwrap_or_else(|| panic!("no API key in {text}"))
        .trim()
        .to_string();
    let config = agent::config::Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: data_dir.path().to_path_buf(),
        ..Default::default()
    };
    let running = agent::start(config).await.unwrap();
    let response = reqwest::Client::new()
        .get(format!("http://{}{TEMPLATES}", running.addr))
        .header("x-api-key", key)
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        200,
        "the key made offline works once the agent runs"
    );
    running.server.abort();
}

#[tokio::test]
async fn the_openapi_description_covers_every_route() {
    let agent = Agent::start(Default::default()).await;
    let doc: Value = reqwest::get(format!("{}/openapi.json", agent.url))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    // Both ways against the table the router is built from: every route is described, and
    // every described operation is routed.
    let routed: Vec<(String, String)> = agent::api::route_table()
        .into_iter()
        .map(|(method, path)| (method.as_str().to_ascii_lowercase(), path))
        .collect();
    assert!(routed.len() >= 23, "the route table lists {routed:?}");
    for (method, path) in &routed {
        assert!(
            doc["paths"][path][method].is_object(),
            "{method} {path} is not described"
        );
    }
    let methods = [
        "get", "put", "post", "delete", "options", "head", "patch", "trace",
    ];
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            if methods.contains(&method.as_str()) {
                assert!(
                    routed.contains(&(method.clone(), path.clone())),
                    "{method} {path} is described but not routed"
                );
            }
        }
    }
    // Every schema reference resolves.
    let text = doc.to_string();
    for reference in text.split("\"$ref\":\"#/components/").skip(1) {
        let name = reference.split('"').next().unwrap();
        let mut parts = name.split('/');
        let (kind, item) = (parts.next().unwrap(), parts.next().unwrap());
        assert!(
            doc["components"][kind][item].is_object(),
            "{name} is not defined"
        );
    }
}

/// `agent org create --json --name NAME` with `vars`; success, stdout JSON, stderr.
fn org_create(name: &str, vars: &[(&str, String)]) -> (bool, Value, String) {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_agent"));
    command
        .args(["org", "create", "--json", "--name", name])
        .env_remove("LANYARD_PUBLIC_URL")
        .env_remove("LANYARD_ADMIN_TOKEN")
        .env_remove("LANYARD_LISTEN")
        .env_remove("LANYARD_CONFIG");
    for (key, value) in vars {
        command.env(key, value);
    }
    let output = command.output().unwrap();
    (
        output.status.success(),
        serde_json::from_slice(&output.stdout).unwrap_or(Value::Null),
        String::from_utf8_lossy(&output.stderr).to_string(),
    )
}

// The CLI runs as a child process while this test's runtime serves the agent: two workers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn org_create_reaches_the_agent_that_holds_the_data_folder_wherever_it_listens() {
    let data = tempfile::tempdir().unwrap();
    // Configured in a file, as `serve` reads it: a port nobody listens on by default.
    let config_file = data.path().join("lanyard.toml");
    std::fs::write(&config_file, "listen = \"127.0.0.1:0\"\n").unwrap();
    let running = agent::start(agent::config::Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: data.path().join("data"),
        ..Default::default()
    })
    .await
    .unwrap();
    let vars = [
        ("LANYARD_CONFIG", config_file.display().to_string()),
        (
            "LANYARD_DATA_DIR",
            data.path().join("data").display().to_string(),
        ),
    ];
    // The agent recorded where it listens in its data folder; the CLI finds it there.
    let (ok, created, error) = org_create("Vandelay", &vars);
    assert!(ok, "{error}");
    assert_eq!(created["name"], "Vandelay");
    let key = created["apiKey"].as_str().unwrap();
    let response = reqwest::Client::new()
        .get(format!("http://{}{TEMPLATES}", running.addr))
        .header("x-api-key", key)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "the running agent made it");

    // When the agent cannot be reached, the CLI says plainly that it holds the data folder.
    std::fs::remove_file(data.path().join("data").join("agent.url")).unwrap();
    let (ok, _, error) = org_create("Kramerica", &vars);
    assert!(!ok);
    assert!(
        error.contains("an agent is running on the data folder")
            && error.contains("LANYARD_PUBLIC_URL"),
        "{error}"
    );
    running.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn org_create_never_sends_the_admin_token_over_plain_http_to_another_host() {
    // Something listens on every interface; the CLI must not talk to it on a public address.
    let listener = tokio::net::TcpListener::bind("0.0.0.0:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let connected = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let seen = connected.clone();
    tokio::spawn(async move {
        while let Ok((_stream, _)) = listener.accept().await {
            seen.store(true, std::sync::atomic::Ordering::SeqCst);
        }
    });
    // This machine's own non-loopback address, where it has one.
    let local = std::net::UdpSocket::bind("0.0.0.0:0")
        .and_then(|s| s.connect("192.0.2.1:9").map(|()| s))
        .and_then(|s| s.local_addr())
        .map(|a| a.ip())
        .ok()
        .filter(|ip| !ip.is_loopback() && !ip.is_unspecified());
    let host = local.map_or_else(|| "agent.invalid".to_string(), |ip| ip.to_string());
    let data = tempfile::tempdir().unwrap();
    let (ok, _, error) = org_create(
        "Pendant",
        &[
            ("LANYARD_PUBLIC_URL", format!("http://{host}:{port}")),
            ("LANYARD_ADMIN_TOKEN", support::ADMIN_TOKEN.to_string()),
            ("LANYARD_LISTEN", "127.0.0.1:9".to_string()),
            (
                "LANYARD_DATA_DIR",
                data.path().join("none").display().to_string(),
            ),
        ],
    );
    assert!(!ok, "refused");
    assert!(
        error.contains(&format!(
            "not sending the admin token over plain http to {host}"
        )) && error.contains("https"),
        "{error}"
    );
    assert!(
        !connected.load(std::sync::atomic::Ordering::SeqCst),
        "the CLI connected to http://{host}:{port}"
    );
    assert!(
        !data.path().join("none").exists(),
        "no data folder was made"
    );
}
