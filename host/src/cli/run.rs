//! `crust run`: one inferlet, once.

use std::path::Path;
use std::process::ExitCode;

use tokio::io::AsyncWriteExt;

use super::LimitFlags;
use super::registry::RegistryFlags;
use crate::config::Config;
use crate::runtime::{Launch, OutputSink, Runtime, Stream};

/// Run one inferlet: stream its stdout and stderr, print its return value.
///
/// Exits 0 when the inferlet completes, 1 when it fails (a trap, an `Err`
/// from `run`, a limit), 2 when it cannot start (not a component, a missing
/// import, a bad config).
#[derive(clap::Args)]
pub(crate) struct RunArgs {
    /// The inferlet: a wasm component file, or an OCI reference (`registry/repository:tag`).
    inferlet: String,
    #[command(flatten)]
    model: super::ModelFlag,
    #[command(flatten)]
    limits: LimitFlags,
    #[command(flatten)]
    registry: RegistryFlags,
    /// A message for the inferlet's `message.receive`, before the lines of stdin (repeatable).
    #[arg(long = "send", value_name = "MESSAGE")]
    send: Vec<String>,
    /// Arguments for the inferlet (everything after `--`).
    #[arg(last = true, value_name = "ARGS")]
    arguments: Vec<String>,
}

pub(crate) async fn run(mut config: Config, args: RunArgs) -> ExitCode {
    args.limits.apply(&mut config);
    if let Err(e) = args.model.apply(&mut config) {
        eprintln!("error: {e:#}");
        return ExitCode::from(2);
    }
    let runtime = match Runtime::new(&config) {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::from(2);
        }
    };
    runtime.models().observe_loading(super::progress::model_loading_bar());
    let loaded = if crate::oci::is_reference(&args.inferlet) {
        let pulled = match args.registry.registry(&config, &args.inferlet) {
            Ok(registry) => registry.pull(&args.inferlet).await,
            Err(e) => Err(e),
        };
        match pulled {
            Ok(pulled) => runtime.load_program(&pulled.bytes),
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(2);
            }
        }
    } else {
        runtime.load_program_file(Path::new(&args.inferlet))
    };
    let program = match loaded {
        Ok(program) => program,
        Err(e) => {
            eprintln!("error: {}: {e}", args.inferlet);
            return ExitCode::from(2);
        }
    };
    let (sink, mut output) = OutputSink::channel();
    // Says whether stdout's last line was left unfinished.
    let printer = tokio::spawn(async move {
        let (mut stdout, mut stderr) = (tokio::io::stdout(), tokio::io::stderr());
        let mut open_line = false;
        while let Some(chunk) = output.recv().await {
            match chunk.stream {
                Stream::Stdout => open_line = chunk.bytes.last().map_or(open_line, |&b| b != b'\n'),
                _ if std::mem::take(&mut open_line) => drop(stdout.write_all(b"\n").await),
                _ => {}
            }
            let _ = match chunk.stream {
                Stream::Stdout => stdout.write_all(&chunk.bytes).await.and(stdout.flush().await),
                Stream::Stderr => stderr.write_all(&chunk.bytes).await.and(stderr.flush().await),
                // Messages to the client: one per line.
                Stream::Message => stdout.write_all(&[&chunk.bytes[..], b"\n"].concat()).await.and(stdout.flush().await),
                Stream::Blob => stdout.write_all(format!("[blob: {} bytes]\n", chunk.bytes.len()).as_bytes()).await,
            };
        }
        open_line
    });
    let launch = Launch {
        arguments: args.arguments,
        output: Some(sink),
        instance_id: None,
        inbox: Some(client_messages(args.send)),
        blobs: None,
        namespace: None,
        owner: None,
        limits: None,
    };
    let outcome = runtime.run(&program, launch).await;
    if printer.await.unwrap_or(false) {
        // What follows starts a line of its own.
        println!();
    }
    match outcome {
        Ok(Some(value)) => {
            println!("{value}");
            ExitCode::SUCCESS
        }
        Ok(None) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}: {e}", args.inferlet);
            ExitCode::from(1)
        }
    }
}

/// The client's messages: each `--send`, then each line of stdin until it ends.
fn client_messages(send: Vec<String>) -> tokio::sync::mpsc::UnboundedReceiver<String> {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    send.into_iter().for_each(|m| drop(tx.send(m)));
    // A plain thread: a blocked read must not hold up the runtime's shutdown.
    std::thread::spawn(move || {
        for line in std::io::stdin().lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}
