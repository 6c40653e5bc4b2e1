//! `wallet`: the desktop stand-in for the phone app, over the same [`Wallet`] the apps call.
//! The wallet lives in `--dir` (default `$LANYARD_WALLET_DIR` or `./wallet-data`), encrypted
//! under the passphrase in `$LANYARD_WALLET_PASSPHRASE`. Every command prints what it did for
//! people, or JSON with `--json`.

use std::path::PathBuf;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use lanyard_protocol::store::Unlock;
use serde_json::{json, Value};
use wallet_core::{Accepted, PushService, Wallet, WalletEvent, WalletListener};

#[derive(Parser)]
#[command(
    name = "wallet",
    version,
    about = "Lanyard's wallet on the command line: play the phone"
)]
struct Cli {
    /// The wallet's folder.
    #[arg(long, env = "LANYARD_WALLET_DIR", default_value = "wallet-data")]
    dir: PathBuf,
    /// Print JSON instead of text.
    #[arg(long, global = true)]
    json: bool,
    /// Accept offers as they arrive instead of holding them for `accept-offer`.
    #[arg(long, global = true)]
    auto_accept: bool,
    /// Let the wallet reach loopback hosts (an agent on this machine), over plain http too.
    /// For development and tests only.
    #[arg(long, global = true, env = "LANYARD_WALLET_ALLOW_LOOPBACK")]
    allow_loopback: bool,
    /// Networks, addresses or host names (comma-separated) exempt from the refusal of
    /// private addresses, e.g. `10.0.2.0/24` for an agent on the developer's network.
    #[arg(
        long,
        global = true,
        env = "LANYARD_WALLET_ALLOW",
        value_delimiter = ','
    )]
    allow: Vec<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create the wallet (or check that it opens).
    Init,
    /// Accept an invitation: a link, a short invite URL, raw JSON, or the QR code in an image.
    Accept {
        link: Option<String>,
        /// A PNG holding the invitation's QR code (e.g. from the invite email).
        #[arg(long, conflicts_with = "link")]
        qr_image: Option<PathBuf>,
    },
    /// Pick up and process everything waiting at the mediator.
    Sync,
    /// Stay connected and process messages as they arrive, for `--seconds` (0: until Ctrl-C).
    Live {
        #[arg(long, default_value_t = 0)]
        seconds: u64,
    },
    /// The connections with organisations.
    Connections,
    /// Offers waiting for a decision.
    Offers,
    /// Accept an offer (the credential arrives on the next sync).
    AcceptOffer { id: String },
    /// Decline an offer.
    DeclineOffer { id: String },
    /// The stored credentials.
    Credentials,
    /// One credential, whole.
    Credential { id: String },
    /// Verifiers' requests waiting for an answer, with the credentials that match.
    Requests,
    /// Answer a verifier with credentials (the first match when none is named).
    Present {
        request_id: String,
        credential_ids: Vec<String>,
    },
    /// Decline a verifier's request.
    DeclineRequest { id: String },
    /// Delete a credential from this wallet.
    Delete { id: String },
    /// Ask the mediator to wake this wallet when a message waits: `apns` with the device
    /// token (hex), `fcm` with the registration token, or `webhook` with an https URL.
    RegisterPush {
        platform: PushService,
        token: String,
    },
    /// Stop wake-ups.
    UnregisterPush,
    /// Act as the phone's background handler: listen for the push webhook on `--listen` (a
    /// loopback address) and sync each time it is called. Prints the webhook's URL first; with
    /// `--register` registers it with the mediator itself. Ends after `--wakes` syncs (0:
    /// never) or `--seconds` (0: until Ctrl-C).
    WakeListen {
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: std::net::SocketAddr,
        #[arg(long)]
        register: bool,
        #[arg(long, default_value_t = 0)]
        wakes: u64,
        #[arg(long, default_value_t = 0)]
        seconds: u64,
    },
}

/// Prints events as they happen (to stderr, so stdout stays the command's answer).
struct Printer {
    json: bool,
}

