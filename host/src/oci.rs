//! Inferlets in OCI registries, as CNCF Wasm OCI artifacts: a config of media
//! type `application/vnd.wasm.config.v0+json` that lists the component's
//! imports and exports, and one `application/wasm` layer — the layout `wkg`,
//! oras and skopeo understand. Pulled components are cached by digest and
//! verified on every pull.

use std::path::{Path, PathBuf};

use oci_client::client::{ClientConfig, ClientProtocol, Config as OciConfig, ImageLayer};
use oci_client::errors::{OciDistributionError, OciErrorCode};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

pub const WASM_CONFIG_MEDIA_TYPE: &str = "application/vnd.wasm.config.v0+json";
pub const WASM_LAYER_MEDIA_TYPE: &str = "application/wasm";

/// Registry settings, from the config file's `[registry]` table, flags and the environment.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RegistryConfig {
    /// Hosts (`host:port`) reached over plain http; every other one over https.
    pub insecure: Vec<String>,
    pub username: Option<String>,
    pub password: Option<String>,
    /// A bearer token, sent as is.
    pub token: Option<String>,
}

impl RegistryConfig {
    fn auth(&self) -> RegistryAuth {
        match (&self.token, &self.username, &self.password) {
            (Some(token), _, _) => RegistryAuth::Bearer(token.clone()),
            (None, Some(user), Some(password)) => RegistryAuth::Basic(user.clone(), password.clone()),
            _ => RegistryAuth::Anonymous,
        }
    }
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
    auth: RegistryAuth,
    cache_dir: PathBuf,
}

impl Registry {
    pub fn new(config: &RegistryConfig, cache_dir: &Path) -> Self {
        // TLS needs one process-wide crypto provider; the first registry installs ring's.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = Client::new(ClientConfig { protocol: ClientProtocol::HttpsExcept(config.insecure.clone()), ..Default::default() });
        Self { client, auth: config.auth(), cache_dir: cache_dir.join("oci") }
    }

    fn parse(reference: &str) -> Result<Reference, RegistryError> {
        reference.parse().map_err(|e: oci_client::ParseError| RegistryError::BadReference { reference: reference.into(), detail: e.to_string() })
    }

    /// Pushes a component; returns the manifest's digest.
    pub async fn push(&self, bytes: &[u8], reference: &str, component: ComponentSummary) -> Result<String, RegistryError> {
        let image = Self::parse(reference)?;
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
        let response = self.client.push(&image, &[layer], config, &self.auth, Some(manifest)).await.map_err(|e| classify(reference, &image, e))?;
        let digest = response.manifest_url.rsplit('/').next().unwrap_or_default().to_string();
        Ok(if digest.starts_with("sha256:") { digest } else { self.resolve(reference).await? })
    }

    /// The digest a reference resolves to now.
    pub async fn resolve(&self, reference: &str) -> Result<String, RegistryError> {
        let image = Self::parse(reference)?;
        let (_, digest) = self.client.pull_image_manifest(&image, &self.auth).await.map_err(|e| classify(reference, &image, e))?;
        Ok(digest)
    }

    /// Pulls a component: the tag resolves to a manifest digest, the layer is
    /// taken from the cache when a file with its digest is there and still
    /// hashes to it, else downloaded and checked against the digest.
    pub async fn pull(&self, reference: &str) -> Result<Pulled, RegistryError> {
        let image = Self::parse(reference)?;
        let fail = |e| classify(reference, &image, e);
        let (manifest, manifest_digest) = self.client.pull_image_manifest(&image, &self.auth).await.map_err(fail)?;
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
        let path = self.cache_path(&layer.digest)?;
        if let Ok(bytes) = std::fs::read(&path) {
            if sha256_digest(&bytes) == layer.digest {
                tracing::debug!(digest = %layer.digest, "component taken from the OCI cache");
                return Ok(Pulled { bytes, manifest_digest, layer_digest: layer.digest.clone(), path });
            }
            tracing::warn!(path = %path.display(), "cached component does not match its digest; fetching it again");
        }
        let mut bytes = Vec::new();
        self.client.pull_blob(&image, layer, &mut bytes).await.map_err(fail)?;
        let actual = sha256_digest(&bytes);
        if actual != layer.digest {
            return Err(RegistryError::Tampered { reference: reference.into(), expected: layer.digest.clone(), actual });
        }
        std::fs::create_dir_all(path.parent().expect("cache paths have a parent"))?;
        let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
        std::fs::write(&tmp, &bytes)?;
        std::fs::rename(&tmp, &path)?;
        Ok(Pulled { bytes, manifest_digest, layer_digest: layer.digest.clone(), path })
    }

    fn cache_path(&self, digest: &str) -> Result<PathBuf, RegistryError> {
        let hex = digest.strip_prefix("sha256:").filter(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()));
        let hex = hex.ok_or_else(|| RegistryError::NotWasm { reference: digest.into(), detail: "its layer digest is not sha256".into() })?;
        Ok(self.cache_dir.join("sha256").join(format!("{hex}.wasm")))
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
