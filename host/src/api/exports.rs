//! `crust:host/exports`: keeping an export past its owner's last instance.

use std::time::Duration;

use wasmtime::component::Resource;

use super::InferletView;
use super::bindings::crust::host::exports::Host;
use super::common::{QueueHandle, kind};

impl Host for InferletView<'_> {
    async fn keep_export(
        &mut self,
        queue: Resource<QueueHandle>,
        resource_type: u32,
        name: String,
        ttl_secs: u32,
    ) -> wasmtime::Result<Result<u32, String>> {
        const CALL: &str = "exports.keep-export";
        let kind = match kind(resource_type, CALL) {
            Ok(kind) => kind,
            Err(e) => return super::misuse(e),
        };
        let ttl = Duration::from_secs(ttl_secs.into()).min(self.ctx.export_ttl_cap);
        Ok(self.holdings(&queue)?.keep(kind, &name, ttl).map(|()| ttl.as_secs() as u32).map_err(|e| format!("{CALL}: {e}")))
    }
}
