//! Uploaded programs: kept on disk by BLAKE3 hash (so a restarted server
//! still has them) and compiled once per process.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use crate::runtime::{Program, Runtime};

pub struct Programs {
    dir: PathBuf,
    loaded: Mutex<HashMap<String, Arc<Program>>>,
}

impl Programs {
    pub fn new(dir: PathBuf) -> Self {
        Self { dir, loaded: Mutex::default() }
    }

    pub fn exists(&self, hash: &str) -> bool {
        is_hash(hash) && (self.loaded.lock().unwrap().contains_key(hash) || self.path(hash).is_file())
    }

    /// Checks that `bytes` is an inferlet (compiling and linking it), then keeps it.
    pub async fn add(&self, runtime: &Arc<Runtime>, hash: &str, bytes: Vec<u8>) -> Result<(), String> {
        let program = compile(runtime, bytes.clone()).await?;
        std::fs::create_dir_all(&self.dir).map_err(|e| format!("cannot create {}: {e}", self.dir.display()))?;
        let temporary = self.dir.join(format!(".{hash}.{}", uuid::Uuid::new_v4()));
        std::fs::write(&temporary, &bytes)
            .and_then(|()| std::fs::rename(&temporary, self.path(hash)))
            .map_err(|e| format!("cannot store the program: {e}"))?;
        self.loaded.lock().unwrap().insert(hash.to_string(), program);
        Ok(())
    }

    pub async fn get(&self, runtime: &Arc<Runtime>, hash: &str) -> Result<Arc<Program>, String> {
        if let Some(program) = self.loaded.lock().unwrap().get(hash) {
            return Ok(program.clone());
        }
        let missing = || format!("no program {hash} on this server: upload it first");
        if !is_hash(hash) {
            return Err(missing());
        }
        let bytes = std::fs::read(self.path(hash)).map_err(|_| missing())?;
        let program = compile(runtime, bytes).await?;
        self.loaded.lock().unwrap().insert(hash.to_string(), program.clone());
        Ok(program)
    }

    fn path(&self, hash: &str) -> PathBuf {
        self.dir.join(format!("{hash}.wasm"))
    }
}

/// Compiling takes a while: off the async threads.
pub async fn compile(runtime: &Arc<Runtime>, bytes: Vec<u8>) -> Result<Arc<Program>, String> {
    let runtime = runtime.clone();
    tokio::task::spawn_blocking(move || runtime.load_program(&bytes))
        .await
        .map_err(|e| format!("compiling the program failed: {e}"))?
        .map_err(|e| format!("not a usable inferlet: {e}"))
}

/// A BLAKE3 hex digest, and so a safe file name.
pub fn is_hash(text: &str) -> bool {
    text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
}
