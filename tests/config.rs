//! Configuration loading: defaults < file < WARREN_ variables, and the errors for bad input.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use warren::config::{Config, ConfigError, DEFAULTS_TOML, Loader, LogFormat, Origin};

const NO_ENV: [(&str, &str); 0] = [];

/// Writes `contents` to a fresh file in the temp directory and returns its path.
fn temp_file(contents: &str) -> TempFile {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let path = std::env::temp_dir().join(format!(
        "warren-config-test-{}-{}.toml",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::write(&path, contents).unwrap();
    TempFile(path)
}

struct TempFile(PathBuf);

impl TempFile {
    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn shipped_file() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("conf/warren.toml")
}

fn load_file(contents: &str) -> Result<Config, ConfigError> {
    let file = temp_file(contents);
    Config::load_with_env(Some(file.path()), NO_ENV)
}

fn load_env(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
    Loader::new().env(vars.iter().copied()).load()
}

/// Asserts that `result` is an error about `key` whose message contains each of `parts`.
#[track_caller]
fn assert_error(result: Result<Config, ConfigError>, key: &str, parts: &[&str]) -> ConfigError {
    let err = result.expect_err("expected an error");
    let message = err.to_string();
    assert_eq!(err.key(), Some(key), "wrong key in: {message}");
    for part in parts {
        assert!(
            message.contains(part),
            "{message:?} should contain {part:?}"
        );
    }
    err
}

// --- defaults -----------------------------------------------------------------------------

#[test]
fn built_in_defaults_equal_default() {
    assert_eq!(Loader::new().env(NO_ENV).load().unwrap(), Config::default());
}

#[test]
fn shipped_file_is_the_embedded_defaults() {
    let on_disk = std::fs::read_to_string(shipped_file()).unwrap();
    assert_eq!(on_disk, DEFAULTS_TOML);
    let loaded = Config::load_with_env(Some(&shipped_file()), NO_ENV).unwrap();
    assert_eq!(loaded, Config::default());
}

#[test]
fn default_values() {
    let c = Config::default();
    assert_eq!(c.amqp.listen, "127.0.0.1:5672".parse().unwrap());
    assert_eq!(c.amqp.frame_max, 131072);
    assert_eq!(c.amqp.channel_max, 2047);
    assert_eq!(c.amqp.heartbeat, 60);
    assert_eq!(c.amqp.max_message_size, 128 << 20);
    assert_eq!(c.amqp.max_connections, 0);
    assert_eq!(c.amqp.handshake_timeout, 10_000);
    assert_eq!(c.amqp.consumer_timeout, 1_800_000);
    assert_eq!(c.amqp.dead_letter_retry_interval, 10_000);
    assert_eq!(c.storage.dir, PathBuf::from("data"));
    assert_eq!(c.auth.default_user, "guest");
    assert_eq!(c.auth.default_pass, "guest");
    assert_eq!(c.auth.default_vhost, "/");
    assert_eq!(c.auth.loopback_users, vec!["guest".to_string()]);
    assert_eq!(c.definitions.import_file, "");
    assert_eq!(c.log.level, "info");
    assert_eq!(c.log.format, LogFormat::Text);
    assert_eq!(c.tls.listen, "");
    assert_eq!(c.tls.listen_addr(), Ok(None));
    assert!(c.tls.cert_file.as_os_str().is_empty());
    assert!(!c.tls.verify_peer);
    assert!(!c.tls.fail_if_no_peer_cert);
    c.validate().unwrap();
}

#[test]
fn every_key_in_shipped_file_is_documented() {
    let mut previous = "";
    let mut keys = 0;
    for line in DEFAULTS_TOML.lines() {
        let line = line.trim();
        if !line.is_empty() && !line.starts_with('#') && !line.starts_with('[') {
            keys += 1;
            assert!(
                previous.starts_with("# Default: "),
                "key line {line:?} is not preceded by a `# Default:` comment"
            );
        }
        if !line.is_empty() {
            previous = line;
        }
    }
    assert_eq!(keys, 38);
}

#[test]
fn missing_default_file_is_fine() {
    let missing = std::env::temp_dir().join("warren-config-test-does-not-exist.toml");
    let config = Loader::new()
        .optional_file(&missing)
        .env(NO_ENV)
        .load()
        .unwrap();
    assert_eq!(config, Config::default());
}

#[test]
fn default_file_is_read_when_present() {
    let file = temp_file("[amqp]\nheartbeat = 5\n");
    let config = Loader::new()
        .optional_file(file.path())
        .env(NO_ENV)
        .load()
        .unwrap();
    assert_eq!(config.amqp.heartbeat, 5);
}

#[test]
fn missing_explicit_file_is_an_error() {
    let missing = std::env::temp_dir().join("warren-config-test-does-not-exist.toml");
    let err = Config::load_with_env(Some(&missing), NO_ENV).unwrap_err();
    assert!(matches!(err, ConfigError::FileNotFound { ref path } if *path == missing));
    assert!(
        err.to_string()
            .contains("warren-config-test-does-not-exist.toml")
    );
}

#[test]
fn unreadable_explicit_file_is_an_error() {
    // A directory cannot be read as a file.
    let err = Config::load_with_env(Some(&std::env::temp_dir()), NO_ENV).unwrap_err();
    assert!(matches!(err, ConfigError::FileRead { .. }), "{err}");
}

// --- file ---------------------------------------------------------------------------------

#[test]
fn file_overrides_defaults() {
    let config = load_file(
        r#"
        [amqp]
        listen = "0.0.0.0:5673"
        frame_max = 8192

        [storage]
        dir = "/var/lib/warren"

        [auth]
        default_pass = "s3cret"

        [log]
        level = "warn,warren=debug"
        "#,
    )
    .unwrap();
    assert_eq!(config.amqp.listen, "0.0.0.0:5673".parse().unwrap());
    assert_eq!(config.amqp.frame_max, 8192);
    assert_eq!(config.storage.dir, PathBuf::from("/var/lib/warren"));
    assert_eq!(config.auth.default_pass, "s3cret");
    assert_eq!(config.log.level, "warn,warren=debug");
    // Keys the file leaves out keep their defaults, also within a section it sets.
    assert_eq!(config.amqp.channel_max, 2047);
    assert_eq!(config.amqp.heartbeat, 60);
    assert_eq!(config.auth.default_user, "guest");
    assert_eq!(config.auth.default_vhost, "/");
}

#[test]
fn empty_file_gives_defaults() {
    assert_eq!(load_file("").unwrap(), Config::default());
}

#[test]
fn ipv6_listen_address() {
    let config = load_file("[amqp]\nlisten = \"[::1]:0\"\n").unwrap();
    assert_eq!(config.amqp.listen, "[::1]:0".parse().unwrap());
}

#[test]
fn unknown_key_in_file_names_the_key() {
    let file = temp_file("[amqp]\nlistn = \"127.0.0.1:5672\"\n");
    let err = assert_error(
        Config::load_with_env(Some(file.path()), NO_ENV),
        "amqp.listn",
        &["unknown key `amqp.listn`", "amqp.listen"],
    );
    assert!(err.to_string().contains(&file.path().display().to_string()));
    assert!(
        matches!(err, ConfigError::UnknownKey { origin: Origin::File(ref p), .. } if p == file.path())
    );
}

#[test]
fn unknown_section_in_file_names_the_section() {
    assert_error(
        load_file("[amqpp]\nlisten = \"127.0.0.1:5672\"\n"),
        "amqpp",
        &["unknown key `amqpp`"],
    );
    assert_error(
        load_file("verbose = true\n"),
        "verbose",
        &["unknown key `verbose`"],
    );
}

#[test]
fn nested_table_under_a_key_is_an_error() {
    assert_error(
        load_file("[amqp.listen]\nhost = \"x\"\n"),
        "amqp.listen",
        &["invalid value for `amqp.listen`", "expected a string"],
    );
}

#[test]
fn section_that_is_not_a_table_is_an_error() {
    assert_error(
        load_file("amqp = 5\n"),
        "amqp",
        &["invalid value for `amqp`"],
    );
}

#[test]
fn bad_values_in_file_name_the_key() {
    let cases: &[(&str, &str, &[&str])] = &[
        (
            "[amqp]\nlisten = \"localhost\"\n",
            "amqp.listen",
            &["invalid value for `amqp.listen`: invalid socket address"],
        ),
        (
            "[amqp]\nlisten = 5672\n",
            "amqp.listen",
            &["expected a string, found integer 5672"],
        ),
        (
            "[amqp]\nframe_max = \"big\"\n",
            "amqp.frame_max",
            &["invalid value for `amqp.frame_max`: expected an integer"],
        ),
        (
            "[amqp]\nframe_max = 1024\n",
            "amqp.frame_max",
            &["invalid value for `amqp.frame_max`", "4096"],
        ),
        (
            "[amqp]\nframe_max = 5000000000\n",
            "amqp.frame_max",
            &["invalid value for `amqp.frame_max`", "32 bit"],
        ),
        (
            "[amqp]\nchannel_max = 0\n",
            "amqp.channel_max",
            &["invalid value for `amqp.channel_max`: must be at least 1"],
        ),
        (
            "[amqp]\nchannel_max = 70000\n",
            "amqp.channel_max",
            &["invalid value for `amqp.channel_max`", "16 bit"],
        ),
        (
            "[amqp]\nmax_message_size = 0\n",
            "amqp.max_message_size",
            &["invalid value for `amqp.max_message_size`", "512 MiB"],
        ),
        (
            "[amqp]\nmax_message_size = 600000000\n",
            "amqp.max_message_size",
            &["invalid value for `amqp.max_message_size`", "outside 1..="],
        ),
        (
            "[amqp]\nmax_connections = -1\n",
            "amqp.max_connections",
            &["invalid value for `amqp.max_connections`: expected a non-negative integer"],
        ),
        (
            "[amqp]\nmax_connections = \"infinity\"\n",
            "amqp.max_connections",
            &["invalid value for `amqp.max_connections`: expected an integer"],
        ),
        (
            "[amqp]\nmax_connections = 5000000000\n",
            "amqp.max_connections",
            &["invalid value for `amqp.max_connections`", "32 bit"],
        ),
        (
            "[amqp]\nhandshake_timeout = 0\n",
            "amqp.handshake_timeout",
            &[
                "invalid value for `amqp.handshake_timeout`",
                "outside 1..=86400000",
            ],
        ),
        (
            "[amqp]\nhandshake_timeout = 86400001\n",
            "amqp.handshake_timeout",
            &["invalid value for `amqp.handshake_timeout`", "milliseconds"],
        ),
        (
            "[amqp]\nhandshake_timeout = \"10s\"\n",
            "amqp.handshake_timeout",
            &["invalid value for `amqp.handshake_timeout`: expected an integer"],
        ),
        (
            "[amqp]\nheartbeat = -1\n",
            "amqp.heartbeat",
            &["invalid value for `amqp.heartbeat`: expected a non-negative integer, found -1"],
        ),
        (
            "[amqp]\nheartbeat = 1.5\n",
            "amqp.heartbeat",
            &["expected an integer, found float 1.5"],
        ),
        (
            "[amqp]\nheartbeat = true\n",
            "amqp.heartbeat",
            &["expected an integer, found boolean true"],
        ),
        (
            "[storage]\ndir = \"\"\n",
            "storage.dir",
            &["invalid value for `storage.dir`: must not be empty"],
        ),
        (
            "[storage]\nsync = \"sometimes\"\n",
            "storage.sync",
            &["expected a boolean"],
        ),
        (
            "[storage]\ndisk_free_limit = \"lots\"\n",
            "storage.disk_free_limit",
            &["invalid value for `storage.disk_free_limit`"],
        ),
        (
            "[memory]\npaging_threshold = \"1KiB\"\n",
            "memory.paging_threshold",
            &["below the minimum of 64KiB"],
        ),
        (
            "[auth]\ndefault_pass = 1234\n",
            "auth.default_pass",
            &["expected a string"],
        ),
        (
            "[auth]\ndefault_vhost = \"\"\n",
            "auth.default_vhost",
            &["invalid value for `auth.default_vhost`"],
        ),
        (
            "[log]\nlevel = \"info,warren=loud\"\n",
            "log.level",
            &["invalid value for `log.level`"],
        ),
        (
            "[log]\nformat = \"xml\"\n",
            "log.format",
            &["\"xml\" is not a log format: use \"text\" or \"json\""],
        ),
    ];
    for (contents, key, parts) in cases {
        let file = temp_file(contents);
        let mut parts = parts.to_vec();
        let path = file.path().display().to_string();
        parts.push(&path);
        assert_error(
            Config::load_with_env(Some(file.path()), NO_ENV),
            key,
            &parts,
        );
    }
}

#[test]
fn toml_syntax_error_names_the_file() {
    let file = temp_file("[amqp\nlisten = \n");
    let err = Config::load_with_env(Some(file.path()), NO_ENV).unwrap_err();
    assert!(matches!(err, ConfigError::Parse { .. }), "{err}");
    assert!(
        err.to_string().contains(&file.path().display().to_string()),
        "{err}"
    );
}

// --- environment --------------------------------------------------------------------------

#[test]
fn env_overrides_defaults() {
    let config = load_env(&[
        ("WARREN_AMQP__LISTEN", "127.0.0.1:5680"),
        ("WARREN_AMQP__FRAME_MAX", "8192"),
        ("WARREN_AMQP__CHANNEL_MAX", "16"),
        ("WARREN_AMQP__HEARTBEAT", "0"),
        ("WARREN_AMQP__MAX_CONNECTIONS", "100"),
        ("WARREN_AMQP__HANDSHAKE_TIMEOUT", "2500"),
        ("WARREN_STORAGE__DIR", "/tmp/x"),
        ("WARREN_AUTH__DEFAULT_USER", "admin"),
        ("WARREN_AUTH__DEFAULT_PASS", "1234"),
        ("WARREN_AUTH__DEFAULT_VHOST", "prod"),
        ("WARREN_LOG__LEVEL", "debug"),
        ("WARREN_LOG__FORMAT", "json"),
    ])
    .unwrap();
    assert_eq!(config.amqp.listen, "127.0.0.1:5680".parse().unwrap());
    assert_eq!(config.amqp.frame_max, 8192);
    assert_eq!(config.amqp.channel_max, 16);
    assert_eq!(config.amqp.heartbeat, 0);
    assert_eq!(config.amqp.max_connections, 100);
    assert_eq!(config.amqp.handshake_timeout, 2500);
    assert_eq!(config.storage.dir, PathBuf::from("/tmp/x"));
    assert_eq!(config.auth.default_user, "admin");
    // A numeric-looking string stays a string.
    assert_eq!(config.auth.default_pass, "1234");
    assert_eq!(config.auth.default_vhost, "prod");
    assert_eq!(config.log.level, "debug");
    assert_eq!(config.log.format, LogFormat::Json);
}

#[test]
fn tls_settings_from_env_and_file() {
    let config = load_env(&[
        ("WARREN_TLS__LISTEN", "0.0.0.0:5671"),
        ("WARREN_TLS__CERT_FILE", "/etc/warren/server.pem"),
        ("WARREN_TLS__KEY_FILE", "/etc/warren/server.key"),
        ("WARREN_TLS__CA_FILE", "/etc/warren/ca.pem"),
        ("WARREN_TLS__VERIFY_PEER", "true"),
        ("WARREN_TLS__FAIL_IF_NO_PEER_CERT", "true"),
    ])
    .unwrap();
    assert_eq!(
        config.tls.listen_addr(),
        Ok(Some("0.0.0.0:5671".parse().unwrap()))
    );
    assert_eq!(
        config.tls.cert_file,
        PathBuf::from("/etc/warren/server.pem")
    );
    assert_eq!(config.tls.key_file, PathBuf::from("/etc/warren/server.key"));
    assert_eq!(config.tls.ca_file, PathBuf::from("/etc/warren/ca.pem"));
    assert!(config.tls.verify_peer);
    assert!(config.tls.fail_if_no_peer_cert);

    let config = load_file(
        "[tls]\nlisten = \"[::]:5671\"\ncert_file = \"c.pem\"\nkey_file = \"k.pem\"\nverify_peer = false\n",
    )
    .unwrap();
    assert_eq!(
        config.tls.listen_addr(),
        Ok(Some("[::]:5671".parse().unwrap()))
    );
    assert_eq!(config.tls.cert_file, PathBuf::from("c.pem"));
    assert!(config.tls.ca_file.as_os_str().is_empty());
}

#[test]
fn bad_tls_settings_name_the_key() {
    assert_error(
        load_env(&[("WARREN_TLS__LISTEN", "5671")]),
        "tls.listen",
        &["not an address", "WARREN_TLS__LISTEN"],
    );
    // A listener without a certificate or key.
    assert_error(
        load_env(&[("WARREN_TLS__LISTEN", "127.0.0.1:5671")]),
        "tls.cert_file",
        &["must be set when tls.listen is"],
    );
    assert_error(
        load_env(&[
            ("WARREN_TLS__LISTEN", "127.0.0.1:5671"),
            ("WARREN_TLS__CERT_FILE", "c.pem"),
        ]),
        "tls.key_file",
        &["must be set when tls.listen is"],
    );
    assert_error(
        load_env(&[("WARREN_TLS__VERIFY_PEER", "true")]),
        "tls.ca_file",
        &["must be set when tls.verify_peer is true"],
    );
    assert_error(
        load_file("[tls]\nverify_peer = \"maybe\"\n"),
        "tls.verify_peer",
        &["invalid value for `tls.verify_peer`"],
    );
    assert_error(
        load_file("[tls]\nlisten = 5671\n"),
        "tls.listen",
        &["expected a string"],
    );
}

#[test]
fn env_overrides_file() {
    let file = temp_file("[amqp]\nlisten = \"0.0.0.0:5673\"\nheartbeat = 30\n");
    let config = Config::load_with_env(
        Some(file.path()),
        [("WARREN_AMQP__LISTEN", "127.0.0.1:5680")],
    )
    .unwrap();
    assert_eq!(config.amqp.listen, "127.0.0.1:5680".parse().unwrap());
    assert_eq!(config.amqp.heartbeat, 30);
}

#[test]
fn other_env_vars_are_ignored() {
    let config = load_env(&[
        ("PATH", "/usr/bin"),
        ("WARRENX", "1"),
        ("RUST_LOG", "trace"),
        ("AMQP__LISTEN", "nonsense"),
    ])
    .unwrap();
    assert_eq!(config, Config::default());
}

#[test]
fn unknown_env_key_names_the_key_and_variable() {
    let err = assert_error(
        load_env(&[("WARREN_AMQP__LISTN", "127.0.0.1:5680")]),
        "amqp.listn",
        &["unknown key `amqp.listn`", "WARREN_AMQP__LISTN"],
    );
    assert!(
        matches!(err, ConfigError::UnknownKey { origin: Origin::Env(ref v), .. } if v == "WARREN_AMQP__LISTN")
    );
    // A single underscore between section and key does not separate them.
    assert_error(
        load_env(&[("WARREN_AMQP_LISTEN", "127.0.0.1:5680")]),
        "amqp_listen",
        &["unknown key `amqp_listen`", "WARREN_AMQP_LISTEN"],
    );
    // A whole section cannot be set.
    assert_error(
        load_env(&[("WARREN_AMQP", "x")]),
        "amqp",
        &["unknown key `amqp`"],
    );
    assert_error(
        load_env(&[("WARREN_QUEUE__TTL", "5")]),
        "queue.ttl",
        &["unknown key `queue.ttl`"],
    );
}

#[test]
fn bad_env_values_name_the_key_and_variable() {
    let cases = [
        (
            "WARREN_AMQP__FRAME_MAX",
            "abc",
            "amqp.frame_max",
            "expected an integer",
        ),
        ("WARREN_AMQP__FRAME_MAX", "100", "amqp.frame_max", "4096"),
        (
            "WARREN_AMQP__FRAME_MAX",
            "-1",
            "amqp.frame_max",
            "non-negative integer, found -1",
        ),
        (
            "WARREN_AMQP__HEARTBEAT",
            "yes",
            "amqp.heartbeat",
            "expected an integer",
        ),
        (
            "WARREN_AMQP__HEARTBEAT",
            "70000",
            "amqp.heartbeat",
            "16 bit",
        ),
        (
            "WARREN_AMQP__MAX_CONNECTIONS",
            "infinity",
            "amqp.max_connections",
            "expected an integer",
        ),
        (
            "WARREN_AMQP__MAX_CONNECTIONS",
            "-1",
            "amqp.max_connections",
            "non-negative integer, found -1",
        ),
        (
            "WARREN_AMQP__HANDSHAKE_TIMEOUT",
            "0",
            "amqp.handshake_timeout",
            "outside 1..=86400000",
        ),
        (
            "WARREN_AMQP__CHANNEL_MAX",
            "0",
            "amqp.channel_max",
            "at least 1",
        ),
        (
            "WARREN_AMQP__LISTEN",
            "127.0.0.1",
            "amqp.listen",
            "socket address",
        ),
        (
            "WARREN_STORAGE__DIR",
            "",
            "storage.dir",
            "must not be empty",
        ),
    ];
    for (var, value, key, detail) in cases {
        let prefix = format!("invalid value for `{key}`");
        assert_error(load_env(&[(var, value)]), key, &[&prefix, detail, var]);
    }
}

#[test]
fn value_errors_name_the_layer_that_set_the_value() {
    // The file sets a bad value and the environment fixes it: fine.
    let file = temp_file("[amqp]\nframe_max = 100\n");
    let config =
        Config::load_with_env(Some(file.path()), [("WARREN_AMQP__FRAME_MAX", "4096")]).unwrap();
    assert_eq!(config.amqp.frame_max, 4096);
    // The file sets a bad value: the error names the file.
    let path = file.path().display().to_string();
    assert_error(
        Config::load_with_env(Some(file.path()), NO_ENV),
        "amqp.frame_max",
        &[&path],
    );
}

#[test]
fn validate_config_built_in_code() {
    let mut config = Config::default();
    config.amqp.frame_max = 4095;
    let err = config.validate().unwrap_err();
    assert_eq!(err.key(), Some("amqp.frame_max"));
    config.amqp.frame_max = 4096;
    config.validate().unwrap();
}

// --- the binary ---------------------------------------------------------------------------

/// `warren` with the WARREN_ variables of this process removed.
fn warren() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_warren"));
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().to_uppercase().starts_with("WARREN_") {
            cmd.env_remove(name);
        }
    }
    cmd.env_remove("RUST_LOG");
    cmd
}

