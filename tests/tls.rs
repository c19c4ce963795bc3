//! The `amqps` listener: lapin and a raw rustls client over TLS 1.2 and 1.3, client
//! certificates (verify_peer, fail_if_no_peer_cert), and the start-up errors for bad
//! certificate files. Certificates are made here with rcgen, into a temporary directory.

mod common;

use common::{Deliveries, body, unique, within};
use lapin::options::{BasicConsumeOptions, BasicPublishOptions, QueueDeclareOptions};
use lapin::tcp::{OwnedIdentity, OwnedTLSConfig};
use lapin::types::FieldTable as LapinTable;
use lapin::{BasicProperties, Connection, ConnectionProperties};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::codec::Decoder;
use warren::config::Config;
use warren::protocol::{Frame, FrameCodec, Method};
use warren::server::ServerHandle;

/// A CA, a server certificate for localhost / 127.0.0.1 and a client certificate (CN
/// "alice") signed by it, and a client certificate from another CA, as PEM files.
struct Pki {
    dir: PathBuf,
    ca_pem: String,
    client_cert_pem: String,
    client_key_pem: String,
    rogue_cert_pem: String,
    rogue_key_pem: String,
}

fn ca(name: &str) -> CertifiedIssuer<'static, KeyPair> {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap()
}

/// A leaf certificate signed by `issuer`: (certificate PEM, key PEM).
fn leaf(
    issuer: &CertifiedIssuer<'static, KeyPair>,
    cn: &str,
    sans: &[&str],
    usage: ExtendedKeyUsagePurpose,
) -> (String, String) {
    let mut params =
        CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
    params.distinguished_name.push(DnType::CommonName, cn);
    params.extended_key_usages = vec![usage];
    let key = KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, issuer).unwrap();
    (cert.pem(), key.serialize_pem())
}

impl Pki {
    fn new() -> Pki {
        let dir = std::env::temp_dir().join(format!("warren-tls-test-{}", unique()));
        std::fs::create_dir_all(&dir).unwrap();
        let authority = ca("Warren test CA");
        let (server_cert, server_key) = leaf(
            &authority,
            "localhost",
            &["localhost", "127.0.0.1"],
            ExtendedKeyUsagePurpose::ServerAuth,
        );
        let (client_cert_pem, client_key_pem) = leaf(
            &authority,
            "alice",
            &[],
            ExtendedKeyUsagePurpose::ClientAuth,
        );
        let rogue = ca("Someone else's CA");
        let (rogue_cert_pem, rogue_key_pem) =
            leaf(&rogue, "mallory", &[], ExtendedKeyUsagePurpose::ClientAuth);
        let pki = Pki {
            dir,
            ca_pem: authority.pem(),
            client_cert_pem,
            client_key_pem,
            rogue_cert_pem,
            rogue_key_pem,
        };
        pki.write("ca.pem", &pki.ca_pem);
        pki.write("server.pem", &server_cert);
        pki.write("server.key", &server_key);
        pki
    }

