//! `inferlet:core/runtime`.

use wasmtime::component::Resource;

use super::InferletView;
use super::bindings::inferlet::core::runtime::Host;
use super::common::{DebugQueryResult, ModelHandle};

impl Host for InferletView<'_> {
    async fn get_version(&mut self) -> wasmtime::Result<String> {
        Ok(self.ctx.host.version.clone())
    }

    async fn get_instance_id(&mut self) -> wasmtime::Result<String> {
        Ok(self.ctx.id.clone())
    }

    async fn get_arguments(&mut self) -> wasmtime::Result<Vec<String>> {
        Ok(self.ctx.arguments.clone())
    }

    async fn set_return(&mut self, value: String) -> wasmtime::Result<()> {
        self.ctx.return_value = Some(value);
        Ok(())
    }

    async fn get_model(&mut self, name: String) -> wasmtime::Result<Option<Resource<ModelHandle>>> {
        let Some(model) = self.ctx.host.models.get(&name) else { return Ok(None) };
        let handle = ModelHandle { model: model.clone() };
        Ok(Some(self.table.push(handle)?))
    }

    async fn get_all_models(&mut self) -> wasmtime::Result<Vec<String>> {
        Ok(self.ctx.host.models.names())
    }

    async fn get_all_models_with_traits(&mut self, traits: Vec<String>) -> wasmtime::Result<Vec<String>> {
        Ok(self.ctx.host.models.names_with_traits(&traits))
    }

    async fn debug_query(&mut self, query: String) -> wasmtime::Result<Resource<DebugQueryResult>> {
        let answer = runtime_debug_answer(&query, self.ctx);
        Ok(self.table.push(DebugQueryResult::ready(answer))?)
    }
}

/// The runtime's debug queries: `ping`, `version`, `instance-id`, `models`.
fn runtime_debug_answer(query: &str, ctx: &super::InferletCtx) -> String {
    match query.trim() {
        "ping" => "pong".to_string(),
        "version" => ctx.host.version.clone(),
        "instance-id" => ctx.id.clone(),
        "models" => ctx.host.models.names().join("\n"),
        other => format!("unknown debug query `{other}`; known: ping, version, instance-id, models"),
    }
}
