//! Configuration: built-in defaults < config file < `WARREN_<SECTION>__<KEY>` variables.
//!
//! The built-in defaults are `conf/warren.toml` as shipped (embedded with `include_str!`), and
//! they equal [`Config::default`]. The config file is the one given with `--config`, or
//! `conf/warren.toml` relative to the working directory (which may be missing). Environment
//! variables come last: `WARREN_AMQP__FRAME_MAX=8192` sets `amqp.frame_max` (a double
//! underscore separates section and key, since keys contain single underscores).
//!
//! Start-up is strict: a key that Warren does not know, a value of the wrong type or out of
//! range, in the file or in a `WARREN_` variable, is an error that names the key and where it
//! was set.

use config::{Environment, File, FileFormat, Map, Source, Value, ValueKind};
use serde::Deserialize;
use std::collections::HashSet;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// The config file read when `--config` is not given, relative to the working directory.
pub const DEFAULT_CONFIG_PATH: &str = "conf/warren.toml";

/// The built-in defaults: `conf/warren.toml` as shipped. Equal to [`Config::default`].
pub const DEFAULTS_TOML: &str = include_str!("../conf/warren.toml");

/// Prefix of the environment variables that override the config file.
pub const ENV_PREFIX: &str = "WARREN_";

/// Separator between section and key in an environment variable name.
pub const ENV_SEPARATOR: &str = "__";

/// The largest `amqp.max_message_size` allowed (RabbitMQ's ceiling too).
pub const MAX_MESSAGE_SIZE_LIMIT: u64 = 512 << 20;

/// The smallest `amqp.frame_max` allowed (AMQP 0-9-1's `frame-min-size`, as in RabbitMQ).
pub const MIN_FRAME_MAX: u32 = 4096;

/// The largest `amqp.handshake_timeout`, in milliseconds (a day): any longer is no
/// protection at all, and it keeps the deadline arithmetic far from overflow.
pub const MAX_HANDSHAKE_TIMEOUT_MS: u64 = 24 * 60 * 60 * 1000;

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub amqp: AmqpConfig,
    pub storage: StorageConfig,
    pub auth: AuthConfig,
    pub log: LogConfig,
    pub memory: MemoryConfig,
    pub definitions: DefinitionsConfig,
    pub tls: TlsConfig,
    pub mgmt: MgmtConfig,
    pub prometheus: PrometheusConfig,
    pub stream: StreamConfig,
}

/// The stream protocol listener (RabbitMQ's rabbitmq_stream plugin).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamConfig {
    /// Address of the listener; empty: none.
    pub listen: String,
    /// What metadata and open advertise; empty: the listen address's host (the host
    /// name when that is unspecified).
    pub advertised_host: String,
    /// What metadata and open advertise; 0: the bound port.
    pub advertised_port: u16,
    /// Address of the TLS listener (RabbitMQ's port is 5551); empty: none. It uses the
    /// `tls.*` certificate, key and CA settings.
    pub tls_listen: String,
    /// What metadata and open advertise on a TLS connection; 0: the bound TLS port.
    pub advertised_tls_port: u16,
    /// Frames accepted once open succeeded, and proposed in tune; 0: no limit.
    pub frame_max: u32,
    /// Heartbeat proposed in tune, in seconds; 0: none.
    pub heartbeat: u32,
}

impl StreamConfig {
    pub fn listen_addr(&self) -> Result<Option<SocketAddr>, String> {
        optional_addr(&self.listen, "0.0.0.0:5552")
    }

    pub fn tls_listen_addr(&self) -> Result<Option<SocketAddr>, String> {
        optional_addr(&self.tls_listen, "0.0.0.0:5551")
    }
}

/// The Prometheus metrics endpoint (RabbitMQ's rabbitmq_prometheus plugin).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrometheusConfig {
    /// Address of the HTTP listener serving `/metrics`; empty: none.
    pub listen: String,
}

impl PrometheusConfig {
    pub fn listen_addr(&self) -> Result<Option<SocketAddr>, String> {
        optional_addr(&self.listen, "127.0.0.1:15692")
    }
}