#[test]
fn binary_exits_2_on_missing_config_file() {
    let missing = std::env::temp_dir().join("warren-config-test-does-not-exist.toml");
    let out = warren().arg("--config").arg(&missing).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("not found"), "{stderr}");
}

#[test]
fn binary_exits_2_on_unknown_env_key() {
    let out = warren()
        .arg("--config")
        .arg(shipped_file())
        .env("WARREN_AMQP__LISTN", "127.0.0.1:5680")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("unknown key `amqp.listn`"), "{stderr}");
}

#[test]
fn binary_exits_1_naming_a_missing_certificate_file() {
    let missing = std::env::temp_dir().join("warren-config-test-no-such-cert.pem");
    let data = std::env::temp_dir().join(format!("warren-config-test-data-{}", std::process::id()));
    let out = warren()
        .arg("--config")
        .arg(shipped_file())
        .env("WARREN_AMQP__LISTEN", "127.0.0.1:0")
        .env("WARREN_MGMT__LISTEN", "127.0.0.1:0")
        .env("WARREN_PROMETHEUS__LISTEN", "127.0.0.1:0")
        .env("WARREN_STORAGE__DIR", &data)
        .env("WARREN_TLS__LISTEN", "127.0.0.1:0")
        .env("WARREN_TLS__CERT_FILE", &missing)
        .env("WARREN_TLS__KEY_FILE", &missing)
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&data);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("tls.cert_file") && stderr.contains(&*missing.to_string_lossy()),
        "{stderr}"
    );
}

#[test]
fn binary_exits_2_on_bad_value() {
    let file = temp_file("[amqp]\nframe_max = 1\n");
    let out = warren().arg("--config").arg(file.path()).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("invalid value for `amqp.frame_max`"),
        "{stderr}"
    );
}

#[test]
fn loopback_users_from_a_file_list_or_a_comma_separated_variable() {
    let file = temp_file("[auth]\nloopback_users = [\"guest\", \"ops\"]\n");
    let c = Config::load_with_env(Some(file.path()), NO_ENV).unwrap();
    assert_eq!(c.auth.loopback_users, vec!["guest", "ops"]);
    let c = Config::load_with_env(Some(file.path()), [("WARREN_AUTH__LOOPBACK_USERS", "a, b")])
        .unwrap();
    assert_eq!(c.auth.loopback_users, vec!["a", "b"]);
    let c =
        Config::load_with_env(Some(file.path()), [("WARREN_AUTH__LOOPBACK_USERS", "")]).unwrap();
    assert!(c.auth.loopback_users.is_empty());
}
