//! A test certificate authority and a TLS server configuration whose certificate it signed, for
//! the local https servers of the network and kubectl tests (the client trusts `ca_pem`).

use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};

/// A CA made for one test and a server configuration for `host`, its certificate signed by it.
pub(crate) struct TestCa {
    /// The CA's certificate, PEM: what the client is told to trust.
    pub ca_pem: String,
    pub server_config: Arc<rustls::ServerConfig>,
}

impl TestCa {
    /// A CA named `common_name`, and a server certificate for `host` (a name or an IP address)
    /// sent with the CA's certificate.
    pub(crate) fn new(common_name: &str, host: &str) -> Self {
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, common_name);
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
        let leaf_key = KeyPair::generate().unwrap();
        let leaf = CertificateParams::new(vec![host.to_string()])
            .unwrap()
            .signed_by(&leaf_key, &ca)
            .unwrap();
        let _ = rustls::crypto::ring::default_provider().install_default();
        let key = rustls::pki_types::PrivateKeyDer::try_from(leaf_key.serialize_der()).unwrap();
        let config = rustls::ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(vec![leaf.der().clone(), ca.der().clone()], key)
            .unwrap();
        TestCa {
            ca_pem: ca.pem(),
            server_config: Arc::new(config),
        }
    }
}