/// The management HTTP API (RabbitMQ's management plugin). Empty strings mean "off" or
/// "not set".
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MgmtConfig {
    /// Address of the plain HTTP listener; empty: none.
    pub listen: String,
    /// Address of the HTTPS listener; empty: none.
    pub tls_listen: String,
    /// PEM certificate chain for HTTPS; empty: `tls.cert_file`.
    pub tls_cert_file: PathBuf,
    /// PEM private key for HTTPS; empty: `tls.key_file`.
    pub tls_key_file: PathBuf,
    /// Milliseconds between statistics samples, from which rates are computed
    /// (RabbitMQ's `collect_statistics_interval`).
    pub stats_interval: u64,
}

/// Parses an optional listener address ("" = off).
fn optional_addr(s: &str, example: &str) -> Result<Option<SocketAddr>, String> {
    let s = s.trim();
    if s.is_empty() {
        return Ok(None);
    }
    s.parse()
        .map(Some)
        .map_err(|_| format!("{s:?} is not an address such as \"{example}\" (empty: off)"))
}

impl MgmtConfig {
    pub fn listen_addr(&self) -> Result<Option<SocketAddr>, String> {
        optional_addr(&self.listen, "127.0.0.1:15672")
    }

    pub fn tls_listen_addr(&self) -> Result<Option<SocketAddr>, String> {
        optional_addr(&self.tls_listen, "0.0.0.0:15671")
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DefinitionsConfig {
    /// A definitions file in RabbitMQ's JSON export format, imported at every start
    /// (RabbitMQ's `load_definitions`); empty: none.
    pub import_file: String,
}

/// The `amqps` listener (RabbitMQ's `listeners.ssl` and `ssl_options`). Empty strings mean
/// "not set".
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// Address of the TLS listener ("0.0.0.0:5671"); empty: no TLS listener.
    pub listen: String,
    /// PEM certificate chain presented to clients, server certificate first.
    pub cert_file: PathBuf,
    /// PEM private key of that certificate (PKCS#8, PKCS#1 or SEC1).
    pub key_file: PathBuf,
    /// PEM CA certificates that client certificates are verified against.
    pub ca_file: PathBuf,
    /// Ask clients for a certificate and verify one presented against `ca_file`.
    pub verify_peer: bool,
    /// With `verify_peer`, refuse clients that present no certificate.
    pub fail_if_no_peer_cert: bool,
}

impl TlsConfig {
    /// The TLS listener's address, `None` when it is off.
    pub fn listen_addr(&self) -> Result<Option<SocketAddr>, String> {
        let s = self.listen.trim();
        if s.is_empty() {
            return Ok(None);
        }
        s.parse().map(Some).map_err(|_| {
            format!("{s:?} is not an address such as \"0.0.0.0:5671\" (empty: no TLS listener)")
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemoryConfig {
    /// Resident memory above which publishers are blocked: a fraction of the machine's
    /// RAM ("0.4") or an absolute size ("512MiB").
    pub high_watermark: String,
    /// Per queue, bytes of ready messages kept in memory (each its body plus
    /// `broker::message::HELD_OVERHEAD`); past it, new messages live only on disk until
    /// the queue drains ("16MiB").
    pub paging_threshold: String,
}

/// Parses a size such as "512MiB", "2GiB", "64KiB", "100B" or "1TiB".
pub fn parse_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    for (unit, mult) in [
        ("TiB", 1u64 << 40),
        ("GiB", 1 << 30),
        ("MiB", 1 << 20),
        ("KiB", 1 << 10),
        ("B", 1),
    ] {
        if let Some(n) = s.strip_suffix(unit) {
            return n
                .trim()
                .parse::<u64>()
                .map(|n| n.saturating_mul(mult))
                .map_err(|_| format!("{s:?} is not a size such as \"512MiB\""));
        }
    }
    Err(format!("{s:?} is not a size such as \"512MiB\""))
}

impl StorageConfig {
    pub fn disk_free_limit_bytes(&self) -> Result<u64, String> {
        parse_size(&self.disk_free_limit)
    }
}

impl MemoryConfig {
    pub fn paging_threshold_bytes(&self) -> Result<u64, String> {
        parse_size(&self.paging_threshold)
    }

    /// The watermark in bytes, given the machine's total RAM.
    pub fn high_watermark_bytes(&self, total_ram: u64) -> Result<u64, String> {
        let s = self.high_watermark.trim();
        if s.ends_with('B') {
            return parse_size(s);
        }
        match s.parse::<f64>() {
            Ok(f) if f > 0.0 && f <= 1.0 => Ok((total_ram as f64 * f) as u64),
            _ => Err(format!(
                "{s:?} is neither a fraction of RAM in (0, 1] such as \"0.4\" nor a size such as \"512MiB\""
            )),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AmqpConfig {
    pub listen: SocketAddr,
    pub frame_max: u32,
    pub channel_max: u16,
    pub heartbeat: u16,
    /// Largest message body accepted, in bytes (RabbitMQ's `max_message_size`).
    pub max_message_size: u64,
    /// Most client connections open at once, handshakes included (RabbitMQ's
    /// `connection_max`); 0 means no limit, since the strict loader wants an integer
    /// where RabbitMQ writes `infinity`. Past it, new sockets are closed at accept.
    pub max_connections: u32,
    /// Milliseconds a client has, from accept, to send the protocol header and complete
    /// the handshake up to connection.open (RabbitMQ's `handshake_timeout`, same unit).
    pub handshake_timeout: u64,
    /// Milliseconds a delivery may stay unacknowledged before its channel is closed with
    /// 406 (RabbitMQ's `consumer_timeout`, same unit); 0 turns it off.
    pub consumer_timeout: u64,
    /// Milliseconds between retries of messages a quorum queue keeps for at-least-once
    /// dead-lettering because a target queue refused them (a declared exchange, queue or
    /// binding, or a policy change, retries at once). RabbitMQ's worker retries on its
    /// `dead_letter_worker_publisher_confirm_timeout` (180 s).
    pub dead_letter_retry_interval: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageConfig {
    pub dir: PathBuf,
    /// fsync the message store before confirming persistent messages.
    pub sync: bool,
    /// Free space on the storage filesystem below which publishers are blocked.
    pub disk_free_limit: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    pub default_user: String,
    pub default_pass: String,
    pub default_vhost: String,
    /// Users that may connect only from a loopback address (RabbitMQ's `loopback_users`).
    /// A list in the file; a comma-separated string in `WARREN_AUTH__LOOPBACK_USERS`.
    #[serde(deserialize_with = "string_or_list")]
    pub loopback_users: Vec<String>,
}

/// A list of strings, given as a TOML array or as one comma-separated string.
fn string_or_list<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Either {
        One(String),
        Many(Vec<String>),
    }
    Ok(match Either::deserialize(d)? {
        Either::One(s) => s
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect(),
        Either::Many(v) => v,
    })
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    pub level: String,
    /// How each line is written: for people, or as JSON for log shippers.
    pub format: LogFormat,
}

/// `log.format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub enum LogFormat {
    /// `2026-12-06T19:55:38.123Z  INFO connection{id=1 peer=...}: connection open user=guest`
    Text,
    /// One JSON object a line: `timestamp`, `level`, `target`, `message`, the event's fields
    /// and those of its span (the connection's `id` and `peer`) at the top level.
    Json,
}

impl TryFrom<String> for LogFormat {
    type Error = String;

    fn try_from(s: String) -> Result<Self, String> {
        match s.as_str() {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            _ => Err(format!(
                "{s:?} is not a log format: use \"text\" or \"json\""
            )),
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            amqp: AmqpConfig {
                listen: "127.0.0.1:5672".parse().unwrap(),
                frame_max: 131072,
                channel_max: 2047,
                heartbeat: 60,
                max_message_size: 128 << 20,
                max_connections: 0,
                handshake_timeout: 10_000,
                consumer_timeout: 1_800_000,
                dead_letter_retry_interval: 10_000,
            },
            storage: StorageConfig {
                dir: PathBuf::from("data"),
                sync: true,
                disk_free_limit: "50MiB".into(),
            },
            auth: AuthConfig {
                default_user: "guest".into(),
                default_pass: "guest".into(),
                default_vhost: "/".into(),
                loopback_users: vec!["guest".into()],
            },
            log: LogConfig {
                level: "info".into(),
                format: LogFormat::Text,
            },
            memory: MemoryConfig {
                high_watermark: "0.4".into(),
                paging_threshold: "16MiB".into(),
            },
            definitions: DefinitionsConfig {
                import_file: String::new(),
            },
            tls: TlsConfig {
                listen: String::new(),
                cert_file: PathBuf::new(),
                key_file: PathBuf::new(),
                ca_file: PathBuf::new(),
                verify_peer: false,
                fail_if_no_peer_cert: false,
            },
            mgmt: MgmtConfig {
                listen: "127.0.0.1:15672".into(),
                tls_listen: String::new(),
                tls_cert_file: PathBuf::new(),
                tls_key_file: PathBuf::new(),
                stats_interval: 5000,
            },
            prometheus: PrometheusConfig {
                listen: "127.0.0.1:15692".into(),
            },
            stream: StreamConfig {
                listen: String::new(),
                advertised_host: String::new(),
                advertised_port: 0,
                tls_listen: String::new(),
                advertised_tls_port: 0,
                frame_max: 1_048_576,
                heartbeat: 60,
            },
        }
    }
}

/// Where a setting came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// The built-in defaults (the embedded `conf/warren.toml`).
    Defaults,
    /// A config file.
    File(PathBuf),
    /// An environment variable, by name.
    Env(String),
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Defaults => write!(f, "the built-in defaults"),
            Origin::File(path) => write!(f, "config file {}", path.display()),
            Origin::Env(var) => write!(f, "environment variable {var}"),
        }
    }
}

/// Why the configuration could not be loaded. Each message names the file, key or variable.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The config file given explicitly (`--config`) does not exist.
    #[error("config file {} not found", path.display())]
    FileNotFound { path: PathBuf },

    /// The config file exists but could not be read.
    #[error("cannot read config file {}: {source}", path.display())]
    FileRead {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// The config file is not valid TOML, or an environment variable is not valid UTF-8.
    #[error("cannot parse {origin}: {message}")]
    Parse { origin: Origin, message: String },

    /// A key (`section.key`) that Warren does not know.
    #[error("unknown key `{key}` in {origin} (known keys: {})", known.join(", "))]
    UnknownKey {
        key: String,
        origin: Origin,
        /// The keys Warren knows, as `section.key`, sorted.
        known: Vec<String>,
    },

    /// A value of the wrong type, out of range, or failing validation.
    #[error("invalid value for `{key}`: {message}{}", in_origin(origin))]
    InvalidValue {
        key: String,
        message: String,
        /// Where the value was set; `None` when validating a `Config` built in code.
        origin: Option<Origin>,
    },

    /// Any other error from the `config` crate.
    #[error("invalid configuration: {0}")]
    Other(String),
}

impl ConfigError {
    /// The key (`section.key`) this error is about, if any.
    pub fn key(&self) -> Option<&str> {
        match self {
            ConfigError::UnknownKey { key, .. } | ConfigError::InvalidValue { key, .. } => {
                Some(key)
            }
            _ => None,
        }
    }
}

fn in_origin(origin: &Option<Origin>) -> String {
    match origin {
        Some(origin) => format!(" (set in {origin})"),
        None => String::new(),
    }
}

impl Config {
    /// Loads the configuration: built-in defaults < the config file < `WARREN_*` variables of
    /// the process environment.
    ///
    /// `path` is the `--config` file, which must exist; with `None`, `conf/warren.toml` in the
    /// working directory is read if it exists.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        Self::loader(path).load()
    }

    /// Like [`Config::load`], but reads the environment variables from `env` instead of the
    /// process environment (for tests). Only variables starting with `WARREN_` are used.
    pub fn load_with_env<I, K, V>(path: Option<&Path>, env: I) -> Result<Config, ConfigError>
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        Self::loader(path).env(env).load()
    }

