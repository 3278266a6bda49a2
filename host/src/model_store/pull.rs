//! `crust models pull`: a GGUF from a Hugging Face hub repository (or any
//! HTTPS URL) into the models dir — resumed from a partial download, checked
//! against the hub's sha256, then registered under a name.

use std::fmt;
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use sha2::{Digest, Sha256};

use super::{ModelStore, StoreError, StoredModel, valid_name};

/// Where a model comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// `hf:ORG/REPO[:FILE]`: a file of a hub repository; without FILE, the
    /// repository's one GGUF file, or its Q4_K_M one where it has several.
    Hub { repo: String, file: Option<String> },
    /// An `https://` (or `http://`) URL of a GGUF file.
    Url(String),
}

impl FromStr for Source {
    type Err = PullError;

    fn from_str(s: &str) -> Result<Self, PullError> {
        let bad = |why: &str| PullError::BadSource(format!("`{s}`: {why}; give hf:ORG/REPO[:FILE] or an https:// URL of a .gguf file"));
        if let Some(rest) = s.strip_prefix("hf:") {
            let (repo, file) = match rest.split_once(':') {
                Some((repo, file)) => (repo, Some(file)),
                None => (rest, None),
            };
            let parts: Vec<&str> = repo.split('/').collect();
            let part_ok = |p: &str| !p.is_empty() && !p.starts_with('.') && p.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
            if parts.len() != 2 || !parts.iter().all(|p| part_ok(p)) {
                return Err(bad("the repository must be ORG/REPO"));
            }
            if let Some(file) = file
                && (file.is_empty() || file.split('/').any(|p| p.is_empty() || p == "." || p == ".."))
            {
                return Err(bad("FILE must be a path in the repository"));
            }
            return Ok(Source::Hub { repo: repo.into(), file: file.map(Into::into) });
        }
        if (s.starts_with("https://") || s.starts_with("http://")) && s.len() > "https://".len() {
            return Ok(Source::Url(s.into()));
        }
        Err(bad("unknown kind of source"))
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Hub { repo, file: Some(file) } => write!(f, "hf:{repo}:{file}"),
            Source::Hub { repo, file: None } => write!(f, "hf:{repo}"),
            Source::Url(url) => f.write_str(url),
        }
    }
}

/// How to pull.
pub struct PullOptions {
    /// The hub's address: `$HF_ENDPOINT`, else `https://huggingface.co`.
    pub endpoint: String,
    /// A hub token for gated or private repositories (`$HF_TOKEN`).
    pub token: Option<String>,
    /// The model's name (default: the file's name without `.gguf`).
    pub name: Option<String>,
    /// The sha256 the file must have, where the source does not say (plain URLs).
    pub sha256: Option<String>,
}

