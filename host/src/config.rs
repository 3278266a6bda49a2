//! Host configuration: a TOML file, overridden by command-line flags.
//!
//! ```toml
//! cache_dir = "/var/cache/crust"   # compiled programs; default: $CRUST_CACHE_DIR or the user cache dir
//!
//! [limits]
//! wall_time_secs = 300.0          # an instance running longer is stopped
//! memory_mib = 1024               # linear memory per instance
//! max_instances = 1024            # instances alive at once
//! ```

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Where compiled programs are kept between runs.
    pub cache_dir: Option<PathBuf>,
    #[serde(default)]
    pub limits: LimitsConfig,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    pub wall_time_secs: f64,
    pub memory_mib: u64,
    pub max_instances: usize,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self { wall_time_secs: 300.0, memory_mib: 1024, max_instances: 1024 }
    }
}

impl LimitsConfig {
    pub fn wall_time(&self) -> Duration {
        Duration::from_secs_f64(self.wall_time_secs)
    }

    pub fn memory_bytes(&self) -> usize {
        (self.memory_mib as usize).saturating_mul(1 << 20)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("invalid config file {path}: {source}")]
    Parse { path: PathBuf, source: toml::de::Error },
    #[error("invalid config: {0}")]
    Invalid(String),
}

impl Config {
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| ConfigError::Read { path: path.into(), source })?;
        let config: Config =
            toml::from_str(&text).map_err(|source| ConfigError::Parse { path: path.into(), source })?;
        config.validate()?;
        Ok(config)
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        let l = &self.limits;
        if !(l.wall_time_secs.is_finite() && l.wall_time_secs > 0.0) {
            return Err(ConfigError::Invalid(format!(
                "limits.wall_time_secs must be a positive number of seconds, got {}",
                l.wall_time_secs
            )));
        }
        if l.memory_mib == 0 {
            return Err(ConfigError::Invalid("limits.memory_mib must be at least 1".into()));
        }
        if l.max_instances == 0 {
            return Err(ConfigError::Invalid("limits.max_instances must be at least 1".into()));
        }
        Ok(())
    }

    /// The compiled-program cache: the config's, else `$CRUST_CACHE_DIR`, else the user's cache dir.
    pub fn cache_dir(&self) -> PathBuf {
        self.cache_dir
            .clone()
            .or_else(|| std::env::var_os("CRUST_CACHE_DIR").map(PathBuf::from))
            .or_else(|| dirs::cache_dir().map(|d| d.join("crust")))
            .unwrap_or_else(|| std::env::temp_dir().join("crust-cache"))
    }
}
