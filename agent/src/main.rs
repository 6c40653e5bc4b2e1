//! The agent binary. `agent` (or `agent serve`) serves the mediator and the issuer API on an
//! embedded sled store in `./data` with no other set-up; `agent org create --name NAME` makes
//! an organisation and prints its API key once (`--email` adds its first console user;
//! `agent user add` adds more); `agent migrate` applies the PostgreSQL
//! migrations to `LANYARD_DATABASE_URL`; `agent push-gateway` runs the push gateway alone
//! (its HTTP API for agents configured with `LANYARD_PUSH_GATEWAY_URL`). Configuration is read from a `lanyard.toml`
//! and `LANYARD_*` environment variables (see `config.rs`). The bound address is printed on
//! stdout.

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "agent",
    version,
    about = "Lanyard's cloud agent: DIDComm mediator and issuer/verifier API"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the mediator and the API (the default).
    Serve,
    /// Apply the database migrations this binary knows to `LANYARD_DATABASE_URL` and exit
    /// (`serve` applies them too; this is for a deploy step that runs before the agents).
    Migrate,
    /// Run the push gateway alone: the APNs/FCM/webhook credentials configured here
    /// (`LANYARD_APNS_*`, `LANYARD_FCM_*`, `LANYARD_PUSH_WEBHOOKS`), an HTTP API on
    /// `LANYARD_LISTEN` behind `LANYARD_PUSH_GATEWAY_SECRET`, for agents configured with
    /// `LANYARD_PUSH_GATEWAY_URL`.
    PushGateway,
    /// Manage organisations (issuers and verifiers).
    Org {
        #[command(subcommand)]
        command: OrgCommand,
    },
    /// Manage an organisation's console users.
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
}

#[derive(Subcommand)]
enum UserCommand {
    /// Add a console user to an organisation. The password is read from
    /// `LANYARD_USER_PASSWORD`, else from the first line of stdin; only its Argon2id hash is
    /// kept. Reaches the agent's state as `org create` does.
    Add {
        /// The organisation's id.
        #[arg(long)]
        org: String,
        /// The user's email, which they sign in with.
        #[arg(long)]
        email: String,
    },
}