    fn loader(path: Option<&Path>) -> Loader {
        match path {
            Some(path) => Loader::new().file(path),
            None => Loader::new().optional_file(DEFAULT_CONFIG_PATH),
        }
    }

    /// Checks the values that their types alone do not constrain. [`Config::load`] calls this;
    /// call it for a `Config` built in code.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.validate_with(|_| None)
    }

    fn validate_with(&self, origin: impl Fn(&str) -> Option<Origin>) -> Result<(), ConfigError> {
        let invalid = |key: &str, message: String| ConfigError::InvalidValue {
            key: key.to_string(),
            message,
            origin: origin(key),
        };
        if self.amqp.frame_max < MIN_FRAME_MAX {
            return Err(invalid(
                "amqp.frame_max",
                format!(
                    "{} is below the minimum frame size of {MIN_FRAME_MAX} bytes",
                    self.amqp.frame_max
                ),
            ));
        }
        if self.amqp.channel_max < 1 {
            return Err(invalid(
                "amqp.channel_max",
                "must be at least 1".to_string(),
            ));
        }
        if !(1..=MAX_MESSAGE_SIZE_LIMIT).contains(&self.amqp.max_message_size) {
            return Err(invalid(
                "amqp.max_message_size",
                format!(
                    "{} is outside 1..={MAX_MESSAGE_SIZE_LIMIT} (512 MiB, RabbitMQ's limit)",
                    self.amqp.max_message_size
                ),
            ));
        }
        if !(1..=MAX_HANDSHAKE_TIMEOUT_MS).contains(&self.amqp.handshake_timeout) {
            return Err(invalid(
                "amqp.handshake_timeout",
                format!(
                    "{} is outside 1..={MAX_HANDSHAKE_TIMEOUT_MS} milliseconds",
                    self.amqp.handshake_timeout
                ),
            ));
        }
        if self.storage.dir.as_os_str().is_empty() {
            return Err(invalid("storage.dir", "must not be empty".to_string()));
        }
        if self.auth.default_vhost.is_empty() {
            return Err(invalid(
                "auth.default_vhost",
                "must not be empty".to_string(),
            ));
        }
        if let Err(e) = self.memory.high_watermark_bytes(1 << 30) {
            return Err(invalid("memory.high_watermark", e));
        }
        match self.memory.paging_threshold_bytes() {
            Err(e) => return Err(invalid("memory.paging_threshold", e)),
            Ok(n) if n < 64 << 10 => {
                return Err(invalid(
                    "memory.paging_threshold",
                    format!("{n} bytes is below the minimum of 64KiB"),
                ));
            }
            Ok(_) => {}
        }
        if let Err(e) = self.storage.disk_free_limit_bytes() {
            return Err(invalid("storage.disk_free_limit", e));
        }
        match self.tls.listen_addr() {
            Err(e) => return Err(invalid("tls.listen", e)),
            Ok(Some(_)) => {
                for (key, path) in [
                    ("tls.cert_file", &self.tls.cert_file),
                    ("tls.key_file", &self.tls.key_file),
                ] {
                    if path.as_os_str().is_empty() {
                        return Err(invalid(
                            key,
                            "must be set when tls.listen is (the TLS listener needs a certificate and its key)".to_string(),
                        ));
                    }
                }
            }
            Ok(None) => {}
        }
        if self.tls.verify_peer && self.tls.ca_file.as_os_str().is_empty() {
            return Err(invalid(
                "tls.ca_file",
                "must be set when tls.verify_peer is true (client certificates are verified against it)".to_string(),
            ));
        }
        if let Err(e) = self.mgmt.listen_addr() {
            return Err(invalid("mgmt.listen", e));
        }
        if let Err(e) = self.prometheus.listen_addr() {
            return Err(invalid("prometheus.listen", e));
        }
        if let Err(e) = self.stream.listen_addr() {
            return Err(invalid("stream.listen", e));
        }
        match self.stream.tls_listen_addr() {
            Err(e) => return Err(invalid("stream.tls_listen", e)),
            Ok(Some(_)) => {
                for (key, path) in [
                    ("tls.cert_file", &self.tls.cert_file),
                    ("tls.key_file", &self.tls.key_file),
                ] {
                    if path.as_os_str().is_empty() {
                        return Err(invalid(
                            key,
                            "must be set when stream.tls_listen is (the stream TLS listener uses the tls.* certificate and key)".to_string(),
                        ));
                    }
                }
            }
            Ok(None) => {}
        }
        if self.stream.frame_max != 0 && self.stream.frame_max < 8192 {
            return Err(invalid(
                "stream.frame_max",
                format!(
                    "{} is below 8192 (the frame size allowed before open); 0 for no limit",
                    self.stream.frame_max
                ),
            ));
        }
        match self.mgmt.tls_listen_addr() {
            Err(e) => return Err(invalid("mgmt.tls_listen", e)),
            Ok(Some(_)) => {
                for (key, own, fallback) in [
                    (
                        "mgmt.tls_cert_file",
                        &self.mgmt.tls_cert_file,
                        &self.tls.cert_file,
                    ),
                    (
                        "mgmt.tls_key_file",
                        &self.mgmt.tls_key_file,
                        &self.tls.key_file,
                    ),
                ] {
                    if own.as_os_str().is_empty() && fallback.as_os_str().is_empty() {
                        return Err(invalid(
                            key,
                            "must be set (or its tls.* counterpart) when mgmt.tls_listen is"
                                .to_string(),
                        ));
                    }
                }
            }
            Ok(None) => {}
        }
        if !(100..=3_600_000).contains(&self.mgmt.stats_interval) {
            return Err(invalid(
                "mgmt.stats_interval",
                format!(
                    "{} is outside 100..=3600000 milliseconds",
                    self.mgmt.stats_interval
                ),
            ));
        }
        if let Err(e) = tracing_subscriber::EnvFilter::try_new(&self.log.level) {
            return Err(invalid(
                "log.level",
                format!(
                    "{:?} is not a valid log filter directive: {e}",
                    self.log.level
                ),
            ));
        }
        Ok(())
    }
}

