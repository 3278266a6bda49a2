//! Who a connection is: Pie's `authenticate` with a token the config trusts,
//! or Crust's ed25519 challenge–response against an authorized-keys file.

use crust_client::keys;
use ed25519_dalek::VerifyingKey;

use crate::config::ServerConfig;

/// The user every connection is when authentication is off.
pub const ANONYMOUS: &str = "anonymous";

pub struct Auth {
    required: bool,
    /// (user, token)
    tokens: Vec<(String, String)>,
    keys: Vec<(String, VerifyingKey)>,
    /// Who may read `/metrics`: anyone, or a bearer of this token.
    metrics: MetricsAccess,
}

enum MetricsAccess {
    Public,
    Token(String),
    Closed,
}

impl Auth {
    /// Reads the authorized keys. With authentication on, at least one way in must be configured.
    pub fn from_config(config: &ServerConfig, required: bool) -> Result<Self, String> {
        let keys = match &config.authorized_keys {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| format!("server.authorized_keys: cannot read {}: {e}", path.display()))?;
                keys::parse_authorized(&text).map_err(|e| format!("server.authorized_keys: {}: {e}", path.display()))?
            }
            None => Vec::new(),
        };
        let tokens: Vec<(String, String)> = config.tokens.iter().map(|(u, t)| (u.clone(), t.clone())).collect();
        if required && tokens.is_empty() && keys.is_empty() {
            return Err("authentication is on, but neither server.tokens nor server.authorized_keys lets anyone in: \
                 pass --token NAME=SECRET, add one to the config (docs/server.md), or pass --no-auth on a loopback address"
                .into());
        }
        let metrics = match &config.metrics_token {
            _ if config.metrics_public || !required => MetricsAccess::Public,
            Some(token) => MetricsAccess::Token(token.clone()),
            None => MetricsAccess::Closed,
        };
        Ok(Self { required, tokens, keys, metrics })
    }

    pub fn required(&self) -> bool {
        self.required
    }

    /// The user a token logs in as.
    pub fn user_of_token(&self, token: &str) -> Option<String> {
        // Compare every token in full: the time taken says nothing about which matched.
        let mut found = None;
        for (user, known) in &self.tokens {
            if constant_time_eq(known.as_bytes(), token.as_bytes()) {
                found = Some(user.clone());
            }
        }
        found
    }

    /// Whether a request with this `Authorization` header may read `/metrics`,
    /// or why not.
    pub fn may_read_metrics(&self, authorization: Option<&str>) -> Result<(), &'static str> {
        match &self.metrics {
            MetricsAccess::Public => Ok(()),
            MetricsAccess::Token(token) => match authorization.and_then(|a| a.strip_prefix("Bearer ")) {
                Some(given) if constant_time_eq(token.as_bytes(), given.as_bytes()) => Ok(()),
                _ => Err("GET /metrics needs `Authorization: Bearer <server.metrics_token>`"),
            },
            MetricsAccess::Closed => Err("GET /metrics is closed: set server.metrics_token (or server.metrics_public = true)"),
        }
    }

    /// Whether `signature` signs the challenge `nonce` with one of `user`'s keys.
    pub fn verify(&self, user: &str, nonce: &[u8], signature: &[u8]) -> bool {
        self.keys.iter().any(|(u, key)| u == user && keys::verify_challenge(key, nonce, signature))
    }
}

/// 244 random bits (two v4 UUIDs, from the OS random source).
pub fn new_nonce() -> [u8; 32] {
    let mut nonce = [0u8; 32];
    nonce[..16].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
    nonce[16..].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
    nonce
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
