//! The client commands: `crust submit`, `list`, `attach`, `kill`, and
//! `keygen` for Crust's key login.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crust_client::{Client, Event, EventCode, Instance, keys};
use tokio::io::AsyncWriteExt;

use crate::config::Config;

/// Where to connect and how to log in: flags, else environment, else the config's `[client]`.
#[derive(clap::Args)]
pub(crate) struct ClientFlags {
    /// The server (default: the config's `client.server`, else ws://127.0.0.1:8080).
    #[arg(long, env = "CRUST_SERVER", value_name = "URL")]
    server: Option<String>,
    /// Log in with a token the server trusts (Pie's `authenticate`).
    #[arg(long, env = "CRUST_TOKEN", value_name = "TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Log in as this user with `--key` (Crust's challenge–response).
    #[arg(long, env = "CRUST_USER", value_name = "NAME")]
    user: Option<String>,
    /// The secret key file `crust keygen` wrote.
    #[arg(long, env = "CRUST_KEY", value_name = "FILE")]
    key: Option<PathBuf>,
    /// PEM certificates to trust for a wss:// server besides the system's (a private CA, or a self-signed server's certificate).
    #[arg(long, env = "CRUST_CA_CERT", value_name = "FILE")]
    ca_cert: Option<PathBuf>,
}

impl ClientFlags {
    /// Connects and logs in with whatever credentials were given.
    async fn connect(self, config: &Config) -> Result<Client, String> {
        let c = &config.client;
        let url = self.server.or(c.server.clone()).unwrap_or_else(|| "ws://127.0.0.1:8080".into());
        let roots = match self.ca_cert.or(c.ca_cert.clone()) {
            Some(file) => Some(std::fs::read(&file).map_err(|e| format!("--ca-cert {}: {e}", file.display()))?),
            None => None,
        };
        let client = Client::connect_trusting(&url, roots.as_deref()).await.map_err(|e| e.to_string())?;
        let (token, user, key) = (self.token.or(c.token.clone()), self.user.or(c.user.clone()), self.key.or(c.key.clone()));
        match (token, user, key) {
            (Some(token), _, _) => {
                client.authenticate_token(&token).await.map_err(|e| e.to_string())?;
            }
            (None, Some(user), Some(key)) => {
                let key = keys::read_secret(&key)?;
                client.authenticate_key(&user, &key).await.map_err(|e| e.to_string())?;
            }
            (None, None, Some(_)) => return Err("--key needs --user (or CRUST_USER): the user the key logs in as".into()),
            (None, Some(_), None) => return Err("--user needs --key (or CRUST_KEY): the secret key file from `crust keygen`".into()),
            // No credentials: fine for a server run with --no-auth.
            (None, None, None) => {}
        }
        Ok(client)
    }
}

/// Run an inferlet on a server: upload it if the server lacks it, launch it,
/// stream its output, and exit with its status (0 completed, 1 failed or
/// killed, 2 could not start). Lines of stdin go to its `message.receive`.
#[derive(clap::Args)]
pub(crate) struct SubmitArgs {
    #[command(flatten)]
    client: ClientFlags,
    /// Launch, print the instance id and exit; the instance keeps running (`crust attach ID`).
    #[arg(long)]
    detach: bool,
    /// A message for the instance's `message.receive`, sent right after launch; repeatable, in order.
    #[arg(long = "send", value_name = "MESSAGE")]
    messages: Vec<String>,
    /// The inferlet: a wasm component file, or an OCI reference the server pulls.
    inferlet: String,
    /// Arguments for the inferlet (everything after `--`).
    #[arg(last = true, value_name = "ARGS")]
    arguments: Vec<String>,
}

