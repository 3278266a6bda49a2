//! Inferlets in OCI registries, as CNCF Wasm OCI artifacts: a config of media
//! type `application/vnd.wasm.config.v0+json` that lists the component's
//! imports and exports, and one `application/wasm` layer — the layout `wkg`,
//! oras and skopeo understand. Pulled components are cached by digest and
//! verified on every pull.

use std::collections::{BTreeMap, HashMap};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use oci_client::client::{ClientConfig, ClientProtocol, Config as OciConfig, ImageLayer};
use oci_client::errors::{OciDistributionError, OciErrorCode};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

pub const WASM_CONFIG_MEDIA_TYPE: &str = "application/vnd.wasm.config.v0+json";
pub const WASM_LAYER_MEDIA_TYPE: &str = "application/wasm";

/// Registry settings, from the config file's `[registry]` table and flags.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RegistryConfig {
    /// Hosts (`host:port`) reached over plain http; every other one over https.
    pub insecure: Vec<String>,
    /// Credentials by the registry (`host[:port]`) they were given for: sent to that one alone.
    pub login: BTreeMap<String, Login>,
    /// The largest component taken from a registry; a bigger layer is refused before or while it streams.
    pub max_component_mib: f64,
    pub connect_timeout_secs: f64,
    /// The longest a registry may keep one read waiting.
    pub read_timeout_secs: f64,
    /// The longest one push or pull may take in all.
    pub timeout_secs: f64,
}

impl Default for RegistryConfig {
    fn default() -> Self {
        Self {
            insecure: Vec::new(),
            login: BTreeMap::new(),
            max_component_mib: 128.0,
            connect_timeout_secs: 10.0,
            read_timeout_secs: 30.0,
            timeout_secs: 300.0,
        }
    }
}

/// `[registry.login."host:port"]`: basic auth, or a bearer token sent as is.
#[derive(Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Login {
    pub username: Option<String>,
    pub password: Option<String>,
    pub token: Option<String>,
}

impl Login {
    fn auth(&self) -> RegistryAuth {
        match (&self.token, &self.username, &self.password) {
            (Some(token), _, _) => RegistryAuth::Bearer(token.clone()),
            (None, Some(user), Some(password)) => RegistryAuth::Basic(user.clone(), password.clone()),
            _ => RegistryAuth::Anonymous,
        }
    }
}

// By hand: a derived Debug would print the secrets.
impl std::fmt::Debug for RegistryConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryConfig")
            .field("insecure", &self.insecure)
            .field("login", &self.login.keys().collect::<Vec<_>>())
            .field("max_component_mib", &self.max_component_mib)
            .field("connect_timeout_secs", &self.connect_timeout_secs)
            .field("read_timeout_secs", &self.read_timeout_secs)
            .field("timeout_secs", &self.timeout_secs)
            .finish()
    }
}

impl RegistryConfig {
    pub fn validate(&self) -> Result<(), String> {
        let positive = [
            ("max_component_mib", self.max_component_mib),
            ("connect_timeout_secs", self.connect_timeout_secs),
            ("read_timeout_secs", self.read_timeout_secs),
            ("timeout_secs", self.timeout_secs),
        ];
        for (key, value) in positive {
            if !(value.is_finite() && value > 0.0) {
                return Err(format!("registry.{key} must be a positive number, got {value}"));
            }
        }
        for (host, login) in &self.login {
            if login.token.is_none() && (login.username.is_none() || login.password.is_none()) {
                return Err(format!("registry.login.\"{host}\" needs `token`, or `username` and `password`"));
            }
        }
        Ok(())
    }

    fn max_component_bytes(&self) -> u64 {
        (self.max_component_mib * (1u64 << 20) as f64) as u64
    }
}

