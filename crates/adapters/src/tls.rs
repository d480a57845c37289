//! The certificate authorities the functions trust, for the AWS SDK's HTTPS client and the
//! PeekShot client alike: Mozilla's root store, compiled into the binary
//! (`webpki-root-certs`).
//!
//! The default clients each read the system's store at start-up (`rustls-native-certs` for the
//! SDK, `rustls-platform-verifier` for reqwest): a bundle file and then every file of the
//! certificate directory, once per client, before the function can take its first event.
//! Compiled-in roots cost no file system access and are the same on every machine.
//! docs/performance.md has the measured difference.
//!
//! What this gives up: a CA that was added to a machine's store and not to Mozilla's (a
//! company's TLS-inspecting proxy, say) is not trusted, and the roots are as current as the
//! build. AWS's endpoints and PeekShot's API use public CAs, which Mozilla's store holds. A
//! deployment behind such a proxy sets `TLS_ROOTS=system` and gets the default clients, which
//! read the machine's store.

use aws_smithy_http_client::tls::{self, TlsContext, TrustStore, rustls_provider::CryptoMode};
use aws_smithy_runtime_api::client::http::SharedHttpClient;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use crate::config::{ConfigError, Env};

/// Which certificate authorities the HTTPS clients trust (`TLS_ROOTS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TlsRoots {
    /// Mozilla's store, compiled in (`bundled`, the default).
    #[default]
    Bundled,
    /// The machine's store, read at start-up (`system`).
    System,
}

impl TlsRoots {
    /// Reads `TLS_ROOTS`: `bundled` (or unset) or `system`.
    pub fn from_env(env: &impl Env) -> Result<Self, ConfigError> {
        match env.var("TLS_ROOTS").as_deref().map(str::trim) {
            None | Some("bundled") => Ok(Self::Bundled),
            Some("system") => Ok(Self::System),
            Some(other) => Err(ConfigError::Invalid {
                name: "TLS_ROOTS",
                reason: format!("{other:?} is neither \"bundled\" nor \"system\""),
            }),
        }
    }
}

/// Why a TLS client could not be set up.
#[derive(Debug, thiserror::Error)]
#[error("cannot set up TLS with the compiled-in root certificates: {0}")]
pub struct TlsError(String);

/// The AWS SDK's HTTPS client (rustls with aws-lc, as the SDK's default) over `roots`.
pub fn aws_http_client(roots: TlsRoots) -> Result<SharedHttpClient, TlsError> {
    let store = match roots {
        TlsRoots::System => TrustStore::default(),
        TlsRoots::Bundled => TrustStore::empty()
            .with_native_roots(false)
            .with_pem_certificate(roots_as_pem()),
    };
    let context = TlsContext::builder()
        .with_trust_store(store)
        .build()
        .map_err(|e| TlsError(e.to_string()))?;
    Ok(aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(CryptoMode::AwsLc))
        .tls_context(context)
        .build_https())
}

/// A reqwest client builder that trusts `roots`.
pub fn reqwest_builder(roots: TlsRoots) -> Result<reqwest::ClientBuilder, TlsError> {
    let builder = reqwest::Client::builder();
    match roots {
        TlsRoots::System => Ok(builder),
        TlsRoots::Bundled => {
            let certificates = webpki_root_certs::TLS_SERVER_ROOT_CERTS
                .iter()
                .map(|der| reqwest::Certificate::from_der(der).map_err(|e| TlsError(e.to_string())))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(builder.tls_certs_only(certificates))
        }
    }
}

/// Every root as one PEM text, the only form the SDK's trust store takes.
fn roots_as_pem() -> String {
    let mut pem = String::with_capacity(webpki_root_certs::TLS_SERVER_ROOT_CERTS.len() * 2048);
    for der in webpki_root_certs::TLS_SERVER_ROOT_CERTS {
        pem.push_str("-----BEGIN CERTIFICATE-----\n");
        let encoded = STANDARD.encode(der.as_ref());
        for line in encoded.as_bytes().chunks(64) {
            pem.push_str(std::str::from_utf8(line).unwrap_or_default());
            pem.push('\n');
        }
        pem.push_str("-----END CERTIFICATE-----\n");
    }
    pem
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_compiled_in_root_survives_the_trip_through_pem() {
        let pem = roots_as_pem();
        let parsed: Vec<Vec<u8>> = pem
            .split("-----END CERTIFICATE-----\n")
            .filter(|block| !block.trim().is_empty())
            .map(|block| {
                let body: String = block
                    .lines()
                    .filter(|line| !line.starts_with("-----"))
                    .collect();
                STANDARD.decode(body).expect("base64")
            })
            .collect();
        let roots: Vec<&[u8]> = webpki_root_certs::TLS_SERVER_ROOT_CERTS
            .iter()
            .map(|der| der.as_ref())
            .collect();
        assert!(roots.len() > 100, "Mozilla's store has well over 100 roots");
        assert_eq!(parsed, roots);
    }

    /// The SDK turns the PEM into rustls roots only at its first connection, and panics there
    /// on a certificate it cannot parse; this does the same parse now.
    #[test]
    fn every_compiled_in_root_is_a_root_rustls_accepts() {
        use rustls::pki_types::CertificateDer;
        use rustls::pki_types::pem::PemObject;

        let mut store = rustls::RootCertStore::empty();
        for der in CertificateDer::pem_slice_iter(roots_as_pem().as_bytes()) {
            store
                .add(der.expect("valid PEM"))
                .expect("a root rustls accepts");
        }
        assert_eq!(store.len(), webpki_root_certs::TLS_SERVER_ROOT_CERTS.len());
    }

    #[test]
    fn both_clients_build_over_either_store() {
        for roots in [TlsRoots::Bundled, TlsRoots::System] {
            aws_http_client(roots).expect("the SDK's client");
            reqwest_builder(roots)
                .and_then(|b| b.build().map_err(|e| TlsError(e.to_string())))
                .expect("reqwest's client");
        }
    }

    #[test]
    fn tls_roots_are_bundled_unless_the_system_store_is_asked_for() {
        let env =
            |value: &'static str| move |name: &str| (name == "TLS_ROOTS").then(|| value.to_owned());
        assert_eq!(TlsRoots::from_env(&env("")).unwrap(), TlsRoots::Bundled);
        assert_eq!(
            TlsRoots::from_env(&env("bundled")).unwrap(),
            TlsRoots::Bundled
        );
        assert_eq!(
            TlsRoots::from_env(&env("system")).unwrap(),
            TlsRoots::System
        );
        let err = TlsRoots::from_env(&env("native")).unwrap_err();
        assert!(err.to_string().contains("TLS_ROOTS"), "{err}");
    }
}
