//! The client's trust in the certificates given with `--ca-cert`.
//!
//! They are trusted as roots, beside the system's. One exception to the
//! usual rules: a server that presents exactly one of these certificates
//! is accepted even when that certificate is marked as a CA. That is what
//! `openssl req -x509` makes by default, the usual way to make a
//! self-signed certificate. webpki refuses a CA certificate as a server's
//! own (`CaUsedAsEndEntity`), where curl and OpenSSL accept it as its own
//! trust anchor. Its dates and its name are checked all the same; its
//! extended key usage is not (webpki stops at the CA flag before it), which
//! only matters for a certificate the user named and whose key the server
//! proves it holds.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, Error as TlsError, SignatureScheme};

/// A client configuration that trusts the certificates of `pem` (one or
/// more PEM `CERTIFICATE` blocks) beside the system's roots. `Err`: the
/// reason, for a message about the file.
pub(crate) fn client_config(pem: &[u8]) -> Result<ClientConfig, String> {
    let pinned = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("not a PEM certificate: {e}"))?;
    if pinned.is_empty() {
        return Err("no PEM certificate in it".into());
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let inner = rustls_platform_verifier::Verifier::new_with_extra_roots(pinned.iter().cloned(), provider.clone())
        .map_err(|e| format!("not a usable certificate: {e}"))?;
    let verifier = Pinned { pinned, inner, provider: provider.clone() };
    Ok(ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth())
}

/// What a request that failed because the server's certificate was
/// refused should say, if that is why `e` failed.
pub(crate) fn refusal(e: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut cur = Some(e);
    while let Some(err) = cur {
        // rustls' error travels inside io::Errors, whose `source` skips
        // what they wrap: step into them instead.
        cur = match err.downcast_ref::<std::io::Error>().and_then(|io| io.get_ref()) {
            Some(inner) => Some(inner as &(dyn std::error::Error + 'static)),
            None => err.source(),
        };
        let found = err.downcast_ref::<TlsError>();
        if let Some(TlsError::InvalidCertificate(why)) = found {
            let why = match why {
                CertificateError::UnknownIssuer => "signed by an authority this machine does not trust".to_owned(),
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                    "made for another name than the URL's host".to_owned()
                }
                CertificateError::Expired | CertificateError::ExpiredContext { .. } => "expired".to_owned(),
                CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                    "not valid yet".to_owned()
                }
                e if ca_as_end_entity(e) => "a CA certificate presented as the server's own".to_owned(),
                other => format!("{other:?}"),
            };
            return Some(format!(
                "the server's certificate is not trusted ({why}); give it, or the CA that signed it, with --ca-cert FILE"
            ));
        }
    }
    None
}

/// The platform's verifier, plus the exception for the pinned certificates.
#[derive(Debug)]
struct Pinned {
    pinned: Vec<CertificateDer<'static>>,
    inner: rustls_platform_verifier::Verifier,
    provider: Arc<CryptoProvider>,
}

/// Whether `e` is webpki's refusal of a CA certificate as a server's own.
fn ca_as_end_entity(e: &CertificateError) -> bool {
    matches!(e, CertificateError::Other(other)
        if matches!(other.0.downcast_ref::<webpki::Error>(), Some(webpki::Error::CaUsedAsEndEntity)))
}

impl ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, TlsError> {
        match self.inner.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now) {
            // webpki checks the dates before the CA flag, so they are
            // good here; the name is checked below.
            Err(TlsError::InvalidCertificate(e))
                if ca_as_end_entity(&e) && self.pinned.iter().any(|c| c.as_ref() == end_entity.as_ref()) =>
            {
                let parsed = rustls::server::ParsedCertificate::try_from(end_entity)?;
                rustls::client::verify_server_name(&parsed, server_name)?;
                Ok(ServerCertVerified::assertion())
            }
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, TlsError> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, TlsError> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}