/// Loads a [`Config`] from chosen layers; [`Config::load`] is the usual entry point.
///
/// Layers, later ones winning: the built-in defaults, at most one config file, then the
/// `WARREN_*` environment variables (of the process, unless given with [`Loader::env`]).
#[derive(Debug, Clone, Default)]
pub struct Loader {
    file: Option<(PathBuf, bool)>,
    env: Option<Vec<(String, String)>>,
}

impl Loader {
    /// Built-in defaults and the process environment, no config file.
    pub fn new() -> Self {
        Self::default()
    }

    /// Reads the config file at `path`; it is an error if it does not exist.
    pub fn file(mut self, path: impl Into<PathBuf>) -> Self {
        self.file = Some((path.into(), true));
        self
    }

    /// Reads the config file at `path` if it exists.
    pub fn optional_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.file = Some((path.into(), false));
        self
    }

    /// Takes the environment variables from `vars` instead of the process environment.
    pub fn env<I, K, V>(mut self, vars: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        self.env = Some(
            vars.into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        );
        self
    }

    /// Merges the layers, checks every key and value, and returns the configuration.
    pub fn load(self) -> Result<Config, ConfigError> {
        // Layer 1: built-in defaults. They also define which keys exist and their types.
        let defaults = File::from_str(DEFAULTS_TOML, FileFormat::Toml);
        let schema = defaults.collect().map_err(|e| ConfigError::Parse {
            origin: Origin::Defaults,
            message: e.to_string(),
        })?;
        let mut builder = config::Config::builder().add_source(defaults);

        // Layer 2: the config file.
        let mut file_keys = HashSet::new();
        let mut file_path = None;
        if let Some((path, required)) = self.file {
            match std::fs::read_to_string(&path) {
                Ok(text) => {
                    let origin = Origin::File(path.clone());
                    let source = File::from_str(&text, FileFormat::Toml);
                    let table = source.collect().map_err(|e| ConfigError::Parse {
                        origin: origin.clone(),
                        message: e.to_string(),
                    })?;
                    for (key, value) in flatten_file(table, &schema, &origin)? {
                        check_type(&key, &value, &schema, &origin)?;
                        file_keys.insert(key);
                    }
                    builder = builder.add_source(source);
                    file_path = Some(path);
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    return Err(ConfigError::FileNotFound { path });
                }
                Err(source) => return Err(ConfigError::FileRead { path, source }),
            }
        }

        // Layer 3: WARREN_<SECTION>__<KEY> environment variables.
        let env_vars = match self.env {
            Some(vars) => vars
                .into_iter()
                .filter(|(name, _)| has_env_prefix(name))
                .collect::<Map<_, _>>(),
            None => process_env()?,
        };
        // The key config's Environment derives from each variable, and the variable's name.
        let env_names: Map<String, String> = env_vars
            .keys()
            .map(|name| (env_key(name), name.clone()))
            .collect();
        let env_origin =
            |key: &str| Origin::Env(env_names.get(key).cloned().unwrap_or_else(|| env_name(key)));
        let environment = Environment::with_prefix(ENV_PREFIX.trim_end_matches('_'))
            .prefix_separator("_")
            .separator(ENV_SEPARATOR)
            .source(Some(env_vars));
        let env_values = environment.collect().map_err(|e| ConfigError::Parse {
            origin: Origin::Env(format!("{ENV_PREFIX}*")),
            message: e.to_string(),
        })?;
        let mut env_values: Vec<_> = env_values.into_iter().collect();
        env_values.sort_by(|a, b| a.0.cmp(&b.0));
        for (key, value) in &env_values {
            let origin = env_origin(key);
            check_known(key, &schema, &origin)?;
            check_type(key, value, &schema, &origin)?;
        }
        builder = builder.add_source(environment);

        // Where the winning value of `key` was set, for error messages.
        let origin_of = |key: &str| {
            if env_values.iter().any(|(k, _)| k == key) {
                Some(env_origin(key))
            } else if file_keys.contains(key) {
                file_path.clone().map(Origin::File)
            } else {
                Some(Origin::Defaults)
            }
        };

        let merged = builder
            .build()
            .map_err(|e| ConfigError::Other(e.to_string()))?;
        let config: Config = merged.try_deserialize().map_err(|e| match e {
            config::ConfigError::Type {
                key: Some(key),
                unexpected,
                expected,
                ..
            } => ConfigError::InvalidValue {
                message: format!("expected {expected}, found {unexpected}"),
                origin: origin_of(&key),
                key,
            },
            config::ConfigError::At {
                key: Some(key),
                error,
                ..
            } => ConfigError::InvalidValue {
                message: error.to_string(),
                origin: origin_of(&key),
                key,
            },
            other => ConfigError::Other(other.to_string()),
        })?;
        config.validate_with(origin_of)?;
        Ok(config)
    }
}

