//! The stream protocol's TLS listener (`stream.tls_listen`, RabbitMQ's 5551): the
//! handshake over rustls with the amqps listener's certificate, open and metadata
//! advertising the TLS port (`stream.advertised_tls_port`, else the bound one), publish
//! and a delivered chunk (read and encrypted, not sendfile'd), and the management API
//! showing the connection with `ssl: true`. Certificates are made here with rcgen.

mod common;

use common::stream_raw::{StreamConn, amqp_message, chunk_entries};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, ServerName};
use std::path::PathBuf;
use std::sync::Arc;
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use warren::protocol::stream::{
    ClientCommand, Entry, OffsetSpec, Publish, PublishedMessage, ServerCommand, Str, code,
};

/// A CA and a server certificate for localhost / 127.0.0.1, written to a directory.
struct Pki {
    dir: PathBuf,
    ca_pem: String,
}

impl Pki {
    fn new() -> Pki {
        let dir = std::env::temp_dir().join(format!("warren-stream-tls-{}", common::unique()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "Warren stream test CA");
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        let mut params =
            CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, "localhost");
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &ca).unwrap();
        std::fs::write(dir.join("server.pem"), cert.pem()).unwrap();
        std::fs::write(dir.join("server.key"), key.serialize_pem()).unwrap();
        Pki {
            dir,
            ca_pem: ca.pem(),
        }
    }

    fn client(&self) -> tokio_rustls::TlsConnector {
        use rustls::pki_types::pem::PemObject;
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(CertificateDer::from_pem_slice(self.ca_pem.as_bytes()).unwrap())
            .unwrap();
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
        tokio_rustls::TlsConnector::from(Arc::new(config))
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

async fn tls_connect(pki: &Pki, addr: std::net::SocketAddr) -> StreamConn<TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let tls = pki
        .client()
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .expect("the TLS handshake succeeds");
    StreamConn::new(tls)
}

fn advertised_port(props: &[(Str, Str)]) -> String {
    props
        .iter()
        .find(|(k, _)| k == "advertised_port")
        .map(|(_, v)| v.to_string())
        .expect("advertised_port")
}

