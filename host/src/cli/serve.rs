//! `crust serve`: the long-running server (docs/server.md).

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
    #[command(flatten)]
    limits: LimitFlags,
}

pub(crate) async fn run(mut config: Config, args: ServeArgs) -> anyhow::Result<()> {
    args.limits.apply(&mut config);
    let load_observer = Some(super::progress::model_loading_bar());
    serve(config, ServeOptions { listen: args.listen, no_auth: args.no_auth, load_observer }).await
}