/// The registry (`host[:port]`) a reference names, as credentials and allow-lists spell it.
pub fn registry_of(reference: &str) -> Result<String, RegistryError> {
    Ok(Registry::parse(reference)?.resolve_registry().to_string())
}

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("`{reference}` is not a valid OCI reference (registry/repository:tag or @sha256:…): {detail}")]
    BadReference { reference: String, detail: String },
    #[error("registry {registry} is unreachable: {detail}")]
    Unreachable { registry: String, detail: String },
    #[error(
        "registry {registry} refused the credentials (give --username/--password, CRUST_REGISTRY_USERNAME/PASSWORD or [registry] in the config): {detail}"
    )]
    AuthRefused { registry: String, detail: String },
    #[error("`{0}` does not exist in the registry (unknown repository or tag)")]
    NotFound(String),
    #[error("`{reference}` is not a wasm component artifact: {detail}")]
    NotWasm { reference: String, detail: String },
    #[error("the blob of `{reference}` does not match its digest {expected} (got {actual}): refusing it")]
    Tampered { reference: String, expected: String, actual: String },
    #[error("`{reference}` is {size} bytes, more than registry.max_component_mib ({limit_mib} MiB) allows")]
    TooLarge { reference: String, size: u64, limit_mib: f64 },
    #[error("the registry sent more of `{reference}` than the {declared} bytes its manifest declares: refusing it")]
    Oversent { reference: String, declared: u64 },
    #[error("registry {registry} did not finish within registry.timeout_secs ({secs} s)")]
    TimedOut { registry: String, secs: f64 },
    #[error("registry error for `{reference}`: {detail}")]
    Other { reference: String, detail: String },
    #[error("cache: {0}")]
    Cache(#[from] std::io::Error),
}

/// The Wasm OCI config (CNCF TAG Runtime's wasm artifact layout).
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WasmConfig {
    pub created: String,
    pub architecture: String,
    pub os: String,
    pub layer_digests: Vec<String>,
    pub component: ComponentSummary,
}

#[derive(Debug, Serialize, Deserialize, Default)]
pub struct ComponentSummary {
    pub imports: Vec<String>,
    pub exports: Vec<String>,
}

/// A component fetched by reference.
pub struct Pulled {
    pub bytes: Vec<u8>,
    /// The manifest's digest (what the tag resolved to).
    pub manifest_digest: String,
    pub layer_digest: String,
    /// Where the verified component is cached.
    pub path: PathBuf,
}

/// Whether `arg` names a registry artifact rather than a file: it has a
/// registry host and a tag or digest, and is not an existing path.
pub fn is_reference(arg: &str) -> bool {
    !Path::new(arg).exists()
        && arg.contains('/')
        && (arg.contains('@') || arg.rsplit('/').next().is_some_and(|last| last.contains(':')))
        && arg.split('/').next().is_some_and(|host| host.contains('.') || host.contains(':') || host == "localhost")
}

pub fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{:x}", Sha256::digest(bytes))
}

