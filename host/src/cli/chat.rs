//! `crust chat`: a conversation with a model at the terminal, through the
//! `chat` inferlet built with Crust (found like the providers, so there is
//! no path to type): a `> ` prompt, each reply streamed as it is generated,
//! the history kept until `/reset`, `/exit` or the end of input.

use std::io::Write;
use std::process::ExitCode;

use crate::config::Config;
use crate::runtime::{Launch, OutputSink, Runtime, Stream};

/// Chat with a model: type a message after `> `; the reply streams back.
/// `/reset` starts over, `/exit` (or Ctrl-D) ends the chat.
#[derive(clap::Args)]
pub(crate) struct ChatArgs {
    #[command(flatten)]
    model: super::ModelFlag,
    /// A system message that opens the conversation (and each one `/reset` starts).
    #[arg(long)]
    system: Option<String>,
    /// The most tokens of one reply.
    #[arg(long, default_value_t = 512)]
    max_tokens: usize,
    /// Sampling temperature; 0 is greedy (with some, a floor of min-p 0.05 keeps replies on topic).
    #[arg(long, default_value_t = 0.0)]
    temperature: f32,
}

const PROMPT: &str = "> ";

pub(crate) async fn run(mut config: Config, args: ChatArgs) -> ExitCode {
    let fail = |e: &dyn std::fmt::Display| {
        eprintln!("error: {e}");
        ExitCode::from(2)
    };
    if let Err(e) = args.model.apply(&mut config) {
        return fail(&e);
    }
    let runtime = match Runtime::new(&config) {
        Ok(runtime) => runtime,
        Err(e) => return fail(&e),
    };
    runtime.models().observe_loading(super::progress::model_loading_bar());
    let path = match crate::providers::locate(None, "chat.wasm") {
        Ok(path) => path,
        Err(e) => return fail(&e),
    };
    let program = match runtime.load_program_file(&path) {
        Ok(program) => program,
        Err(e) => return fail(&format!("{}: {e}", path.display())),
    };
    let mut arguments = vec!["--stream".to_string(), "--max-tokens".into(), args.max_tokens.to_string()];
    arguments.extend(["--temperature".into(), args.temperature.to_string()]);
    if let Some(system) = args.system {
        arguments.extend(["--system".into(), system]);
    }
    let (sink, mut output) = OutputSink::channel();
    let (lines, inbox) = tokio::sync::mpsc::unbounded_channel();
    let printer = tokio::spawn(async move {
        let mut stdout = std::io::stdout();
        let _ = write!(stdout, "{PROMPT}").and(stdout.flush());
        while let Some(chunk) = output.recv().await {
            let _ = match chunk.stream {
                Stream::Stdout => stdout.write_all(&chunk.bytes).and(stdout.flush()),
                Stream::Stderr => std::io::stderr().write_all(&chunk.bytes),
                // The reply is over: the next message, please.
                Stream::Message => write!(stdout, "{PROMPT}").and(stdout.flush()),
                Stream::Blob => Ok(()),
            };
        }
        // The end of input leaves the prompt open: close its line.
        let _ = writeln!(stdout);
    });
    // A plain thread: a blocked read must not hold up the runtime's shutdown.
    std::thread::spawn(move || {
        for line in std::io::stdin().lines().map_while(Result::ok) {
            // An empty message would end the inferlet's conversation: skip it. (No prompt
            // from here: a reply may be streaming.)
            if line.trim().is_empty() {
                continue;
            }
            if lines.send(line).is_err() {
                break;
            }
        }
    });
    let launch =
        Launch { arguments, output: Some(sink), instance_id: None, inbox: Some(inbox), blobs: None, namespace: None, owner: None, limits: None };
    let outcome = runtime.run(&program, launch).await;
    let _ = printer.await;
    match outcome {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}