#[derive(Subcommand)]
enum OrgCommand {
    /// Create an organisation and print its API key (shown this once; only its hash is kept).
    /// Reads the configuration `serve` reads; opens the data folder itself when no agent holds
    /// it, else asks the running agent (at the address it recorded there, or a configured
    /// one). The admin token goes only over https or to a loopback address.
    Create {
        /// The organisation's name, as customers see it.
        #[arg(long)]
        name: String,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
        /// Also add the organisation's first console user with this email (the password
        /// as for `agent user add`).
        #[arg(long)]
        email: Option<String>,
    },
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve().await,
        Command::Migrate => migrate().await,
        Command::PushGateway => push_gateway().await,
        Command::Org {
            command: OrgCommand::Create { name, json, email },
        } => create_org(&name, json, email.as_deref()).await,
        Command::User {
            command: UserCommand::Add { org, email },
        } => add_user(&org, &email).await,
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("agent: {error}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn init_logs() {
    // Logs go to stderr; stdout carries only what scripts read.
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
}

async fn serve() -> Result<(), Box<dyn std::error::Error>> {
    init_logs();
    let config = agent::config::Config::from_env()?;
    let grace = config.shutdown_grace;
    let running = agent::start(config).await?;
    // Tests and scripts that start the agent on port 0 read the bound address from here. A
    // reader that went away must not bring the agent down, so write errors are ignored.
    {
        use std::io::Write;
        let mut stdout = std::io::stdout().lock();
        let _ = writeln!(stdout, "listening on http://{}", running.addr);
        let _ = writeln!(stdout, "mediator DID {}", running.did);
        let _ = stdout.flush();
    }
    shutdown_signal(grace).await?;
    tracing::info!("shutting down");
    running.stop().await?;
    Ok(())
}

async fn push_gateway() -> Result<(), Box<dyn std::error::Error>> {
    init_logs();
    let config = agent::config::Config::from_env()?;
    let grace = config.shutdown_grace;
    let running = agent::push::serve_gateway(config).await?;
    {
        use std::io::Write;
        let mut stdout = std::io::stdout().lock();
        let _ = writeln!(stdout, "push gateway listening on http://{}", running.addr);
        let _ = stdout.flush();
    }
    shutdown_signal(grace).await?;
    tracing::info!("shutting down");
    running.stop().await?;
    Ok(())
}

async fn migrate() -> Result<(), Box<dyn std::error::Error>> {
    init_logs();
    let config = agent::config::Config::from_env()?;
    let Some(url) = &config.database_url else {
        return Err("LANYARD_DATABASE_URL is not set: the sled store needs no migrations".into());
    };
    let database = agent::postgres::Database::connect(url, 2).await?;
    let applied = database.migrate().await?;
    let version = agent::postgres::schema_version();
    if applied.is_empty() {
        println!(
            "{} is at schema version {version}: nothing to apply",
            database.location()
        );
    } else {
        println!(
            "{}: applied migrations {applied:?}; now at schema version {version}",
            database.location()
        );
    }
    Ok(())
}

/// A new user's password: `LANYARD_USER_PASSWORD`, else the first line of stdin.
fn user_password() -> Result<zeroize::Zeroizing<String>, Box<dyn std::error::Error>> {
    if let Ok(password) = std::env::var("LANYARD_USER_PASSWORD") {
        return Ok(zeroize::Zeroizing::new(password));
    }
    use std::io::IsTerminal;
    if std::io::stdin().is_terminal() {
        eprint!("Password for the console user (input is shown): ");
    }
    let mut line = zeroize::Zeroizing::new(String::new());
    std::io::stdin().read_line(&mut line)?;
    let password = line.trim_end_matches(['\r', '\n']).to_string();
    if password.is_empty() {
        return Err("no password: set LANYARD_USER_PASSWORD or write it on stdin".into());
    }
    Ok(zeroize::Zeroizing::new(password))
}

async fn add_user(org: &str, email: &str) -> Result<(), Box<dyn std::error::Error>> {
    let config = agent::config::Config::from_env()?;
    let password = user_password()?;
    let added = agent::admin::run(
        &config,
        &agent::admin::AdminRequest::AddUser {
            org_id: org,
            email,
            password: &password,
        },
    )
    .await?;
    println!(
        "console user {} added to organisation {org}",
        added["email"].as_str().unwrap_or(email)
    );
    println!("They sign in at {}/console", console_url(&config));
    Ok(())
}

/// The console's address as the configuration gives it.
fn console_url(config: &agent::config::Config) -> String {
    config
        .public_url
        .clone()
        .unwrap_or_else(|| format!("http://{}", config.listen))
}

async fn create_org(
    name: &str,
    as_json: bool,
    email: Option<&str>,
) -> Result<(), Box<dyn std::error::Error>> {
    let config = agent::config::Config::from_env()?;
    let password = email.map(|_| user_password()).transpose()?;
    let user = email
        .zip(password.as_deref())
        .map(|(email, password)| agent::console::FirstUser {
            email,
            password: password.as_str(),
        });
    let created = agent::admin::run(
        &config,
        &agent::admin::AdminRequest::CreateOrg { name, user },
    )
    .await?;
    if as_json {
        println!("{}", serde_json::to_string_pretty(&created)?);
    } else {
        let field = |key: &str| created[key].as_str().unwrap_or_default().to_string();
        println!("organisation {:?} created", field("name"));
        println!("  id:          {}", field("id"));
        println!("  issuer DID:  {}", field("issuerDid"));
        println!("  DIDComm DID: {}", field("didcommDid"));
        println!("  API key:     {}", field("apiKey"));
        println!("The API key is shown only now; send it as the x-api-key header.");
        if let Some(email) = created["userEmail"].as_str() {
            println!(
                "Console user {email} signs in at {}/console",
                console_url(&config)
            );
        }
    }
    Ok(())
}

/// Resolves on SIGTERM or Ctrl-C. The signals are watched on a thread of their own, so that
/// they are noticed even when every worker of the main runtime is busy; that thread also
/// ends the process if the graceful shutdown has not within `grace` (and a little more) of
/// the signal, whatever the handlers are doing.
async fn shutdown_signal(grace: std::time::Duration) -> std::io::Result<()> {
    let (signalled, received) = tokio::sync::oneshot::channel::<()>();
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(runtime) => runtime,
                Err(error) => {
                    eprintln!("agent: cannot watch for signals: {error}");
                    return;
                }
            };
            runtime.block_on(wait_for_signal());
            let _ = signalled.send(());
            std::thread::sleep(grace + std::time::Duration::from_secs(2));
            eprintln!(
                "agent: still busy {} s after the signal; exiting without finishing",
                grace.as_secs_f32() + 2.0
            );
            std::process::exit(0);
        })?;
    let _ = received.await;
    Ok(())
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        let Ok(mut term) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        else {
            let _ = tokio::signal::ctrl_c().await;
            return;
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}