pub struct Registry {
    client: Client,
    config: RegistryConfig,
    cache_dir: PathBuf,
    /// One download per digest at a time; the others wait and take it from the cache.
    downloads: std::sync::Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl Registry {
    pub fn new(config: &RegistryConfig, cache_dir: &Path) -> Self {
        // TLS needs one process-wide crypto provider; the first registry installs ring's.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = Client::new(ClientConfig {
            protocol: ClientProtocol::HttpsExcept(config.insecure.clone()),
            connect_timeout: Some(Duration::from_secs_f64(config.connect_timeout_secs)),
            read_timeout: Some(Duration::from_secs_f64(config.read_timeout_secs)),
            ..Default::default()
        });
        Self { client, config: config.clone(), cache_dir: cache_dir.join("oci"), downloads: Default::default() }
    }

    fn parse(reference: &str) -> Result<Reference, RegistryError> {
        reference.parse().map_err(|e: oci_client::ParseError| RegistryError::BadReference { reference: reference.into(), detail: e.to_string() })
    }

    /// The credentials given for this image's registry, and none for any other.
    fn auth(&self, image: &Reference) -> RegistryAuth {
        let login = self.config.login.get(image.resolve_registry()).or_else(|| self.config.login.get(image.registry()));
        login.map_or(RegistryAuth::Anonymous, Login::auth)
    }

    /// Runs one registry operation within `registry.timeout_secs`.
    async fn within_time<T>(&self, image: &Reference, work: impl Future<Output = Result<T, RegistryError>>) -> Result<T, RegistryError> {
        let secs = self.config.timeout_secs;
        tokio::time::timeout(Duration::from_secs_f64(secs), work)
            .await
            .unwrap_or_else(|_| Err(RegistryError::TimedOut { registry: image.resolve_registry().to_string(), secs }))
    }

    /// Pushes a component; returns the manifest's digest.
    pub async fn push(&self, bytes: &[u8], reference: &str, component: ComponentSummary) -> Result<String, RegistryError> {
        let image = Self::parse(reference)?;
        self.within_time(&image, self.push_image(&image, bytes, reference, component)).await
    }

    async fn push_image(&self, image: &Reference, bytes: &[u8], reference: &str, component: ComponentSummary) -> Result<String, RegistryError> {
        let layer_digest = sha256_digest(bytes);
        let config =
            WasmConfig { created: now_rfc3339(), architecture: "wasm".into(), os: "wasip2".into(), layer_digests: vec![layer_digest], component };
        let config = OciConfig {
            data: serde_json::to_vec(&config).expect("serializable").into(),
            media_type: WASM_CONFIG_MEDIA_TYPE.into(),
            annotations: None,
        };
        let layer = ImageLayer::new(bytes.to_vec(), WASM_LAYER_MEDIA_TYPE.into(), None);
        let mut manifest = oci_client::manifest::OciImageManifest::build(std::slice::from_ref(&layer), &config, None);
        manifest.artifact_type = Some(WASM_CONFIG_MEDIA_TYPE.into());
        let response =
            self.client.push(image, &[layer], config, &self.auth(image), Some(manifest)).await.map_err(|e| classify(reference, image, e))?;
        let digest = response.manifest_url.rsplit('/').next().unwrap_or_default().to_string();
        Ok(if digest.starts_with("sha256:") { digest } else { self.resolve_image(image, reference).await? })
    }

    /// The digest a reference resolves to now.
    pub async fn resolve(&self, reference: &str) -> Result<String, RegistryError> {
        let image = Self::parse(reference)?;
        self.within_time(&image, self.resolve_image(&image, reference)).await
    }

    async fn resolve_image(&self, image: &Reference, reference: &str) -> Result<String, RegistryError> {
        let (_, digest) = self.client.pull_image_manifest(image, &self.auth(image)).await.map_err(|e| classify(reference, image, e))?;
        Ok(digest)
    }

    /// Pulls a component: the tag resolves to a manifest digest, the layer is
    /// taken from the cache when a file with its digest is there and still
    /// hashes to it, else streamed to a temporary file — cut off past the
    /// manifest's size or `registry.max_component_mib` — and checked against
    /// the digest.
    pub async fn pull(&self, reference: &str) -> Result<Pulled, RegistryError> {
        let image = Self::parse(reference)?;
        self.within_time(&image, self.pull_image(&image, reference)).await
    }

    async fn pull_image(&self, image: &Reference, reference: &str) -> Result<Pulled, RegistryError> {
        let fail = |e| classify(reference, image, e);
        let (manifest, manifest_digest) = self.client.pull_image_manifest(image, &self.auth(image)).await.map_err(fail)?;
        let not_wasm = |detail: String| RegistryError::NotWasm { reference: reference.into(), detail };
        if manifest.config.media_type != WASM_CONFIG_MEDIA_TYPE {
            return Err(not_wasm(format!("its config media type is `{}`, not `{WASM_CONFIG_MEDIA_TYPE}`", manifest.config.media_type)));
        }
        let [layer] = manifest.layers.as_slice() else {
            return Err(not_wasm(format!("it has {} layers, not one", manifest.layers.len())));
        };
        if layer.media_type != WASM_LAYER_MEDIA_TYPE {
            return Err(not_wasm(format!("its layer media type is `{}`, not `{WASM_LAYER_MEDIA_TYPE}`", layer.media_type)));
        }
        let declared = u64::try_from(layer.size).unwrap_or(u64::MAX);
        if declared > self.config.max_component_bytes() {
            return Err(RegistryError::TooLarge { reference: reference.into(), size: declared, limit_mib: self.config.max_component_mib });
        }
        let path = self.cache_path(&layer.digest)?;
        let slot = DownloadSlot::take(&self.downloads, &layer.digest);
        let _one_at_a_time = slot.lock.lock().await;
        let pulled = |bytes| Pulled { bytes, manifest_digest: manifest_digest.clone(), layer_digest: layer.digest.clone(), path: path.clone() };
        if let Ok(bytes) = std::fs::read(&path) {
            if sha256_digest(&bytes) == layer.digest {
                tracing::debug!(digest = %layer.digest, "component taken from the OCI cache");
                return Ok(pulled(bytes));
            }
            tracing::warn!(path = %path.display(), "cached component does not match its digest; fetching it again");
        }
        std::fs::create_dir_all(path.parent().expect("cache paths have a parent"))?;
        // Removed on every way out but the rename, a timeout's drop included.
        let temporary = Temporary(path.with_extension(format!("tmp-{}", uuid::Uuid::new_v4())));
        let bytes = self.download(image, layer, reference, declared, &temporary.0).await?;
        let actual = sha256_digest(&bytes);
        if actual != layer.digest {
            return Err(RegistryError::Tampered { reference: reference.into(), expected: layer.digest.clone(), actual });
        }
        std::fs::rename(&temporary.0, &path)?;
        Ok(pulled(bytes))
    }

    /// Streams a layer into `file`, at most `declared` bytes; returns what it wrote.
    async fn download(
        &self,
        image: &Reference,
        layer: &oci_client::manifest::OciDescriptor,
        reference: &str,
        declared: u64,
        file: &Path,
    ) -> Result<Vec<u8>, RegistryError> {
        let mut sink = CappedFile { file: std::fs::File::create(file)?, written: 0, limit: declared, over: false };
        let streamed = self.client.pull_blob(image, layer, &mut sink).await;
        if sink.over {
            return Err(RegistryError::Oversent { reference: reference.into(), declared });
        }
        streamed.map_err(|e| classify(reference, image, e))?;
        sink.file.sync_all()?;
        Ok(std::fs::read(file)?)
    }

    fn cache_path(&self, digest: &str) -> Result<PathBuf, RegistryError> {
        let hex = digest.strip_prefix("sha256:").filter(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()));
        let hex = hex.ok_or_else(|| RegistryError::NotWasm { reference: digest.into(), detail: "its layer digest is not sha256".into() })?;
        Ok(self.cache_dir.join("sha256").join(format!("{hex}.wasm")))
    }
}

