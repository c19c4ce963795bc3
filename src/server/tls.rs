//! The `amqps` transport: the rustls server configuration built from `[tls]`, and what a TLS
//! connection tells the handshake about its peer.
//!
//! The crypto provider is rustls' `ring` one, named explicitly: it builds with a C compiler
//! alone (aws-lc-rs needs cmake), and naming it keeps the choice independent of the
//! features other crates turn on in rustls (lapin's, in the tests, enable aws-lc-rs too,
//! and rustls refuses to pick a process default when both are compiled in).

use crate::config::TlsConfig;
use rustls::ServerConfig;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ServerConnection, WebPkiClientVerifier};
use std::io;
use std::path::Path;
use std::sync::Arc;
use tokio_rustls::TlsAcceptor;

/// What a TLS connection knows of its client, for the AMQP handshake.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct TlsPeer {
    /// The client's certificate (end entity, DER), verified against `tls.ca_file`; `None`
    /// when the client presented none.
    pub cert: Option<CertificateDer<'static>>,
    /// The certificate's subject distinguished name, as x509-parser prints it
    /// ("CN=alice, O=Example").
    pub subject_dn: Option<String>,
    /// The first common name (CN) of the certificate's subject.
    pub subject_cn: Option<String>,
    /// "TLSv1.2" or "TLSv1.3".
    pub protocol: Option<String>,
}

impl TlsPeer {
    /// The peer of an established TLS connection.
    pub fn of(conn: &ServerConnection) -> TlsPeer {
        let cert = conn
            .peer_certificates()
            .and_then(|chain| chain.first())
            .cloned();
        let (subject_dn, subject_cn) = match cert.as_deref().and_then(subject) {
            Some((dn, cn)) => (Some(dn), cn),
            None => (None, None),
        };
        TlsPeer {
            cert,
            subject_dn,
            subject_cn,
            protocol: conn
                .protocol_version()
                .and_then(|v| v.as_str())
                .map(|v| v.replace("TLSv1_", "TLSv1.")),
        }
    }

    /// The client presented a certificate (and, since the handshake completed, it verified).
    pub fn has_cert(&self) -> bool {
        self.cert.is_some()
    }
}

/// The subject distinguished name of a DER certificate and its first common name, or
/// `None` if the certificate does not parse.
pub(crate) fn subject(der: &[u8]) -> Option<(String, Option<String>)> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let subject = cert.subject();
    let cn = subject
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .map(str::to_string);
    Some((subject.to_string(), cn))
}

/// The provider every TLS object of Warren uses.
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn error(kind: io::ErrorKind, message: String) -> io::Error {
    io::Error::new(kind, message)
}

fn read(key: &str, path: &Path) -> io::Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| {
        error(
            e.kind(),
            format!("{key} {}: cannot read the file: {e}", path.display()),
        )
    })
}

/// Every certificate in the PEM file `path` (the `key` setting), at least one.
fn certificates(key: &str, path: &Path) -> io::Result<Vec<CertificateDer<'static>>> {
    let pem = read(key, path)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| {
            error(
                io::ErrorKind::InvalidData,
                format!("{key} {}: not a valid PEM file: {e}", path.display()),
            )
        })?;
    if certs.is_empty() {
        return Err(error(
            io::ErrorKind::InvalidData,
            format!(
                "{key} {}: no PEM certificate (\"-----BEGIN CERTIFICATE-----\") in the file",
                path.display()
            ),
        ));
    }
    Ok(certs)
}

fn private_key(key: &str, path: &Path) -> io::Result<PrivateKeyDer<'static>> {
    let pem = read(key, path)?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|e| {
        let problem = match e {
            rustls::pki_types::pem::Error::NoItemsFound => {
                "no PEM private key (\"-----BEGIN PRIVATE KEY-----\", \"RSA PRIVATE KEY\" or \"EC PRIVATE KEY\") in the file".to_string()
            }
            e => format!("not a valid PEM private key: {e}"),
        };
        error(
            io::ErrorKind::InvalidData,
            format!("{key} {}: {problem}", path.display()),
        )
    })
}

/// Builds the TLS acceptor from `[tls]`: reads and checks the certificate, key and CA files.
/// Every error names the setting, the file and the problem.
pub(crate) fn acceptor(cfg: &TlsConfig) -> io::Result<TlsAcceptor> {
    let invalid = |m: String| error(io::ErrorKind::InvalidInput, m);
    for (key, path) in [
        ("tls.cert_file", &cfg.cert_file),
        ("tls.key_file", &cfg.key_file),
    ] {
        if path.as_os_str().is_empty() {
            return Err(invalid(format!(
                "tls.listen is set but {key} is not: the TLS listener needs a certificate and its key"
            )));
        }
    }
    let certs = certificates("tls.cert_file", &cfg.cert_file)?;
    let key = private_key("tls.key_file", &cfg.key_file)?;
    let ca = if cfg.ca_file.as_os_str().is_empty() {
        None
    } else {
        Some(certificates("tls.ca_file", &cfg.ca_file)?)
    };
    let provider = provider();
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| invalid(format!("TLS: {e}")))?;
    let builder = if cfg.verify_peer {
        let Some(ca) = ca else {
            return Err(invalid(
                "tls.verify_peer is true but tls.ca_file is not set: client certificates are verified against it".to_string(),
            ));
        };
        let mut roots = rustls::RootCertStore::empty();
        for cert in ca {
            roots.add(cert).map_err(|e| {
                error(
                    io::ErrorKind::InvalidData,
                    format!(
                        "tls.ca_file {}: not a usable CA certificate: {e}",
                        cfg.ca_file.display()
                    ),
                )
            })?;
        }
        let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
        let verifier = if cfg.fail_if_no_peer_cert {
            verifier
        } else {
            verifier.allow_unauthenticated()
        };
        let verifier = verifier.build().map_err(|e| {
            invalid(format!(
                "tls.ca_file {}: cannot verify client certificates with it: {e}",
                cfg.ca_file.display()
            ))
        })?;
        builder.with_client_cert_verifier(verifier)
    } else {
        builder.with_no_client_auth()
    };
    let config = builder.with_single_cert(certs, key).map_err(|e| match e {
        rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch) => invalid(format!(
            "tls.key_file {} does not match the certificate in tls.cert_file {}",
            cfg.key_file.display(),
            cfg.cert_file.display()
        )),
        e => invalid(format!(
            "tls.cert_file {} with tls.key_file {}: {e}",
            cfg.cert_file.display(),
            cfg.key_file.display()
        )),
    })?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subject_of_a_certificate() {
        let mut params = rcgen::CertificateParams::new(vec!["localhost".into()]).unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(rcgen::DnType::OrganizationName, "Example");
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "alice");
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        let (dn, cn) = subject(cert.der()).unwrap();
        assert_eq!(cn.as_deref(), Some("alice"));
        assert!(dn.contains("CN=alice") && dn.contains("O=Example"), "{dn}");
        assert_eq!(subject(b"not a certificate"), None);
    }

    #[test]
    fn subject_without_a_common_name() {
        let mut params = rcgen::CertificateParams::new(vec!["localhost".into()]).unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(rcgen::DnType::OrganizationName, "Example");
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        let (dn, cn) = subject(cert.der()).unwrap();
        assert_eq!(cn, None);
        assert_eq!(dn, "O=Example");
    }
}