impl PullOptions {
    /// The hub and token from the environment, as the hub's own tools read them.
    pub fn from_env() -> Self {
        let endpoint = std::env::var("HF_ENDPOINT").ok().filter(|e| !e.is_empty()).unwrap_or_else(|| "https://huggingface.co".into());
        let token = std::env::var("HF_TOKEN").ok().filter(|t| !t.is_empty());
        Self { endpoint: endpoint.trim_end_matches('/').into(), token, name: None, sha256: None }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PullError {
    #[error("bad model source {0}")]
    BadSource(String),
    #[error("{url}: {detail}")]
    Http { url: String, detail: String },
    #[error("{url}: the server answered {status}{hint}")]
    Status { url: String, status: u16, hint: &'static str },
    #[error("hf:{repo} has no .gguf file; its files: {files}")]
    NoGguf { repo: String, files: String },
    #[error("hf:{repo} has several .gguf files; name one as hf:{repo}:FILE: {files}")]
    Ambiguous { repo: String, files: String },
    #[error("the download stopped after {done} of {total} bytes ({detail}); run the same command again to resume")]
    Interrupted { done: u64, total: String, detail: String },
    #[error("{url} gave {actual} bytes where the hub says {expected}; the partial file was removed")]
    WrongSize { url: String, expected: u64, actual: u64 },
    #[error("{url} has sha256 {actual}, expected {expected}; the download was removed")]
    WrongDigest { url: String, expected: String, actual: String },
    #[error("`{0}` is not a sha256 (64 hex digits)")]
    BadDigest(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{}: {detail}", path.display())]
    Io { path: PathBuf, detail: String },
}

/// Told how far the download is: bytes so far (a resumed part included) and in all, when known.
pub type PullProgress<'a> = &'a (dyn Fn(u64, Option<u64>) + Send + Sync);

/// Downloads `source` into `store`'s dir and registers it. A `.part` file
/// left by an interrupted pull is resumed with a range request; the whole
/// file is checked against the expected sha256 before it takes its name.
pub async fn pull(store: &ModelStore, source: &Source, options: &PullOptions, progress: PullProgress<'_>) -> Result<StoredModel, PullError> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = Client::new(options)?;
    let (url, file_name, source) = match source {
        Source::Hub { repo, file } => {
            let file = match file {
                Some(file) => file.clone(),
                None => client.pick_gguf(&options.endpoint, repo).await?,
            };
            let url = format!("{}/{repo}/resolve/main/{file}", options.endpoint);
            (url, file.rsplit('/').next().unwrap_or(&file).to_string(), Source::Hub { repo: repo.clone(), file: Some(file) })
        }
        Source::Url(url) => {
            let path = url.split(['?', '#']).next().unwrap_or(url);
            (url.clone(), path.rsplit('/').next().unwrap_or_default().to_string(), source.clone())
        }
    };
    let name = options.name.clone().unwrap_or_else(|| file_name.strip_suffix(".gguf").unwrap_or(&file_name).to_string());
    if !valid_name(&name) || !valid_name(&file_name) {
        return Err(StoreError::BadName(if valid_name(&name) { file_name } else { name }).into());
    }
    let expected = client.expected(&url, options).await?;

    let dir = store.dir();
    std::fs::create_dir_all(dir).map_err(|e| io_error(dir, e))?;
    let path = dir.join(&file_name);
    let part = dir.join(format!("{file_name}.part"));
    let sha256 = if path.exists() {
        // Already here (pulled under another name, or copied in): check it, then register.
        let digest = hash_file(&path)?;
        check_digest(&url, &expected, &digest, &path)?;
        digest
    } else {
        let digest = client.download(&url, &part, &expected, progress).await?;
        check_digest(&url, &expected, &digest, &part)?;
        std::fs::rename(&part, &path).map_err(|e| io_error(&path, e))?;
        digest
    };
    let model = StoredModel { name, file: file_name, source: source.to_string(), sha256 };
    store.register(model.clone())?;
    Ok(model)
}

/// What the file must be, as far as the source says.
struct Expected {
    size: Option<u64>,
    sha256: Option<String>,
}

fn check_digest(url: &str, expected: &Expected, actual: &str, path: &Path) -> Result<(), PullError> {
    match &expected.sha256 {
        Some(sha) if sha != actual => {
            let _ = std::fs::remove_file(path);
            Err(PullError::WrongDigest { url: url.into(), expected: sha.clone(), actual: actual.into() })
        }
        _ => Ok(()),
    }
}

fn io_error(path: &Path, e: std::io::Error) -> PullError {
    PullError::Io { path: path.into(), detail: e.to_string() }
}

fn hash_file(path: &Path) -> Result<String, PullError> {
    let mut hasher = Sha256::new();
    let mut file = std::fs::File::open(path).map_err(|e| io_error(path, e))?;
    std::io::copy(&mut file, &mut hasher).map_err(|e| io_error(path, e))?;
    Ok(format!("{:x}", hasher.finalize()))
}

/// A sha256 as hex, from a header or the user: `"…"` and `W/` stripped, lowercased.
fn sha256_of(text: &str) -> Option<String> {
    let text = text.trim().trim_start_matches("W/").trim_matches('"').to_ascii_lowercase();
    (text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit())).then_some(text)
}

struct Client {
    http: reqwest::Client,
    /// The same, but it reports redirects instead of following them: the
    /// hub's sha256 is on its redirect to the storage that serves the bytes.
    no_redirects: reqwest::Client,
    token: Option<String>,
}

impl Client {
    fn new(options: &PullOptions) -> Result<Self, PullError> {
        let build = |redirects: reqwest::redirect::Policy| {
            reqwest::Client::builder()
                .connect_timeout(Duration::from_secs(30))
                .read_timeout(Duration::from_secs(60))
                .redirect(redirects)
                .user_agent(concat!("crust/", env!("CARGO_PKG_VERSION")))
                .build()
                .map_err(|e| PullError::Http { url: options.endpoint.clone(), detail: e.to_string() })
        };
        Ok(Self {
            http: build(reqwest::redirect::Policy::limited(10))?,
            no_redirects: build(reqwest::redirect::Policy::none())?,
            token: options.token.clone(),
        })
    }

    fn get(&self, client: &reqwest::Client, method: reqwest::Method, url: &str) -> reqwest::RequestBuilder {
        let request = client.request(method, url);
        match &self.token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    }

    async fn send(&self, request: reqwest::RequestBuilder, url: &str) -> Result<reqwest::Response, PullError> {
        let response = request.send().await.map_err(|e| PullError::Http { url: url.into(), detail: error_chain(&e) })?;
        let status = response.status().as_u16();
        let hint = match status {
            401 | 403 => " (a private or gated repository needs a token with access: set HF_TOKEN)",
            404 => " (no such repository or file)",
            _ => "",
        };
        if status >= 400 && status != 416 {
            return Err(PullError::Status { url: url.into(), status, hint });
        }
        Ok(response)
    }

    /// The repository's GGUF file: its only one, else its Q4_K_M one.
    async fn pick_gguf(&self, endpoint: &str, repo: &str) -> Result<String, PullError> {
        #[derive(serde::Deserialize)]
        struct Sibling {
            rfilename: String,
        }
        #[derive(serde::Deserialize)]
        struct Info {
            #[serde(default)]
            siblings: Vec<Sibling>,
        }
        let url = format!("{endpoint}/api/models/{repo}");
        let response = self.send(self.get(&self.http, reqwest::Method::GET, &url), &url).await?;
        let info: Info = response.json().await.map_err(|e| PullError::Http { url: url.clone(), detail: format!("not the hub's model info: {e}") })?;
        let files: Vec<String> = info.siblings.into_iter().map(|s| s.rfilename).collect();
        let ggufs: Vec<&String> = files.iter().filter(|f| f.to_ascii_lowercase().ends_with(".gguf")).collect();
        let q4_k_m: Vec<&String> = ggufs.iter().copied().filter(|f| f.to_ascii_lowercase().contains("q4_k_m")).collect();
        match (ggufs.as_slice(), q4_k_m.as_slice()) {
            ([only], _) | (_, [only]) => Ok(only.to_string()),
            ([], _) => Err(PullError::NoGguf { repo: repo.into(), files: files.join(", ") }),
            _ => Err(PullError::Ambiguous { repo: repo.into(), files: ggufs.iter().map(|f| f.as_str()).collect::<Vec<_>>().join(", ") }),
        }
    }

    /// The size and sha256 the source promises: the hub sends them with its
    /// redirect (`X-Linked-Size`, `X-Linked-Etag`); a plain URL has the
    /// user's `--sha256`, if any.
    async fn expected(&self, url: &str, options: &PullOptions) -> Result<Expected, PullError> {
        let given = match &options.sha256 {
            Some(sha) => Some(sha256_of(sha).ok_or_else(|| PullError::BadDigest(sha.clone()))?),
            None => None,
        };
        let response = self.send(self.get(&self.no_redirects, reqwest::Method::HEAD, url), url).await?;
        let header = |name: &str| response.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_string);
        let size = header("x-linked-size").and_then(|s| s.parse().ok());
        Ok(Expected { size, sha256: given.or_else(|| header("x-linked-etag").and_then(|e| sha256_of(&e))) })
    }

    /// Fetches `url` into `part`, after what is there already; returns the whole file's sha256.
    async fn download(&self, url: &str, part: &Path, expected: &Expected, progress: PullProgress<'_>) -> Result<String, PullError> {
        let mut file = std::fs::OpenOptions::new().create(true).truncate(false).read(true).write(true).open(part).map_err(|e| io_error(part, e))?;
        let mut hasher = Sha256::new();
        let mut done = 0u64;
        let mut buffer = vec![0u8; 1 << 20];
        loop {
            let n = file.read(&mut buffer).map_err(|e| io_error(part, e))?;
            if n == 0 {
                break;
            }
            hasher.update(&buffer[..n]);
            done += n as u64;
        }
        let mut request = self.get(&self.http, reqwest::Method::GET, url);
        if done > 0 {
            request = request.header(reqwest::header::RANGE, format!("bytes={done}-"));
        }
        let mut response = self.send(request, url).await?;
        match response.status().as_u16() {
            206 => {}
            // The part already holds the whole file.
            416 if expected.size == Some(done) => return Ok(format!("{:x}", hasher.finalize())),
            // The server sends the whole file: start over.
            _ => {
                file.set_len(0).and_then(|_| file.rewind()).map_err(|e| io_error(part, e))?;
                hasher = Sha256::new();
                done = 0;
                if response.status().as_u16() == 416 {
                    response = self.send(self.get(&self.http, reqwest::Method::GET, url), url).await?;
                }
            }
        }
        let total = expected.size.or_else(|| response.content_length().map(|rest| rest + done));
        progress(done, total);
        loop {
            let chunk = match response.chunk().await {
                Ok(Some(chunk)) => chunk,
                Ok(None) => break,
                Err(e) => {
                    let total = total.map_or("an unknown number of".into(), |t| t.to_string());
                    return Err(PullError::Interrupted { done, total, detail: error_chain(&e) });
                }
            };
            file.write_all(&chunk).map_err(|e| io_error(part, e))?;
            hasher.update(&chunk);
            done += chunk.len() as u64;
            progress(done, total);
        }
        file.sync_all().map_err(|e| io_error(part, e))?;
        match total {
            Some(total) if done < total => {
                Err(PullError::Interrupted { done, total: total.to_string(), detail: "the server closed the connection early".into() })
            }
            Some(total) if done > total => {
                let _ = std::fs::remove_file(part);
                Err(PullError::WrongSize { url: url.into(), expected: total, actual: done })
            }
            _ => Ok(format!("{:x}", hasher.finalize())),
        }
    }
}

/// An error and its causes, on one line (reqwest's own message omits them).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_parse_and_print_back() {
        for text in ["hf:org/repo", "hf:org/repo:model.Q4_K_M.gguf", "hf:Org-1/re_po.v2:sub/dir/x.gguf", "https://example.com/x.gguf"] {
            assert_eq!(text.parse::<Source>().unwrap().to_string(), text);
        }
        for bad in ["org/repo", "hf:repo", "hf:org/repo/extra", "hf:org/repo:", "hf:org/repo:../x.gguf", "hf:../x", "ftp://x/y.gguf", "https://"] {
            let error = bad.parse::<Source>().unwrap_err().to_string();
            assert!(error.contains("hf:ORG/REPO[:FILE]"), "{bad}: {error}");
        }
    }

    #[test]
    fn digests_come_from_etags_or_users() {
        let sha = "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818";
        assert_eq!(sha256_of(&format!("\"{sha}\"")).as_deref(), Some(sha));
        assert_eq!(sha256_of(&format!("W/\"{}\"", sha.to_uppercase())).as_deref(), Some(sha));
        assert_eq!(sha256_of("\"0123abcd\""), None, "a git blob id is not a sha256");
    }
}