/// One digest's turn to download; the map forgets the digest when no pull holds or awaits it.
struct DownloadSlot<'a> {
    downloads: &'a std::sync::Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    digest: String,
    lock: Arc<tokio::sync::Mutex<()>>,
}

impl<'a> DownloadSlot<'a> {
    fn take(downloads: &'a std::sync::Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>, digest: &str) -> Self {
        let lock = downloads.lock().unwrap().entry(digest.to_string()).or_default().clone();
        Self { downloads, digest: digest.to_string(), lock }
    }
}

impl Drop for DownloadSlot<'_> {
    fn drop(&mut self) {
        let mut downloads = self.downloads.lock().unwrap();
        // The map's and this slot's: nobody else wants it.
        if Arc::strong_count(&self.lock) <= 2 {
            downloads.remove(&self.digest);
        }
    }
}

/// A file removed when dropped, unless it was renamed away first.
struct Temporary(PathBuf);

impl Drop for Temporary {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// A file that refuses a write past `limit` bytes, remembering that it did.
struct CappedFile {
    file: std::fs::File,
    written: u64,
    limit: u64,
    over: bool,
}

impl tokio::io::AsyncWrite for CappedFile {
    fn poll_write(self: Pin<&mut Self>, _: &mut std::task::Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        if this.written + buf.len() as u64 > this.limit {
            this.over = true;
            return Poll::Ready(Err(std::io::Error::other("more bytes than the manifest declares")));
        }
        // Small local writes: blocking for them is cheaper than a thread hop.
        let n = this.file.write(buf)?;
        this.written += n as u64;
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut std::task::Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(self.get_mut().file.flush())
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> Poll<std::io::Result<()>> {
        self.poll_flush(cx)
    }
}

fn classify(reference: &str, image: &Reference, error: OciDistributionError) -> RegistryError {
    let registry = image.resolve_registry().to_string();
    let detail = error.to_string();
    match &error {
        OciDistributionError::AuthenticationFailure(_) | OciDistributionError::UnauthorizedError { .. } => {
            RegistryError::AuthRefused { registry, detail }
        }
        OciDistributionError::ImageManifestNotFoundError(_) => RegistryError::NotFound(reference.into()),
        OciDistributionError::RegistryError { envelope, .. } => {
            let codes: Vec<&OciErrorCode> = envelope.errors.iter().map(|e| &e.code).collect();
            if codes.iter().any(|c| matches!(c, OciErrorCode::ManifestUnknown | OciErrorCode::NameUnknown | OciErrorCode::NotFound)) {
                RegistryError::NotFound(reference.into())
            } else if codes.iter().any(|c| matches!(c, OciErrorCode::Unauthorized | OciErrorCode::Denied)) {
                RegistryError::AuthRefused { registry, detail }
            } else {
                RegistryError::Other { reference: reference.into(), detail }
            }
        }
        OciDistributionError::ServerError { code: 401 | 403, .. } => RegistryError::AuthRefused { registry, detail },
        OciDistributionError::ServerError { code: 404, .. } => RegistryError::NotFound(reference.into()),
        OciDistributionError::DigestError(_) => {
            RegistryError::Tampered { reference: reference.into(), expected: "the manifest's".into(), actual: detail }
        }
        // What TLS says when the other end answers in plain http.
        _ if error_chain(&error).contains("InvalidContentType") => RegistryError::Unreachable {
            detail: format!(
                "it answered in plain http, not https: pass --insecure {registry} (or list it in [registry] insecure) if that is meant ({})",
                error_chain(&error)
            ),
            registry,
        },
        OciDistributionError::RequestError(e) if e.is_connect() || e.is_timeout() || e.is_request() => {
            RegistryError::Unreachable { registry, detail: error_chain(e) }
        }
        _ => RegistryError::Other { reference: reference.into(), detail },
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text = format!("{text}: {s}");
        source = s.source();
    }
    text
}

/// UTC now as RFC 3339, without a date crate.
fn now_rfc3339() -> String {
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + (month <= 2) as i64;
    format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}

/// The top-level import and export names of a component, for its artifact config.
pub fn component_summary(bytes: &[u8]) -> ComponentSummary {
    let mut summary = ComponentSummary::default();
    let mut depth = 0usize;
    for payload in wasmparser::Parser::new(0).parse_all(bytes).flatten() {
        match payload {
            wasmparser::Payload::ModuleSection { .. } | wasmparser::Payload::ComponentSection { .. } => depth += 1,
            wasmparser::Payload::End(_) => depth = depth.saturating_sub(1),
            wasmparser::Payload::ComponentImportSection(imports) if depth == 0 => {
                summary.imports.extend(imports.into_iter().flatten().map(|i| i.name.name.to_string()));
            }
            wasmparser::Payload::ComponentExportSection(exports) if depth == 0 => {
                summary.exports.extend(exports.into_iter().flatten().map(|e| e.name.name.to_string()));
            }
            _ => {}
        }
    }
    summary
}