    fn write(&self, name: &str, contents: &str) -> PathBuf {
        let path = self.dir.join(name);
        std::fs::write(&path, contents).unwrap();
        path
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// A broker config with the TLS listener on a free port.
    fn config(&self) -> Config {
        let mut config = Config::default();
        config.amqp.listen = "127.0.0.1:0".parse().unwrap();
        config.mgmt.listen = "127.0.0.1:0".into();
        config.prometheus.listen = "127.0.0.1:0".into();
        config.storage.dir = self.dir.join("data");
        config.tls.listen = "127.0.0.1:0".into();
        config.tls.cert_file = self.path("server.pem");
        config.tls.key_file = self.path("server.key");
        config
    }

    fn verifying_config(&self, fail_if_no_peer_cert: bool) -> Config {
        let mut config = self.config();
        config.tls.ca_file = self.path("ca.pem");
        config.tls.verify_peer = true;
        config.tls.fail_if_no_peer_cert = fail_if_no_peer_cert;
        config
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

async fn start(config: Config) -> ServerHandle {
    warren::server::start(config).await.expect("broker starts")
}

fn amqps_url(server: &ServerHandle) -> String {
    let port = server.tls_addr.expect("a TLS listener").port();
    format!("amqps://guest:guest@localhost:{port}/%2f")
}

/// lapin over TLS, trusting the test CA, with a client certificate if given.
async fn lapin_connect(
    server: &ServerHandle,
    pki: &Pki,
    identity: Option<(&str, &str)>,
) -> lapin::Result<Connection> {
    lapin_connect_url(&amqps_url(server), pki, identity).await
}

async fn lapin_connect_url(
    url: &str,
    pki: &Pki,
    identity: Option<(&str, &str)>,
) -> lapin::Result<Connection> {
    let tls = OwnedTLSConfig {
        identity: identity.map(|(cert, key)| OwnedIdentity::PKCS8 {
            pem: cert.as_bytes().to_vec(),
            key: key.as_bytes().to_vec(),
        }),
        cert_chain: Some(pki.ca_pem.clone()),
    };
    let runtime = lapin::runtime::default_runtime().unwrap();
    Connection::connect_with_config(url, ConnectionProperties::default(), tls, runtime).await
}

/// Publishes a message and consumes it back on `conn`.
async fn round_trip(conn: &Connection) {
    let ch = conn.create_channel().await.unwrap();
    let q = ch
        .queue_declare(
            "".into(),
            QueueDeclareOptions {
                exclusive: true,
                ..Default::default()
            },
            LapinTable::default(),
        )
        .await
        .unwrap();
    let consumer = ch
        .basic_consume(
            q.name().clone(),
            "".into(),
            BasicConsumeOptions {
                no_ack: true,
                ..Default::default()
            },
            LapinTable::default(),
        )
        .await
        .unwrap();
    let mut deliveries = Deliveries::new(consumer);
    // A small body and one past the size at which plain TCP shares bodies (writev).
    for payload in ["over TLS".to_string(), "x".repeat(100_000)] {
        ch.basic_publish(
            "".into(),
            q.name().as_str().into(),
            BasicPublishOptions::default(),
            payload.as_bytes(),
            BasicProperties::default(),
        )
        .await
        .unwrap();
        let d = deliveries.next().await;
        assert_eq!(body(&d), payload);
    }
}

/// A rustls client: `versions` to offer, a client certificate if given.
fn client_config(
    pki: &Pki,
    versions: &[&'static rustls::SupportedProtocolVersion],
    identity: Option<(&str, &str)>,
) -> Arc<rustls::ClientConfig> {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(pki.ca_pem.as_bytes()).unwrap())
        .unwrap();
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(versions)
    .unwrap()
    .with_root_certificates(roots);
    let config = match identity {
        Some((cert, key)) => builder
            .with_client_auth_cert(
                vec![CertificateDer::from_pem_slice(cert.as_bytes()).unwrap()],
                PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap(),
            )
            .unwrap(),
        None => builder.with_no_client_auth(),
    };
    Arc::new(config)
}

/// Connects with rustls, sends the AMQP header and returns the negotiated TLS version and
/// the mechanisms of connection.start.
async fn raw_start(
    server: &ServerHandle,
    config: Arc<rustls::ClientConfig>,
) -> std::io::Result<(rustls::ProtocolVersion, String)> {
    let tcp = tokio::net::TcpStream::connect(server.tls_addr.unwrap()).await?;
    let connector = tokio_rustls::TlsConnector::from(config);
    let mut tls = connector
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await?;
    let version = tls.get_ref().1.protocol_version().unwrap();
    tls.write_all(b"AMQP\x00\x00\x09\x01").await?;
    let mut codec = FrameCodec::new(131072);
    let mut buf = bytes::BytesMut::new();
    loop {
        if let Some(frame) = codec
            .decode(&mut buf)
            .map_err(|e| std::io::Error::other(e.to_string()))?
        {
            let Frame::Method {
                method: Method::ConnectionStart(start),
                ..
            } = frame
            else {
                panic!("expected connection.start, got {frame:?}");
            };
            return Ok((version, start.mechanisms.to_string_lossy().into_owned()));
        }
        if tls.read_buf(&mut buf).await? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
    }
}

// --- traffic --------------------------------------------------------------------------------

#[tokio::test]
async fn publish_and_consume_over_tls() {
    let pki = Pki::new();
    let server = start(pki.config()).await;
    let conn = within("TLS connect", lapin_connect(&server, &pki, None))
        .await
        .expect("connects over TLS");
    within("round trip", round_trip(&conn)).await;
    conn.close(200, "bye".into()).await.unwrap();
    // The plain listener goes on beside it.
    let plain = Connection::connect(
        &format!("amqp://guest:guest@{}/%2f", server.local_addr),
        ConnectionProperties::default(),
    )
    .await
    .unwrap();
    within("plain round trip", round_trip(&plain)).await;
    server.shutdown().await;
}

#[tokio::test]
async fn tls_12_and_13_both_negotiate() {
    let pki = Pki::new();
    let server = start(pki.config()).await;
    for (version, expected) in [
        (&rustls::version::TLS12, rustls::ProtocolVersion::TLSv1_2),
        (&rustls::version::TLS13, rustls::ProtocolVersion::TLSv1_3),
    ] {
        let (got, mechanisms) = within(
            "TLS handshake",
            raw_start(&server, client_config(&pki, &[version], None)),
        )
        .await
        .unwrap();
        assert_eq!(got, expected);
        // No client certificate: no EXTERNAL.
        assert_eq!(mechanisms, "PLAIN AMQPLAIN");
    }
    server.shutdown().await;
}

#[tokio::test]
async fn a_silent_tls_client_does_not_hold_up_others() {
    let pki = Pki::new();
    let server = start(pki.config()).await;
    // Connects and never starts the TLS handshake.
    let _silent = tokio::net::TcpStream::connect(server.tls_addr.unwrap())
        .await
        .unwrap();
    // Starts one and gives up half-way.
    let mut broken = tokio::net::TcpStream::connect(server.tls_addr.unwrap())
        .await
        .unwrap();
    broken.write_all(b"not a TLS client hello").await.unwrap();
    let conn = within("TLS connect", lapin_connect(&server, &pki, None))
        .await
        .unwrap();
    within("round trip", round_trip(&conn)).await;
    // The broken one was dropped by the broker.
    let mut sink = Vec::new();
    let _ = within("the broker drops it", broken.read_to_end(&mut sink)).await;
    server.shutdown().await;
}

// --- client certificates --------------------------------------------------------------------

#[tokio::test]
async fn fail_if_no_peer_cert_refuses_a_client_without_one() {
    let pki = Pki::new();
    let server = start(pki.verifying_config(true)).await;
    let refused = within("TLS connect", lapin_connect(&server, &pki, None)).await;
    assert!(refused.is_err(), "a client without a certificate connected");
    for version in [&rustls::version::TLS12, &rustls::version::TLS13] {
        let r = within(
            "TLS handshake",
            raw_start(&server, client_config(&pki, &[version], None)),
        )
        .await;
        assert!(r.is_err(), "{version:?}: got {r:?}");
    }
    server.shutdown().await;
}

#[tokio::test]
async fn a_client_certificate_signed_by_the_ca_is_accepted() {
    let pki = Pki::new();
    let server = start(pki.verifying_config(true)).await;
    let identity = Some((pki.client_cert_pem.as_str(), pki.client_key_pem.as_str()));
    let conn = within("TLS connect", lapin_connect(&server, &pki, identity))
        .await
        .expect("a client with a certificate connects");
    within("round trip", round_trip(&conn)).await;
    for version in [&rustls::version::TLS12, &rustls::version::TLS13] {
        let (_, mechanisms) = within(
            "TLS handshake",
            raw_start(&server, client_config(&pki, &[version], identity)),
        )
        .await
        .unwrap();
        // A verified certificate makes EXTERNAL available.
        assert_eq!(mechanisms, "PLAIN AMQPLAIN EXTERNAL");
    }
    server.shutdown().await;
}

#[tokio::test]
async fn a_client_certificate_from_another_ca_is_refused() {
    let pki = Pki::new();
    let server = start(pki.verifying_config(false)).await;
    let rogue = Some((pki.rogue_cert_pem.as_str(), pki.rogue_key_pem.as_str()));
    let refused = within("TLS connect", lapin_connect(&server, &pki, rogue)).await;
    assert!(refused.is_err(), "an unverifiable certificate was accepted");
    for version in [&rustls::version::TLS12, &rustls::version::TLS13] {
        let r = within(
            "TLS handshake",
            raw_start(&server, client_config(&pki, &[version], rogue)),
        )
        .await;
        assert!(r.is_err(), "{version:?}: got {r:?}");
    }
    server.shutdown().await;
}

#[tokio::test]
async fn verify_peer_alone_accepts_a_client_without_a_certificate() {
    let pki = Pki::new();
    let server = start(pki.verifying_config(false)).await;
    let conn = within("TLS connect", lapin_connect(&server, &pki, None))
        .await
        .expect("connects without a certificate");
    within("round trip", round_trip(&conn)).await;
    let (_, mechanisms) = within(
        "TLS handshake",
        raw_start(
            &server,
            client_config(&pki, &[&rustls::version::TLS13], None),
        ),
    )
    .await
    .unwrap();
    assert_eq!(mechanisms, "PLAIN AMQPLAIN");
    server.shutdown().await;
}

// --- start-up errors ------------------------------------------------------------------------

/// `server::start` fails with a message containing each of `parts`.
async fn start_error(config: Config, parts: &[&str]) {
    let message = match warren::server::start(config).await {
        Ok(_) => panic!("the broker started"),
        Err(e) => e.to_string(),
    };
    for part in parts {
        assert!(
            message.contains(part),
            "{message:?} should contain {part:?}"
        );
    }
}

fn display(p: &Path) -> String {
    p.display().to_string()
}

#[tokio::test]
async fn missing_files_are_named() {
    let pki = Pki::new();
    let missing = pki.path("nope.pem");
    for key in ["tls.cert_file", "tls.key_file", "tls.ca_file"] {
        let mut config = pki.verifying_config(false);
        match key {
            "tls.cert_file" => config.tls.cert_file = missing.clone(),
            "tls.key_file" => config.tls.key_file = missing.clone(),
            _ => config.tls.ca_file = missing.clone(),
        }
        start_error(config, &[key, &display(&missing), "No such file"]).await;
    }
}

#[tokio::test]
async fn files_that_are_not_pem_are_named() {
    let pki = Pki::new();
    let garbage = pki.write("garbage.pem", "this is not PEM\n");
    let mut config = pki.config();
    config.tls.cert_file = garbage.clone();
    start_error(
        config,
        &["tls.cert_file", &display(&garbage), "no PEM certificate"],
    )
    .await;

    let mut config = pki.config();
    config.tls.key_file = garbage.clone();
    start_error(
        config,
        &["tls.key_file", &display(&garbage), "no PEM private key"],
    )
    .await;

    // A certificate where the key should be, and a key where the certificates should be.
    let mut config = pki.config();
    config.tls.key_file = pki.path("server.pem");
    start_error(config, &["tls.key_file", "no PEM private key"]).await;
    let mut config = pki.verifying_config(false);
    config.tls.ca_file = pki.path("server.key");
    start_error(config, &["tls.ca_file", "no PEM certificate"]).await;

    // A PEM block whose base64 is broken.
    let broken = pki.write(
        "broken.pem",
        "-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n",
    );
    let mut config = pki.config();
    config.tls.cert_file = broken.clone();
    start_error(config, &["tls.cert_file", &display(&broken), "PEM"]).await;
}

#[tokio::test]
async fn a_key_that_does_not_match_the_certificate_is_named() {
    let pki = Pki::new();
    let other_key = pki.write("other.key", &KeyPair::generate().unwrap().serialize_pem());
    let mut config = pki.config();
    config.tls.key_file = other_key.clone();
    start_error(
        config,
        &[
            "tls.key_file",
            &display(&other_key),
            "does not match",
            &display(&pki.path("server.pem")),
        ],
    )
    .await;
}

#[tokio::test]
async fn a_tls_listener_needs_a_certificate_and_key() {
    let pki = Pki::new();
    let mut config = pki.config();
    config.tls.cert_file = PathBuf::new();
    start_error(config, &["tls.listen", "tls.cert_file"]).await;
    let mut config = pki.config();
    config.tls.key_file = PathBuf::new();
    start_error(config, &["tls.listen", "tls.key_file"]).await;
    let mut config = pki.config();
    config.tls.verify_peer = true;
    start_error(config, &["tls.verify_peer", "tls.ca_file"]).await;
    let mut config = pki.config();
    config.tls.listen = "not an address".into();
    start_error(config, &["tls.listen", "not an address"]).await;
}

#[tokio::test]
async fn no_tls_listener_by_default() {
    let pki = Pki::new();
    let mut config = Config::default();
    config.amqp.listen = "127.0.0.1:0".parse().unwrap();
    config.mgmt.listen = "127.0.0.1:0".into();
    config.prometheus.listen = "127.0.0.1:0".into();
    config.storage.dir = pki.dir.join("data");
    let server = start(config).await;
    assert_eq!(server.tls_addr, None);
    server.shutdown().await;
}

// --- back-pressure --------------------------------------------------------------------------

/// Many large deliveries to a TLS consumer: the writer fills the socket, so tokio-rustls
/// keeps records buffered that only a flush sends; every message must still arrive.
#[tokio::test]
async fn a_large_backlog_arrives_whole_over_tls() {
    let pki = Pki::new();
    let server = start(pki.config()).await;
    let conn = within("TLS connect", lapin_connect(&server, &pki, None))
        .await
        .unwrap();
    let ch = conn.create_channel().await.unwrap();
    let q = ch
        .queue_declare(
            "".into(),
            QueueDeclareOptions {
                exclusive: true,
                ..Default::default()
            },
            LapinTable::default(),
        )
        .await
        .unwrap();
    const N: usize = 48;
    let payload = vec![7u8; 300_000];
    for _ in 0..N {
        ch.basic_publish(
            "".into(),
            q.name().as_str().into(),
            BasicPublishOptions::default(),
            &payload,
            BasicProperties::default(),
        )
        .await
        .unwrap();
    }
    let consumer = ch
        .basic_consume(
            q.name().clone(),
            "".into(),
            BasicConsumeOptions {
                no_ack: true,
                ..Default::default()
            },
            LapinTable::default(),
        )
        .await
        .unwrap();
    let mut deliveries = Deliveries::new(consumer);
    for _ in 0..N {
        assert_eq!(deliveries.next().await.data.len(), payload.len());
    }
    server.shutdown().await;
}

/// SASL EXTERNAL (rabbitmq_auth_mechanism_ssl): the verified certificate's CN names the
/// user, who needs no password; a CN naming no user is refused.
#[tokio::test]
async fn external_logs_in_the_user_named_by_the_certificate() {
    use warren::broker::admin::Credential;
    use warren::store::definitions::PermissionDef;
    let pki = Pki::new();
    let server = start(pki.verifying_config(true)).await;
    let port = server.tls_addr.unwrap().port();
    let url = format!("amqps://localhost:{port}/%2f?auth_mechanism=external");
    let identity = Some((pki.client_cert_pem.as_str(), pki.client_key_pem.as_str()));

    // No user 'alice' yet: refused.
    let refused = within("EXTERNAL refused", lapin_connect_url(&url, &pki, identity)).await;
    assert!(refused.is_err(), "a CN naming no user must not log in");

    server
        .broker
        .put_user("alice", Credential::None, vec![])
        .unwrap();
    server
        .broker
        .set_permissions(PermissionDef {
            user: "alice".into(),
            vhost: "/".into(),
            configure: ".*".into(),
            write: ".*".into(),
            read: ".*".into(),
        })
        .unwrap();
    let conn = within("EXTERNAL login", lapin_connect_url(&url, &pki, identity))
        .await
        .expect("the certificate's CN logs in as alice");
    within("round trip", round_trip(&conn)).await;

    // alice has no password: PLAIN cannot log in as her, whatever the password.
    let plain = format!("amqps://alice:@localhost:{port}/%2f");
    assert!(
        within("PLAIN refused", lapin_connect_url(&plain, &pki, identity))
            .await
            .is_err()
    );
    server.shutdown().await;
}