fn has_env_prefix(name: &str) -> bool {
    name.len() >= ENV_PREFIX.len()
        && name.is_char_boundary(ENV_PREFIX.len())
        && name[..ENV_PREFIX.len()].eq_ignore_ascii_case(ENV_PREFIX)
}

/// The `WARREN_*` variables of the process environment.
fn process_env() -> Result<Map<String, String>, ConfigError> {
    let mut vars = Map::new();
    for (name, value) in std::env::vars_os() {
        let Some(name) = name.to_str().filter(|name| has_env_prefix(name)) else {
            continue;
        };
        let value = value.into_string().map_err(|_| ConfigError::Parse {
            origin: Origin::Env(name.to_string()),
            message: "the value is not valid UTF-8".to_string(),
        })?;
        vars.insert(name.to_string(), value);
    }
    Ok(vars)
}

/// The key that config's `Environment` makes of variable `name`: `WARREN_AMQP__FRAME_MAX` is
/// `amqp.frame_max`.
fn env_key(name: &str) -> String {
    name[ENV_PREFIX.len()..]
        .to_lowercase()
        .replace(ENV_SEPARATOR, ".")
}

/// The variable that sets `key`: `amqp.frame_max` is set by `WARREN_AMQP__FRAME_MAX`.
fn env_name(key: &str) -> String {
    format!(
        "{ENV_PREFIX}{}",
        key.to_uppercase().replace('.', ENV_SEPARATOR)
    )
}