#[tokio::test]
async fn the_tls_listener_serves_the_stream_protocol_and_advertises_its_port() {
    let pki = Pki::new();
    let (dir, cert, key) = (
        pki.dir.clone(),
        pki.dir.join("server.pem"),
        pki.dir.join("server.key"),
    );
    let broker = common::TestBroker::start_warren_with(move |c| {
        c.storage.dir = dir.join("data");
        c.stream.listen = "127.0.0.1:0".into();
        c.stream.tls_listen = "127.0.0.1:0".into();
        c.tls.cert_file = cert;
        c.tls.key_file = key;
    })
    .await;
    let server = broker.server().unwrap();
    let (plain, tls) = (server.stream_addr.unwrap(), server.stream_tls_addr.unwrap());
    assert_ne!(plain.port(), tls.port());

    let mut c = tls_connect(&pki, tls).await;
    let opened = c.open_guest("sc-tls").await;
    assert_eq!(advertised_port(&opened.properties), tls.port().to_string());
    let stream = format!("sc-tls-{}", common::unique());
    let s = Str::from(stream.as_str());
    let created = c
        .call(|id| ClientCommand::Create {
            correlation_id: id,
            stream: s.clone(),
            arguments: vec![],
        })
        .await;
    assert_eq!(created, code::OK);
    // Metadata points at the TLS port too.
    let id = c.id();
    c.send(ClientCommand::Metadata {
        correlation_id: id,
        streams: vec![s.clone()],
    })
    .await;
    match c.recv().await {
        Some(ServerCommand::MetadataResponse { brokers, .. }) => {
            assert_eq!(brokers[0].port, u32::from(tls.port()))
        }
        other => panic!("{other:?}"),
    }
    // Publish, confirm, and a chunk delivered through the encryption.
    let declared = c
        .call(|id| ClientCommand::DeclarePublisher {
            correlation_id: id,
            publisher_id: 1,
            reference: Str::default(),
            stream: s.clone(),
        })
        .await;
    assert_eq!(declared, code::OK);
    let messages: Vec<_> = (1..=3u64)
        .map(|i| PublishedMessage {
            publishing_id: i,
            filter_value: None,
            entry: Entry::Simple(amqp_message(format!("t{i}").as_bytes())),
        })
        .collect();
    c.send(ClientCommand::Publish(Publish::new(1, 1, &messages)))
        .await;
    let mut confirmed = Vec::new();
    while confirmed.len() < 3 {
        match c.recv().await {
            Some(ServerCommand::PublishConfirm { publishing_ids, .. }) => {
                confirmed.extend(publishing_ids)
            }
            other => panic!("{other:?}"),
        }
    }
    let id = c.id();
    c.send(ClientCommand::Subscribe {
        correlation_id: id,
        subscription_id: 1,
        stream: s.clone(),
        offset: OffsetSpec::First,
        credit: 10,
        properties: vec![],
    })
    .await;
    assert!(matches!(
        c.recv().await,
        Some(ServerCommand::Response { code: 1, .. })
    ));
    let mut bodies = Vec::new();
    while bodies.len() < 3 {
        match c.recv().await {
            Some(ServerCommand::Deliver { chunk, .. }) => {
                let (first, entries) = chunk_entries(&chunk);
                assert_eq!(first, bodies.len() as u64);
                bodies.extend(entries);
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(bodies[0], amqp_message(b"t1"));
    assert_eq!(bodies[2], amqp_message(b"t3"));

    // The management API shows it over TLS.
    let conns = broker.mgmt().json("/stream/connections").await;
    let conn = conns
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["user_provided_name"] == "sc-tls")
        .expect("listed");
    assert_eq!(conn["ssl"], true);
    assert!(
        conn["ssl_protocol"].as_str().unwrap().starts_with("TLSv1."),
        "{conn}"
    );
    assert_eq!(conn["port"], tls.port());

    // The overview lists both listeners, as RabbitMQ names them.
    let overview = broker.mgmt().json("/overview").await;
    let listeners: Vec<(String, u64)> = overview["listeners"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["protocol"].as_str().unwrap().to_string(),
                l["port"].as_u64().unwrap(),
            )
        })
        .collect();
    assert!(
        listeners.contains(&("stream".into(), plain.port().into())),
        "{listeners:?}"
    );
    assert!(
        listeners.contains(&("stream/ssl".into(), tls.port().into())),
        "{listeners:?}"
    );

    // The plain listener still advertises its own port.
    let mut p = StreamConn::new(TcpStream::connect(plain).await.unwrap());
    let opened = p.open_guest("sc-plain").await;
    assert_eq!(
        advertised_port(&opened.properties),
        plain.port().to_string()
    );
}

#[tokio::test]
async fn advertised_tls_port_is_what_tls_clients_are_told() {
    let pki = Pki::new();
    let (dir, cert, key) = (
        pki.dir.clone(),
        pki.dir.join("server.pem"),
        pki.dir.join("server.key"),
    );
    let broker = common::TestBroker::start_warren_with(move |c| {
        c.storage.dir = dir.join("data");
        c.stream.tls_listen = "127.0.0.1:0".into();
        c.stream.advertised_tls_port = 5551;
        c.stream.advertised_port = 5552;
        c.tls.cert_file = cert;
        c.tls.key_file = key;
    })
    .await;
    let server = broker.server().unwrap();
    assert!(server.stream_addr.is_none(), "no plain stream listener");
    let mut c = tls_connect(&pki, server.stream_tls_addr.unwrap()).await;
    let opened = c.open_guest("sc-tls-adv").await;
    assert_eq!(advertised_port(&opened.properties), "5551");
}

#[test]
fn the_tls_listener_needs_the_tls_certificate() {
    let mut config = warren::config::Config::default();
    config.stream.tls_listen = "127.0.0.1:0".into();
    let err = config.validate().expect_err("no certificate set");
    assert!(err.to_string().contains("tls.cert_file"), "{err}");
}