/// `text` on one line: control characters (newlines, carriage returns, terminal escapes) and
/// other invisible ones (bidi overrides), which other parties' names and messages may carry,
/// are shown escaped (`\n`, `\u{1b}`), so no one can forge or hide a line.
fn one_line(text: &str) -> String {
    let mut line = String::with_capacity(text.len());
    for c in text.chars() {
        let plain = matches!(c, '\\' | '\'' | '"') || c.escape_debug().nth(1).is_none();
        if plain && !c.is_control() {
            line.push(c);
        } else {
            line.extend(c.escape_debug());
        }
    }
    line
}

/// The line an event is printed as, newline included: JSON, or text for people.
fn event_line(event: &WalletEvent, as_json: bool) -> String {
    if as_json {
        // serde_json escapes control characters: one line.
        let json = serde_json::to_string(event).unwrap_or_else(|e| {
            json!({ "event": "problem", "message": format!("an event could not be shown: {e}") })
                .to_string()
        });
        return format!("{json}\n");
    }
    let text = match event {
        WalletEvent::ConnectionEstablished { label, .. } => format!("connected with {label}"),
        WalletEvent::OfferReceived {
            offer_id,
            issuer_name,
        } => format!("offer {offer_id} from {issuer_name}"),
        WalletEvent::CredentialStored {
            credential_id,
            issuer_name,
        } => format!("stored credential {credential_id} from {issuer_name}"),
        WalletEvent::CredentialsRemoved { template_id, count } => match template_id {
            Some(template) => {
                format!("{count} credential(s) removed: their template {template} was deleted")
            }
            None => format!("{count} credential(s) removed"),
        },
        WalletEvent::PresentationRequested {
            request_id,
            verifier_name,
        } => format!("{verifier_name} asks for a credential (request {request_id})"),
        WalletEvent::PresentationSent { request_id } => format!("presented for {request_id}"),
        WalletEvent::PresentationResult {
            request_id,
            verified,
            reasons,
        } => {
            if *verified {
                format!("request {request_id}: verified")
            } else {
                format!("request {request_id}: failed ({})", reasons.join("; "))
            }
        }
        WalletEvent::Problem { message } => format!("problem: {message}"),
    };
    format!("{}\n", one_line(&text))
}

impl WalletListener for Printer {
    fn on_event(&self, event: WalletEvent) {
        use std::io::Write as _;
        // One write of the whole line, so lines from live mode's task never interleave.
        let mut stderr = std::io::stderr().lock();
        let _ = stderr.write_all(event_line(&event, self.json).as_bytes());
        let _ = stderr.flush();
    }
}

/// Reads the QR code in a PNG (grayscale or colour).
fn read_qr(path: &PathBuf) -> Result<String, String> {
    let file = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut decoder = png::Decoder::new(std::io::BufReader::new(file));
    decoder.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
    let mut reader = decoder
        .read_info()
        .map_err(|e| format!("{} is not a PNG: {e}", path.display()))?;
    let size = reader
        .output_buffer_size()
        .ok_or_else(|| format!("{} is too large", path.display()))?;
    let mut pixels = vec![0; size];
    let info = reader
        .next_frame(&mut pixels)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let (width, height) = (info.width as usize, info.height as usize);
    let channels = info.line_size / width.max(1);
    let mut image = rqrr::PreparedImage::prepare_from_greyscale(width, height, |x, y| {
        pixels[y * info.line_size + x * channels]
    });
    let grids = image.detect_grids();
    let grid = grids
        .first()
        .ok_or_else(|| format!("no QR code found in {}", path.display()))?;
    grid.decode()
        .map(|(_, text)| text)
        .map_err(|e| format!("the QR code in {} cannot be read: {e}", path.display()))
}

fn print(as_json: bool, value: Value, text: String) {
    if as_json {
        println!(
            "{}",
            serde_json::to_string_pretty(&value).unwrap_or_default()
        );
    } else {
        println!("{text}");
    }
}

