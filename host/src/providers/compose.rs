//! Composing a provider into an inferlet at load time (`wac-graph`): the
//! provider's exports satisfy the inferlet's imports of them, and the result
//! is one component. Used for `message`, whose resources and pollables must
//! live in the inferlet's own store; the composed program is cached like any
//! other, so a launch pays nothing for it.

use wac_graph::types::Package;
use wac_graph::{CompositionGraph, EncodeOptions, PlugError, plug};

/// `inferlet` with `provider` plugged into the imports it exports; `None`
/// when the inferlet imports none of them.
pub fn plug_into(inferlet: &[u8], provider: &[u8], provider_name: &str) -> Result<Option<Vec<u8>>, String> {
    let mut graph = CompositionGraph::new();
    let err = |what: &str, e: &dyn std::fmt::Display| format!("composing the {provider_name} provider into the inferlet: {what}: {e}");
    let socket = Package::from_bytes("crust:inferlet", None, inferlet.to_vec(), graph.types_mut())
        .map_err(|e| err("reading the inferlet", &format!("{e:#}")))?;
    let socket = graph.register_package(socket).map_err(|e| err("registering the inferlet", &e))?;
    let provider = Package::from_bytes("crust:provider", None, provider.to_vec(), graph.types_mut())
        .map_err(|e| err("reading the provider", &format!("{e:#}")))?;
    let provider = graph.register_package(provider).map_err(|e| err("registering the provider", &e))?;
    match plug(&mut graph, vec![provider], socket) {
        Ok(()) => {}
        Err(PlugError::NoPlugHappened) => return Ok(None),
        Err(PlugError::GraphError { source }) => return Err(err("plugging", &format!("{source:#}"))),
    }
    graph.encode(EncodeOptions::default()).map(Some).map_err(|e| err("encoding", &e))
}