pub(crate) async fn submit(config: Config, args: SubmitArgs) -> ExitCode {
    let started = async {
        let client = args.client.connect(&config).await?;
        let launched = if Path::new(&args.inferlet).exists() || !crate::oci::is_reference(&args.inferlet) {
            let wasm = std::fs::read(&args.inferlet).map_err(|e| format!("cannot read {}: {e}", args.inferlet))?;
            let hash = client.ensure_program(&wasm).await.map_err(|e| e.to_string())?;
            let name = Path::new(&args.inferlet).file_name().map(|n| n.to_string_lossy().into_owned());
            client.launch_named(&hash, name.as_deref(), &args.arguments, args.detach).await
        } else {
            client.launch_reference(&args.inferlet, &args.arguments, args.detach).await
        };
        let instance = launched.map_err(|e| e.to_string())?;
        Ok::<_, String>((client, instance))
    };
    let (client, instance) = match started.await {
        Ok(started) => started,
        Err(e) => {
            eprintln!("error: {}: {e}", args.inferlet);
            return ExitCode::from(2);
        }
    };
    // Detached first: what it answers is then kept for `crust attach`, not sent to this connection.
    if args.detach
        && let Err(e) = client.detach(&instance.id).await
    {
        eprintln!("error: {}: detaching: {e}", instance.id);
        return ExitCode::from(1);
    }
    for message in &args.messages {
        if let Err(e) = client.signal(&instance.id, message) {
            eprintln!("error: {}: sending a message: {e}", instance.id);
            return ExitCode::from(1);
        }
    }
    if args.detach {
        // A round trip: the server has taken the messages when it answers.
        if let Err(e) = client.list().await {
            eprintln!("error: {}: {e}", instance.id);
            return ExitCode::from(1);
        }
        println!("{}", instance.id);
        return ExitCode::SUCCESS;
    }
    forward_stdin(&client, &instance.id);
    follow(&client, instance, OnInterrupt::Kill).await
}

/// List your instances on the server: id, state, age, whether a client is attached, program, arguments.
#[derive(clap::Args)]
pub(crate) struct ListArgs {
    #[command(flatten)]
    client: ClientFlags,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

pub(crate) async fn list(config: Config, args: ListArgs) -> anyhow::Result<()> {
    let client = args.client.connect(&config).await.map_err(anyhow::Error::msg)?;
    let rows = client.list().await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(());
    }
    println!("{:<36}  {:<16}  {:>8}  {:<8}  PROGRAM / ARGUMENTS", "ID", "STATE", "AGE", "ATTACHED");
    for row in rows {
        let hash = row.program.get(..16).unwrap_or(&row.program);
        let program = match &row.name {
            Some(name) => format!("{name} ({hash})"),
            None => hash.to_string(),
        };
        println!(
            "{:<36}  {:<16}  {:>7.0}s  {:<8}  {program} {}",
            row.id,
            row.state,
            row.age_secs,
            if row.attached { "yes" } else { "no" },
            row.arguments.join(" ")
        );
    }
    Ok(())
}

/// Follow one of your instances: what it buffered while detached, then its
/// output as it happens; lines of stdin go to its `message.receive`.
/// Ctrl-C detaches and leaves it running.
#[derive(clap::Args)]
pub(crate) struct AttachArgs {
    #[command(flatten)]
    client: ClientFlags,
    /// The instance id (`crust list`).
    id: String,
}

