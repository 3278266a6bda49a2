//! `crust serve`: the long-running server (docs/server.md).

use std::path::PathBuf;

use super::LimitFlags;
use crate::config::Config;
use crate::server::{ServeOptions, serve};

/// Serve clients: Pie's client protocol (and Crust's additions) over
/// WebSocket, and `GET /metrics`, on one address.
///
/// Stops on SIGINT or SIGTERM: running instances end with an `aborted`
/// event their clients receive, and the server exits 0.
#[derive(clap::Args)]
pub(crate) struct ServeArgs {
    /// Address to listen on (default: the config's `server.listen`, else 127.0.0.1:8080; port 0 picks a free one).
    #[arg(long, value_name = "ADDR")]
    listen: Option<String>,
    /// Let anyone connect, as user `anonymous` (refused unless the address is loopback).
    #[arg(long)]
    no_auth: bool,
    /// Let user NAME log in with SECRET (8+ characters), as `[server.tokens]` does; repeatable.
    /// The token is also that user's OpenAI API key.
    #[arg(long = "token", value_name = "NAME=SECRET", value_parser = user_token)]
    tokens: Vec<(String, String)>,
    /// Serve `wss://` and `https://` with this PEM certificate chain (default: the config's `server.tls_cert`); needs --tls-key.
    #[arg(long, value_name = "FILE")]
    tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert (default: the config's `server.tls_key`).
    #[arg(long, value_name = "FILE")]
    tls_key: Option<PathBuf>,
    #[command(flatten)]
    model: super::ModelFlag,
    #[command(flatten)]
    limits: LimitFlags,
}

fn user_token(value: &str) -> Result<(String, String), String> {
    let (user, secret) = value.split_once('=').ok_or("give NAME=SECRET")?;
    if user.is_empty() || secret.len() < 8 {
        return Err("give a user name and a secret of 8 or more characters (use a long random one)".into());
    }
    Ok((user.to_string(), secret.to_string()))
}

pub(crate) async fn run(mut config: Config, args: ServeArgs) -> anyhow::Result<()> {
    args.limits.apply(&mut config);
    config.server.tokens.extend(args.tokens);
    args.model.apply(&mut config)?;
    let load_observer = Some(super::progress::model_loading_bar());
    let tls = match (args.tls_cert.or(config.server.tls_cert.clone()), args.tls_key.or(config.server.tls_key.clone())) {
        (Some(cert), Some(key)) => Some((cert, key)),
        (None, None) => None,
        (Some(_), None) => anyhow::bail!("--tls-cert needs --tls-key (or server.tls_key): the certificate's private key"),
        (None, Some(_)) => anyhow::bail!("--tls-key needs --tls-cert (or server.tls_cert): the certificate chain"),
    };
    serve(config, ServeOptions { listen: args.listen, no_auth: args.no_auth, tls, load_observer }).await
}
