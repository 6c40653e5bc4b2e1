//! The invite page as a person sees it: headless Chromium (Debian's `chromium`, installed by
//! `.ci/run`) renders `/i/{code}` to a screenshot kept as a test artifact, and an independent
//! decoder (`zbarimg` from Debian's `zbar-tools`) reads the QR code in that screenshot, and in
//! the PNG endpoint, back to the invitation's URL.

use lanyard_test_support as support;

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::json;
use support::{create_invitation, Agent};

fn zbarimg(image: &Path) -> String {
    let output = Command::new("zbarimg")
        .args(["--raw", "-q"])
        .arg(image)
        .output()
        .expect("zbarimg runs (apt-get install zbar-tools; .ci/run installs it)");
    assert!(
        output.status.success(),
        "zbarimg found no QR code in {}: {}",
        image.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap().trim().to_string()
}

/// Headless Chromium with a fresh profile: `args` before the URL; its output.
async fn chromium(args: &[String], url: &str) -> std::process::Output {
    let profile = tempfile::tempdir().unwrap();
    let run = tokio::process::Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(args)
        .arg(url)
        .kill_on_drop(true)
        .output();
    tokio::time::timeout(std::time::Duration::from_secs(120), run)
        .await
        .expect("chromium finishes within two minutes")
        .expect("chromium runs (apt-get install chromium; .ci/run installs it)")
}

/// Chromium's screenshot of `url` (with `args`), kept as the test artifact `name`.
async fn screenshot(url: &str, name: &str, args: &[String]) -> PathBuf {
    let artifacts = Path::new(env!("CARGO_TARGET_TMPDIR")).join("test-artifacts");
    std::fs::create_dir_all(&artifacts).unwrap();
    let screenshot = artifacts.join(name);
    let _ = std::fs::remove_file(&screenshot);
    let mut args = args.to_vec();
    args.push(format!("--screenshot={}", screenshot.display()));
    let output = chromium(&args, url).await;
    assert!(
        screenshot.exists(),
        "chromium wrote no screenshot: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    println!("screenshot: {}", screenshot.display());
    screenshot
}

const IPHONE: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1";

#[tokio::test]
async fn on_a_phone_chromium_shows_the_open_in_lanyard_button_first() {
    let agent = Agent::start(Default::default()).await;
    let created = create_invitation(&agent, json!({"label": "Acme Gym"})).await;
    let url = created["url"].as_str().unwrap().to_string();
    let user_agent = format!("--user-agent={IPHONE}");

    // The DOM Chromium built: the button before the QR code, which is there for other devices.
    let output = chromium(&["--dump-dom".to_string(), user_agent.clone()], &url).await;
    let dom = String::from_utf8_lossy(&output.stdout).to_string();
    assert!(
        output.status.success() && dom.contains("</html>"),
        "chromium dumped no DOM: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let button = dom
        .find("Open in Lanyard</a>")
        .unwrap_or_else(|| panic!("no button in {dom}"));
    let qr = dom
        .find("<svg")
        .unwrap_or_else(|| panic!("no QR code in {dom}"));
    assert!(button < qr, "the button leads on a phone: {dom}");
    assert!(dom.contains("<body class=\"phone\">"), "{dom}");
    assert!(dom.contains("href=\"lanyard://oob?_oob="), "{dom}");

    // A phone-sized screenshot, kept as an artifact: the QR code is still readable below.
    let screenshot = screenshot(
        &url,
        "invite-page-phone.png",
        &[user_agent, "--window-size=390,1400".to_string()],
    )
    .await;
    assert_eq!(zbarimg(&screenshot), url, "the QR code on the phone page");
}

#[tokio::test]
async fn chromium_shows_the_invite_page_with_a_scannable_qr_code() {
    let agent = Agent::start(Default::default()).await;
    let created = create_invitation(
        &agent,
        json!({"label": "Acme Gym", "goal": "Get your membership card"}),
    )
    .await;
    let url = created["url"].as_str().unwrap().to_string();

    let screenshot = screenshot(
        &url,
        "invite-page.png",
        &["--window-size=800,1000".to_string()],
    )
    .await;
    assert_eq!(zbarimg(&screenshot), url, "the QR code on the page");

    let png = reqwest::get(format!("{url}/qr.png"))
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let qr_file = screenshot.with_file_name("invite-qr.png");
    std::fs::write(&qr_file, &png).unwrap();
    assert_eq!(zbarimg(&qr_file), url, "the QR PNG endpoint");
}
