//! How a client reaches the server: `ws://` as plain TCP, `wss://` over
//! rustls, trusting the system's roots and any certificates the caller adds
//! (a private CA, or a self-signed server's own certificate).

use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::rustls::{self, pki_types};
use tokio_tungstenite::WebSocketStream;

/// A byte stream the WebSocket runs over.
pub(crate) trait Transport: AsyncRead + AsyncWrite + Unpin + Send + 'static {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> Transport for T {}

/// Opens the WebSocket `url` names; `extra_roots_pem` holds PEM certificates to trust besides the system's.
pub(crate) async fn open(url: &str, extra_roots_pem: Option<&[u8]>) -> Result<WebSocketStream<Box<dyn Transport>>, String> {
    let (secure, rest) = match url.split_once("://") {
        Some(("ws", rest)) => (false, rest),
        Some(("wss", rest)) => (true, rest),
        _ => return Err("the server URL must start with ws:// or wss://".into()),
    };
    let authority = rest.split(['/', '?']).next().unwrap_or_default();
    let (host, port) = split_authority(authority, if secure { 443 } else { 80 })?;
    let tcp = TcpStream::connect((host.as_str(), port)).await.map_err(|e| e.to_string())?;
    let _ = tcp.set_nodelay(true);
    let stream: Box<dyn Transport> = if secure {
        let connector = tokio_rustls::TlsConnector::from(Arc::new(client_config(extra_roots_pem)?));
        let name = pki_types::ServerName::try_from(host.clone()).map_err(|e| format!("`{host}` is not a server name: {e}"))?;
        Box::new(connector.connect(name, tcp).await.map_err(|e| format!("TLS: {e}"))?)
    } else {
        Box::new(tcp)
    };
    let (socket, _) = tokio_tungstenite::client_async(url, stream).await.map_err(|e| e.to_string())?;
    Ok(socket)
}

/// `host[:port]` or `[v6]:port`, with the scheme's port when none is given.
fn split_authority(authority: &str, default_port: u16) -> Result<(String, u16), String> {
    let bad = || format!("`{authority}` is not host:port");
    let (host, port) = match authority.strip_prefix('[') {
        Some(v6) => {
            let (host, rest) = v6.split_once(']').ok_or_else(bad)?;
            (host, rest.strip_prefix(':'))
        }
        None => match authority.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        },
    };
    let port = port.map_or(Ok(default_port), |p| p.parse().map_err(|_| bad()))?;
    if host.is_empty() {
        return Err(bad());
    }
    Ok((host.to_string(), port))
}

fn client_config(extra_roots_pem: Option<&[u8]>) -> Result<rustls::ClientConfig, String> {
    use pki_types::pem::PemObject as _;
    let mut roots = rustls::RootCertStore::empty();
    // Unreadable system certificates are skipped: the added ones may be all that is needed.
    for certificate in rustls_native_certs::load_native_certs().certs {
        let _ = roots.add(certificate);
    }
    if let Some(pem) = extra_roots_pem {
        let certificates: Vec<_> =
            pki_types::CertificateDer::pem_slice_iter(pem).collect::<Result<_, _>>().map_err(|e| format!("the CA certificate file: {e}"))?;
        if certificates.is_empty() {
            return Err("the CA certificate file holds no PEM certificate".into());
        }
        for certificate in certificates {
            roots.add(certificate).map_err(|e| format!("the CA certificate file: {e}"))?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

#[cfg(test)]
mod tests {
    use super::split_authority;

    #[test]
    fn authorities_split_into_host_and_port() {
        assert_eq!(split_authority("example.com", 443).unwrap(), ("example.com".into(), 443));
        assert_eq!(split_authority("127.0.0.1:8080", 80).unwrap(), ("127.0.0.1".into(), 8080));
        assert_eq!(split_authority("[::1]:9", 80).unwrap(), ("::1".into(), 9));
        assert!(split_authority("host:port", 80).is_err());
        assert!(split_authority(":80", 80).is_err());
    }
}