async fn run(cli: Cli) -> Result<(), String> {
    let passphrase = std::env::var("LANYARD_WALLET_PASSPHRASE")
        .map_err(|_| "set LANYARD_WALLET_PASSPHRASE to the wallet's passphrase".to_string())?;
    let allow = cli
        .allow
        .iter()
        .map(|entry| entry.parse())
        .collect::<Result<Vec<_>, lanyard_protocol::net::NetError>>()
        .map_err(|e| format!("--allow: {e}"))?;
    let network = lanyard_protocol::net::NetPolicy {
        allow_loopback: cli.allow_loopback,
        allow,
        ..lanyard_protocol::net::NetPolicy::default()
    };
    let wallet = Wallet::builder(&cli.dir, Unlock::passphrase(passphrase))
        .network(network)
        .open()
        .map_err(|e| e.to_string())?;
    wallet.set_listener(Some(Arc::new(Printer { json: cli.json })));
    wallet.set_auto_accept(cli.auto_accept);
    let json = cli.json;
    let e = |e: wallet_core::WalletError| e.to_string();
    match cli.command {
        Command::Init => print(
            json,
            json!({ "dir": cli.dir }),
            format!("wallet ready in {}", cli.dir.display()),
        ),
        Command::Accept { link, qr_image } => {
            let text = match (link, qr_image) {
                (Some(link), None) => link,
                (None, Some(image)) => read_qr(&image)?,
                _ => return Err("give a link or --qr-image".into()),
            };
            match wallet.accept_invitation(&text).await.map_err(e)? {
                Accepted::Connection(connection) => print(
                    json,
                    serde_json::to_value(&connection).unwrap_or_default(),
                    one_line(&format!(
                        "connection {} with {}",
                        connection.id, connection.label
                    )),
                ),
                Accepted::PresentationRequest(request) => print(
                    json,
                    serde_json::to_value(&request).unwrap_or_default(),
                    one_line(&format!(
                        "request {} from {}: {} (fields: {})",
                        request.id,
                        request.verifier_name,
                        request.purpose,
                        request.required_fields.join(", ")
                    )),
                ),
            }
        }
        Command::Sync => {
            let report = wallet.sync().await.map_err(e)?;
            print(
                json,
                serde_json::to_value(&report).unwrap_or_default(),
                format!(
                    "synced: {} processed, {} already seen, {} refused",
                    report.processed, report.duplicates, report.refused
                ),
            );
        }
        Command::Live { seconds } => {
            let wallet = Arc::new(wallet);
            let live = wallet.start_live().await.map_err(e)?;
            if seconds == 0 {
                let _ = tokio::signal::ctrl_c().await;
            } else {
                tokio::time::sleep(std::time::Duration::from_secs(seconds)).await;
            }
            live.stop().await;
        }
        Command::Connections => {
            let all = wallet.connections().map_err(e)?;
            let text = all
                .iter()
                .map(|c| one_line(&format!("{}  {}", c.id, c.label)))
                .collect::<Vec<_>>()
                .join("\n");
            print(json, serde_json::to_value(&all).unwrap_or_default(), text);
        }
        Command::Offers => {
            let all = wallet.offers().map_err(e)?;
            let text = all
                .iter()
                .map(|o| {
                    let fields: Vec<String> = o
                        .attributes
                        .iter()
                        .map(|(k, v)| format!("{k}={v}"))
                        .collect();
                    one_line(&format!(
                        "{}  from {}: {}",
                        o.id,
                        o.issuer_name,
                        fields.join(", ")
                    ))
                })
                .collect::<Vec<_>>()
                .join("\n");
            print(json, serde_json::to_value(&all).unwrap_or_default(), text);
        }
        Command::AcceptOffer { id } => {
            wallet.accept_offer(&id).await.map_err(e)?;
            print(
                json,
                json!({ "accepted": id }),
                format!("accepted offer {id}; sync to receive it"),
            );
        }
        Command::DeclineOffer { id } => {
            wallet.decline_offer(&id).await.map_err(e)?;
            print(
                json,
                json!({ "declined": id }),
                format!("declined offer {id}"),
            );
        }
        Command::Credentials => {
            let all = wallet.credentials().map_err(e)?;
            let text = all
                .iter()
                .map(|c| {
                    let fields: Vec<String> = c
                        .fields
                        .iter()
                        .map(|f| format!("{}={}", f.name, f.value))
                        .collect();
                    one_line(&format!(
                        "{}  {} from {}: {}",
                        c.id,
                        c.name.as_deref().unwrap_or("credential"),
                        c.issuer_name,
                        fields.join(", ")
                    ))
                })
                .collect::<Vec<_>>()
                .join("\n");
            print(json, serde_json::to_value(&all).unwrap_or_default(), text);
        }
        Command::Credential { id } => {
            let credential = wallet.credential(&id).map_err(e)?;
            let text = serde_json::to_string_pretty(&credential.credential).unwrap_or_default();
            print(
                json,
                serde_json::to_value(&credential).unwrap_or_default(),
                text,
            );
        }
        Command::Requests => {
            let all = wallet.presentation_requests().map_err(e)?;
            let value: Vec<Value> = all
                .iter()
                .map(|(r, m)| json!({ "request": r, "matching": m }))
                .collect();
            let text = all
                .iter()
                .map(|(r, m)| {
                    one_line(&format!(
                        "{}  {} asks for {} ({}); matching: {}",
                        r.id,
                        r.verifier_name,
                        r.template_id,
                        r.required_fields.join(", "),
                        if m.is_empty() {
                            "none".to_string()
                        } else {
                            m.join(", ")
                        }
                    ))
                })
                .collect::<Vec<_>>()
                .join("\n");
            print(json, Value::from(value), text);
        }
        Command::Present {
            request_id,
            credential_ids,
        } => {
            let chosen = if credential_ids.is_empty() {
                let requests = wallet.presentation_requests().map_err(e)?;
                let matching = requests
                    .into_iter()
                    .find(|(r, _)| r.id == request_id)
                    .map(|(_, m)| m)
                    .unwrap_or_default();
                matching.into_iter().take(1).collect()
            } else {
                credential_ids
            };
            wallet.present(&request_id, &chosen).await.map_err(e)?;
            print(
                json,
                json!({ "request": request_id, "presented": chosen }),
                format!(
                    "presented {} for {request_id}; sync for the verifier's answer",
                    chosen.join(", ")
                ),
            );
        }
        Command::DeclineRequest { id } => {
            wallet.decline_request(&id).await.map_err(e)?;
            print(
                json,
                json!({ "declined": id }),
                format!("declined request {id}"),
            );
        }
        Command::Delete { id } => {
            wallet.delete_credential(&id).map_err(e)?;
            print(
                json,
                json!({ "deleted": id }),
                format!("deleted credential {id}"),
            );
        }
        Command::RegisterPush { platform, token } => {
            wallet.register_push(platform, &token).await.map_err(e)?;
            print(
                json,
                json!({ "registered": platform.name() }),
                format!("the mediator wakes this wallet through {platform}"),
            );
        }
        Command::UnregisterPush => {
            wallet.unregister_push().await.map_err(e)?;
            print(
                json,
                json!({ "registered": Value::Null }),
                "the mediator no longer wakes this wallet".into(),
            );
        }
        Command::WakeListen {
            listen,
            register,
            wakes,
            seconds,
        } => wake_listen(wallet, json, listen, register, wakes, seconds).await?,
    }
    Ok(())
}