/// All `section.key` names, sorted.
fn known_keys(schema: &Map<String, Value>) -> Vec<String> {
    let mut keys: Vec<String> = schema
        .iter()
        .flat_map(|(section, table)| match &table.kind {
            ValueKind::Table(table) => table.keys().map(|key| format!("{section}.{key}")).collect(),
            _ => Vec::new(),
        })
        .collect();
    keys.sort();
    keys
}

fn schema_value<'a>(key: &str, schema: &'a Map<String, Value>) -> Option<&'a Value> {
    let (section, name) = key.split_once('.')?;
    match &schema.get(section)?.kind {
        ValueKind::Table(table) => table.get(name),
        _ => None,
    }
}

fn check_known(key: &str, schema: &Map<String, Value>, origin: &Origin) -> Result<(), ConfigError> {
    match schema_value(key, schema) {
        Some(_) => Ok(()),
        None => Err(ConfigError::UnknownKey {
            key: key.to_string(),
            origin: origin.clone(),
            known: known_keys(schema),
        }),
    }
}

/// The `(section.key, value)` pairs of a config file, sorted; errors on unknown keys.
fn flatten_file(
    table: Map<String, Value>,
    schema: &Map<String, Value>,
    origin: &Origin,
) -> Result<Vec<(String, Value)>, ConfigError> {
    let mut sections: Vec<_> = table.into_iter().collect();
    sections.sort_by(|a, b| a.0.cmp(&b.0));
    let mut pairs = Vec::new();
    for (section, value) in sections {
        let unknown = || ConfigError::UnknownKey {
            key: section.clone(),
            origin: origin.clone(),
            known: known_keys(schema),
        };
        if !schema.contains_key(&section) {
            return Err(unknown());
        }
        let ValueKind::Table(keys) = value.kind else {
            return Err(ConfigError::InvalidValue {
                message: format!(
                    "expected a [{section}] table, found {}",
                    describe(&value.kind)
                ),
                key: section,
                origin: Some(origin.clone()),
            });
        };
        let mut keys: Vec<_> = keys.into_iter().collect();
        keys.sort_by(|a, b| a.0.cmp(&b.0));
        for (key, value) in keys {
            let key = format!("{section}.{key}");
            check_known(&key, schema, origin)?;
            pairs.push((key, value));
        }
    }
    Ok(pairs)
}

