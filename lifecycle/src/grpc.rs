//! Optional TLS for gRPC between the services, the same three settings everywhere:
//!
//! - `GRPC_TLS_CERT` + `GRPC_TLS_KEY`: this service's certificate (PEM). A service that serves gRPC
//!   serves it over TLS; as a client it presents it to servers that ask for one.
//! - `GRPC_TLS_CA`: the CA that signed the peers' certificates. With it, this service's clients
//!   connect with TLS (`host:port` becomes `https://host:port`) and verify the server's name.
//! - `GRPC_TLS_CLIENT_AUTH=true`: servers accept only clients with a certificate from that CA.
//!
//! Nothing set: plain gRPC, as on one machine or inside a private network.

use std::fmt;

use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity, Server, ServerTlsConfig};

use crate::nats::existing_file;
use crate::{Env, EnvError};

#[derive(Clone, Default)]
pub struct GrpcTls {
    /// This service's certificate and key, PEM.
    identity: Option<(Vec<u8>, Vec<u8>)>,
    ca: Option<Vec<u8>>,
    client_auth: bool,
}

impl fmt::Debug for GrpcTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GrpcTls")
            .field("serves_tls", &self.identity.is_some())
            .field("connects_with_tls", &self.ca.is_some())
            .field("client_auth", &self.client_auth)
            .finish()
    }
}

impl GrpcTls {
    pub fn from_env(env: &Env) -> Result<Self, EnvError> {
        let read = |name: &str| -> Result<Option<Vec<u8>>, EnvError> {
            existing_file(env, name)?
                .map(|path| {
                    std::fs::read(&path).map_err(|e| EnvError::Invalid {
                        name: name.into(),
                        value: path.display().to_string(),
                        reason: e.to_string(),
                    })
                })
                .transpose()
        };
        let identity = match (read("GRPC_TLS_CERT")?, read("GRPC_TLS_KEY")?) {
            (Some(cert), Some(key)) => Some((cert, key)),
            (None, None) => None,
            _ => {
                return Err(EnvError::Missing {
                    name: "GRPC_TLS_CERT and GRPC_TLS_KEY (both or neither)".into(),
                });
            }
        };
        let ca = read("GRPC_TLS_CA")?;
        let client_auth = env.bool("GRPC_TLS_CLIENT_AUTH", false)?;
        if client_auth && ca.is_none() {
            return Err(EnvError::Missing {
                name: "GRPC_TLS_CA (GRPC_TLS_CLIENT_AUTH needs the CA clients are checked against)"
                    .into(),
            });
        }
        Ok(Self {
            identity,
            ca,
            client_auth,
        })
    }

    /// A gRPC server builder, with TLS when this service has a certificate.
    pub fn server(&self) -> Result<Server, tonic::transport::Error> {
        let builder = Server::builder();
        let Some((cert, key)) = &self.identity else {
            return Ok(builder);
        };
        let mut tls = ServerTlsConfig::new().identity(Identity::from_pem(cert, key));
        if self.client_auth
            && let Some(ca) = &self.ca
        {
            tls = tls.client_ca_root(Certificate::from_pem(ca));
        }
        builder.tls_config(tls)
    }

    /// How this service's clients connect: TLS when a CA is configured.
    pub fn client(&self) -> Option<ClientTlsConfig> {
        let ca = self.ca.as_ref()?;
        let mut tls = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(ca));
        if let Some((cert, key)) = &self.identity {
            tls = tls.identity(Identity::from_pem(cert, key));
        }
        Some(tls)
    }

    /// A lazily connected channel to a peer service, with TLS when configured.
    pub fn channel(&self, address: &str) -> Result<Channel, tonic::transport::Error> {
        proto::clients::secure_channel(address, self.client().as_ref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const THIS_FILE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/src/grpc.rs");

    #[test]
    fn nothing_set_is_plain_grpc() {
        let tls = GrpcTls::from_env(&Env::default()).unwrap();
        assert!(tls.client().is_none());
        assert!(tls.identity.is_none());
    }

    #[test]
    fn half_an_identity_or_client_auth_without_a_ca_is_refused_by_name() {
        let error = GrpcTls::from_env(&Env::from_map([("GRPC_TLS_CERT", THIS_FILE)]))
            .unwrap_err()
            .to_string();
        assert!(error.contains("GRPC_TLS_KEY"), "{error}");
        let error = GrpcTls::from_env(&Env::from_map([("GRPC_TLS_CLIENT_AUTH", "true")]))
            .unwrap_err()
            .to_string();
        assert!(error.contains("GRPC_TLS_CA"), "{error}");
        let error = GrpcTls::from_env(&Env::from_map([("GRPC_TLS_CA", "/nonexistent.pem")]))
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("GRPC_TLS_CA=\"/nonexistent.pem\""),
            "{error}"
        );
    }

    #[test]
    fn debug_shows_no_key_material() {
        let tls = GrpcTls::from_env(&Env::from_map([
            ("GRPC_TLS_CERT", THIS_FILE),
            ("GRPC_TLS_KEY", THIS_FILE),
            ("GRPC_TLS_CA", THIS_FILE),
        ]))
        .unwrap();
        let shown = format!("{tls:?}");
        assert!(!shown.contains("GrpcTls::from_env"), "{shown}");
        assert!(shown.contains("serves_tls: true"), "{shown}");
    }
}