pub(crate) async fn attach(config: Config, args: AttachArgs) -> ExitCode {
    let attached = async {
        let client = args.client.connect(&config).await?;
        let instance = client.attach(&args.id).await.map_err(|e| e.to_string())?;
        Ok::<_, String>((client, instance))
    };
    match attached.await {
        Ok((client, instance)) => {
            forward_stdin(&client, &instance.id);
            follow(&client, instance, OnInterrupt::Detach).await
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

/// Send a message to one of your running instances (its `message.receive`), without attaching.
#[derive(clap::Args)]
pub(crate) struct SendArgs {
    #[command(flatten)]
    client: ClientFlags,
    /// The instance id (`crust list`).
    id: String,
    /// The message.
    message: String,
}

pub(crate) async fn send(config: Config, args: SendArgs) -> anyhow::Result<()> {
    let client = args.client.connect(&config).await.map_err(anyhow::Error::msg)?;
    let running = |rows: &[crust_client::InstanceInfo]| rows.iter().any(|row| row.id == args.id && row.state == "running");
    anyhow::ensure!(running(&client.list().await?), "no running instance {} of yours (`crust list` shows them)", args.id);
    client.signal(&args.id, &args.message)?;
    // A round trip after it: the server has taken the message (or said why not) when it answers.
    client.list().await?;
    if let Some(why) = client.take_server_events().into_iter().next() {
        anyhow::bail!("{why}");
    }
    Ok(())
}

/// End one of your instances; it ends with `aborted`.
#[derive(clap::Args)]
pub(crate) struct KillArgs {
    #[command(flatten)]
    client: ClientFlags,
    /// The instance id (`crust list`).
    id: String,
}

pub(crate) async fn kill(config: Config, args: KillArgs) -> anyhow::Result<()> {
    let client = args.client.connect(&config).await.map_err(anyhow::Error::msg)?;
    // Attach to see it end; the answer also says whether it is ours.
    let mut instance = client.attach(&args.id).await?;
    client.terminate(&args.id)?;
    while let Some(event) = instance.next().await {
        if let Event::End(code, text) = event {
            println!("{}: {}", args.id, describe(code, &text));
            return Ok(());
        }
    }
    anyhow::bail!("the connection closed before {} ended", args.id)
}

/// Make a key for Crust's key login: writes the secret key file and prints
/// the line for the server's authorized-keys file.
#[derive(clap::Args)]
pub(crate) struct KeygenArgs {
    /// Where to write the secret key (refuses to overwrite).
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
    /// The user the key logs in as.
    #[arg(long, value_name = "NAME")]
    user: String,
}

pub(crate) fn keygen(args: KeygenArgs) -> anyhow::Result<()> {
    let key = keys::generate();
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(&args.out).map_err(|e| anyhow::anyhow!("cannot create {}: {e}", args.out.display()))?;
    std::io::Write::write_all(&mut file, keys::secret_line(&key).as_bytes())?;
    println!("{}", keys::authorized_line(&key.verifying_key(), &args.user));
    Ok(())
}

#[derive(Clone, Copy)]
enum OnInterrupt {
    Kill,
    Detach,
}

/// Streams an instance's events to the terminal until it ends.
async fn follow(client: &Client, mut instance: Instance, on_interrupt: OnInterrupt) -> ExitCode {
    let (mut stdout, mut stderr) = (tokio::io::stdout(), tokio::io::stderr());
    let mut interrupted = false;
    // Whether stdout's last line is unfinished: an error after it starts a line of its own.
    let mut open_line = false;
    loop {
        let event = tokio::select! {
            event = instance.next() => event,
            _ = tokio::signal::ctrl_c(), if !interrupted => {
                interrupted = true;
                match on_interrupt {
                    OnInterrupt::Kill => { let _ = client.terminate(&instance.id); continue; }
                    OnInterrupt::Detach => {
                        let _ = client.detach(&instance.id).await;
                        eprintln!("detached from {}: it keeps running (`crust attach {}`)", instance.id, instance.id);
                        return ExitCode::SUCCESS;
                    }
                }
            }
        };
        if let Some(Event::Stdout(bytes)) = &event {
            open_line = bytes.last().map_or(open_line, |&b| b != b'\n');
        } else if std::mem::take(&mut open_line) {
            let _ = stdout.write_all(b"\n").await.and(stdout.flush().await);
        }
        let _ = match event {
            Some(Event::Stdout(bytes)) => stdout.write_all(&bytes).await.and(stdout.flush().await),
            Some(Event::Stderr(bytes)) => stderr.write_all(&bytes).await.and(stderr.flush().await),
            Some(Event::Message(text)) => stdout.write_all(format!("{text}\n").as_bytes()).await.and(stdout.flush().await),
            Some(Event::Blob(blob)) => stdout.write_all(format!("[blob: {} bytes]\n", blob.len()).as_bytes()).await,
            Some(Event::End(EventCode::Completed, value)) => {
                if !value.is_empty() {
                    println!("{value}");
                }
                return ExitCode::SUCCESS;
            }
            Some(Event::End(code, text)) => {
                eprintln!("error: {}: {}", instance.id, describe(code, &text));
                return ExitCode::from(1);
            }
            None => {
                client.take_server_events().iter().for_each(|e| eprintln!("server: {e}"));
                eprintln!("error: the connection to the server closed before {} ended", instance.id);
                return ExitCode::from(1);
            }
        };
    }
}

fn describe(code: EventCode, text: &str) -> String {
    let what = match code {
        EventCode::Completed => "completed",
        EventCode::Aborted => "aborted",
        EventCode::Exception => "failed",
        EventCode::ServerError => "server error",
        EventCode::OutOfResources => "out of resources",
        EventCode::Message => "message",
    };
    if text.is_empty() { what.to_string() } else { format!("{what}: {text}") }
}

/// Each line of stdin becomes a message for the instance.
fn forward_stdin(client: &Client, id: &str) {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    // A plain thread: a blocked read must not hold up the runtime's shutdown.
    std::thread::spawn(move || {
        for line in std::io::stdin().lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let (sender, id) = (client.clone(), id.to_string());
    tokio::spawn(async move {
        while let Some(line) = rx.recv().await {
            if sender.signal(&id, &line).is_err() {
                break;
            }
        }
    });
}