/// Checks that `value` has the type of the default for `key`: a non-negative integer where the
/// default is an integer (every integer setting is unsigned; from the environment, a string that
/// parses as one), a string where the default is a string. Ranges are checked on deserializing.
fn check_type(
    key: &str,
    value: &Value,
    schema: &Map<String, Value>,
    origin: &Origin,
) -> Result<(), ConfigError> {
    let Some(default) = schema_value(key, schema) else {
        return Ok(());
    };
    let integer = |kind: &ValueKind| match *kind {
        ValueKind::I64(n) => Some(i128::from(n)),
        ValueKind::I128(n) => Some(n),
        ValueKind::U64(n) => Some(i128::from(n)),
        ValueKind::U128(n) => i128::try_from(n).ok().or(Some(i128::MAX)),
        _ => None,
    };
    let invalid = |message: String| ConfigError::InvalidValue {
        key: key.to_string(),
        message,
        origin: Some(origin.clone()),
    };
    if integer(&default.kind).is_some() {
        let n = match &value.kind {
            ValueKind::String(s) if matches!(origin, Origin::Env(_)) => s.parse::<i128>().ok(),
            kind => integer(kind),
        };
        match n {
            None => Err(invalid(format!(
                "expected an integer, found {}",
                describe(&value.kind)
            ))),
            Some(n) if n < 0 => Err(invalid(format!(
                "expected a non-negative integer, found {n}"
            ))),
            Some(_) => Ok(()),
        }
    } else if matches!(default.kind, ValueKind::String(_))
        && !matches!(value.kind, ValueKind::String(_))
    {
        Err(invalid(format!(
            "expected a string, found {}",
            describe(&value.kind)
        )))
    } else {
        Ok(())
    }
}

fn describe(kind: &ValueKind) -> String {
    match kind {
        ValueKind::Nil => "nothing".to_string(),
        ValueKind::Boolean(b) => format!("boolean {b}"),
        ValueKind::I64(i) => format!("integer {i}"),
        ValueKind::I128(i) => format!("integer {i}"),
        ValueKind::U64(i) => format!("integer {i}"),
        ValueKind::U128(i) => format!("integer {i}"),
        ValueKind::Float(f) => format!("float {f}"),
        ValueKind::String(s) => format!("string {s:?}"),
        ValueKind::Table(_) => "a table".to_string(),
        ValueKind::Array(_) => "an array".to_string(),
    }
}