/// Prints one line: compact JSON, or `text` (what a handler reading lines wants).
fn print_line(as_json: bool, value: Value, text: String) {
    if as_json {
        println!("{value}");
    } else {
        println!("{}", one_line(&text));
    }
}

/// Largest wake request body read (the gateway's is a few bytes).
const WAKE_BODY_BYTES: usize = 1024;

/// `wallet wake-listen`: a webhook on loopback that runs one sync per wake. Wakes that arrive
/// while a sync runs are folded into one more sync after it (a channel of one), so a burst of
/// calls costs at most two syncs and no queue grows.
async fn wake_listen(
    wallet: Wallet,
    json: bool,
    listen: std::net::SocketAddr,
    register: bool,
    wakes: u64,
    seconds: u64,
) -> Result<(), String> {
    if !listen.ip().is_loopback() {
        return Err(format!(
            "--listen {listen}: the wake listener serves loopback only (put a TLS proxy in \
             front of it to reach it from elsewhere)"
        ));
    }
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|error| format!("--listen {listen}: {error}"))?;
    let address = listener.local_addr().map_err(|error| error.to_string())?;
    let url = format!("http://{address}/wake");
    let (woken, mut wake) = tokio::sync::mpsc::channel::<()>(1);
    let app = axum::Router::new()
        .route(
            "/wake",
            axum::routing::post(move || {
                let woken = woken.clone();
                async move {
                    // Full: a sync is already due, which picks up this wake's messages too.
                    let _ = woken.try_send(());
                    axum::http::StatusCode::NO_CONTENT
                }
            }),
        )
        .layer(axum::extract::DefaultBodyLimit::max(WAKE_BODY_BYTES));
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    print_line(
        json,
        json!({ "listening": url }),
        format!("listening on {url}"),
    );
    if register {
        wallet
            .register_push(PushService::Webhook, &url)
            .await
            .map_err(|error| error.to_string())?;
        print_line(
            json,
            json!({ "registered": "webhook" }),
            format!("registered {url} with the mediator"),
        );
    }
    let deadline = async {
        if seconds == 0 {
            let _ = tokio::signal::ctrl_c().await;
        } else {
            tokio::time::sleep(std::time::Duration::from_secs(seconds)).await;
        }
    };
    tokio::pin!(deadline);
    let mut synced = 0u64;
    loop {
        tokio::select! {
            _ = &mut deadline => break,
            got = wake.recv() => {
                if got.is_none() {
                    break;
                }
                match wallet.sync().await {
                    Ok(report) => print_line(
                        json,
                        json!({ "woken": serde_json::to_value(&report).unwrap_or_default() }),
                        format!(
                            "woken: {} processed, {} already seen, {} refused",
                            report.processed, report.duplicates, report.refused
                        ),
                    ),
                    // The next wake tries again; the phone's handler does the same.
                    Err(error) => eprintln!("wallet: sync after a wake: {error}"),
                }
                synced += 1;
                if wakes != 0 && synced >= wakes {
                    break;
                }
            }
        }
    }
    server.abort();
    Ok(())
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .init();
    match run(Cli::parse()).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("wallet: {error}");
            std::process::ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_event_is_one_line_ending_in_a_newline() {
        let events = [
            WalletEvent::Problem {
                message: "bad\nstored credential forged from Bank\r\u{1b}[2K".into(),
            },
            WalletEvent::ConnectionEstablished {
                connection_id: "c1".into(),
                label: "Acme\u{202e}kcab".into(),
            },
            WalletEvent::PresentationResult {
                request_id: "r1".into(),
                verified: false,
                reasons: vec!["one\n".into(), "two".into()],
            },
            WalletEvent::PresentationSent {
                request_id: "r2".into(),
            },
        ];
        for event in &events {
            for as_json in [false, true] {
                let line = event_line(event, as_json);
                assert!(line.ends_with('\n'), "{line:?}");
                assert_eq!(line.matches('\n').count(), 1, "{line:?}");
                assert!(!line.contains(['\r', '\u{1b}']), "{line:?}");
                // Text is for terminals: nothing invisible reorders it either. (JSON readers
                // get the name as it was sent.)
                assert!(as_json || !line.contains('\u{202e}'), "{line:?}");
                if as_json {
                    let back: Value = serde_json::from_str(line.trim_end()).unwrap();
                    assert_eq!(back, serde_json::to_value(event).unwrap());
                }
            }
        }
        assert_eq!(
            event_line(&events[0], false),
            "problem: bad\\nstored credential forged from Bank\\r\\u{1b}[2K\n"
        );
        assert_eq!(
            one_line("Café \"Zoë\" \\ O'Brien"),
            "Café \"Zoë\" \\ O'Brien",
            "printable text is left alone"
        );
    }
}
