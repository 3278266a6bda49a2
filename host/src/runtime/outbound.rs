//! The outbound-HTTP policy: which hosts an inferlet's `wasi:http` requests
//! may reach, checked on the address a name resolves to, with caps on
//! requests in flight, response bytes and time.
//!
//! Deny by default. An allowed host is `[scheme://]host[:port]`: the scheme
//! `http`, `https` or `*` (both; the default), a DNS name (`*.example.com`
//! for its subdomains), an IP address or a CIDR range (`10.0.0.0/8`,
//! `[fd00::]/8`), or `*` for every public host; the port a number, `*`, or
//! by default the scheme's own. A name is allowed only if every address it
//! resolves to is public, or in a range allowed by address: so neither a
//! name that points at loopback nor one that changes its answer between
//! the check and the connection (plain http connects to the checked
//! address; https is held to the name by its certificate) reaches the
//! host's own network.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use http_body_util::BodyExt;
use wasmtime_wasi_http::{Error as HttpError, RequestOptions, WasiBody, WasiHttpHooks};

use crate::engine::scheduler::Held;

/// A host rule that does not parse.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("allowed host `{rule}`: {why}")]
pub struct BadRule {
    rule: String,
    why: &'static str,
}

#[derive(Debug, Clone, PartialEq)]
enum Host {
    /// `*`: every public host.
    Any,
    Name(String),
    /// `*.example.com`, held as `.example.com`.
    Subdomains(String),
    Range {
        network: IpAddr,
        prefix: u8,
    },
}

#[derive(Debug, Clone, PartialEq)]
enum Port {
    Any,
    Default,
    Number(u16),
}

/// One allowed host.
#[derive(Debug, Clone, PartialEq)]
pub struct HostRule {
    /// `None`: both http and https.
    scheme: Option<&'static str>,
    host: Host,
    port: Port,
}

impl std::str::FromStr for HostRule {
    type Err = BadRule;

    fn from_str(rule: &str) -> Result<Self, BadRule> {
        let bad = |why| BadRule { rule: rule.to_string(), why };
        let (scheme, rest) = match rule.split_once("://") {
            Some(("http", rest)) => (Some("http"), rest),
            Some(("https", rest)) => (Some("https"), rest),
            Some(("*", rest)) => (None, rest),
            Some(_) => return Err(bad("the scheme must be http, https or *")),
            None => (None, rule),
        };
        // A `/` only starts a range's prefix length.
        if let Some((_, after)) = rest.split_once('/') {
            let length = after.split(':').next().unwrap_or_default();
            if length.is_empty() || !length.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad("a host has no path"));
            }
        }
        // `[v6]`, `[v6]/len`, `[v6]:port`, or `host`, `host:port`, `a.b.c.d/len:port`.
        let (host, port) = if let Some(after) = rest.strip_prefix('[') {
            let (v6, tail) = after.split_once(']').ok_or_else(|| bad("an IPv6 address needs its closing `]`"))?;
            let (length, port) = match tail.split_once(':') {
                Some((length, port)) => (length, Some(port)),
                None => (tail, None),
            };
            (format!("{v6}{length}"), port)
        } else {
            match rest.rsplit_once(':') {
                Some((host, port)) => (host.to_string(), Some(port)),
                None => (rest.to_string(), None),
            }
        };
        let port = match port {
            None => Port::Default,
            Some("*") => Port::Any,
            Some(n) => Port::Number(n.parse().map_err(|_| bad("the port must be a number or *"))?),
        };
        let host = host.to_ascii_lowercase();
        let host = if host == "*" {
            Host::Any
        } else if let Some((address, length)) = host.split_once('/') {
            let network: IpAddr = address.parse().map_err(|_| bad("a range is an IP address, `/`, and a prefix length"))?;
            let prefix: u8 = length.parse().map_err(|_| bad("the prefix length must be a number"))?;
            if prefix > if network.is_ipv4() { 32 } else { 128 } {
                return Err(bad("the prefix length is longer than the address"));
            }
            Host::Range { network, prefix }
        } else if let Ok(address) = host.parse::<IpAddr>() {
            Host::Range { network: address, prefix: if address.is_ipv4() { 32 } else { 128 } }
        } else if let Some(domain) = host.strip_prefix("*.") {
            Host::Subdomains(format!(".{domain}"))
        } else if !host.is_empty() && host.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.') {
            Host::Name(host)
        } else {
            return Err(bad("not a host name, an IP address or a range"));
        };
        Ok(Self { scheme, host, port })
    }
}

impl HostRule {
    fn admits(&self, scheme: &str, port: u16) -> bool {
        let default = if scheme == "https" { 443 } else { 80 };
        self.scheme.is_none_or(|s| s == scheme)
            && match self.port {
                Port::Any => true,
                Port::Default => port == default,
                Port::Number(n) => port == n,
            }
    }

    /// Whether the rule names `host` (a name, or a literal address).
    fn names(&self, host: &str) -> bool {
        match (&self.host, host.parse::<IpAddr>()) {
            (Host::Any, Ok(address)) => is_public(address),
            (Host::Any, Err(_)) => true,
            (Host::Name(name), _) => name == host,
            (Host::Subdomains(suffix), _) => host.ends_with(suffix.as_str()),
            (Host::Range { network, prefix }, Ok(address)) => in_range(address, *network, *prefix),
            (Host::Range { .. }, Err(_)) => false,
        }
    }

    /// Whether the rule allows connecting to `address` by address (a range, or `*` for public ones).
    fn reaches(&self, address: IpAddr) -> bool {
        match self.host {
            Host::Range { network, prefix } => in_range(address, network, prefix),
            _ => is_public(address),
        }
    }
}

fn in_range(address: IpAddr, network: IpAddr, prefix: u8) -> bool {
    match (canonical(address), canonical(network)) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            let mask = u32::MAX.checked_shl(32 - prefix as u32).unwrap_or(0);
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            let mask = u128::MAX.checked_shl(128 - prefix as u32).unwrap_or(0);
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

/// An IPv4 address written as IPv6 (`::ffff:127.0.0.1`) is the IPv4 one.
fn canonical(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(address, IpAddr::V4),
        v4 => v4,
    }
}

/// Reachable on the internet: not loopback, private, link-local, shared,
/// unspecified, multicast, documentation or reserved.
fn is_public(address: IpAddr) -> bool {
    match canonical(address) {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                || a == 0
                || a >= 240
                || (a == 100 && (64..128).contains(&b)))
        }
        IpAddr::V6(v6) => {
            let first = v6.segments()[0];
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || first & 0xfe00 == 0xfc00
                || first & 0xffc0 == 0xfe80
                || first == 0x2001 && v6.segments()[1] == 0x0db8)
        }
    }
}

/// What one instance's outgoing requests may reach and take.
#[derive(Debug, Clone)]
pub struct OutboundPolicy {
    /// Rules for every instance.
    pub allowed: Vec<HostRule>,
    /// More rules for the instances of one server user, by user name.
    pub by_user: HashMap<String, Vec<HostRule>>,
    /// More rules for the instances of one program, by its BLAKE3 digest (hex).
    pub by_program: HashMap<String, Vec<HostRule>>,
    pub max_in_flight: usize,
    pub max_response_bytes: u64,
    pub connect_timeout: Duration,
    /// From sending a request to its response's headers, and between two pieces of its body.
    pub timeout: Duration,
}

impl Default for OutboundPolicy {
    fn default() -> Self {
        Self {
            allowed: Vec::new(),
            by_user: HashMap::new(),
            by_program: HashMap::new(),
            max_in_flight: 8,
            max_response_bytes: 16 << 20,
            connect_timeout: Duration::from_secs(5),
            timeout: Duration::from_secs(30),
        }
    }
}

impl OutboundPolicy {
    /// The policy of one instance: every instance's rules, its user's and its program's.
    pub fn for_instance(self: &Arc<Self>, user: Option<&str>, program: &str) -> Arc<Self> {
        let user_rules = user.and_then(|user| self.by_user.get(user));
        let program_rules = self.by_program.get(program);
        if user_rules.is_none() && program_rules.is_none() {
            return self.clone();
        }
        let mut allowed = self.allowed.clone();
        allowed.extend(user_rules.into_iter().chain(program_rules).flatten().cloned());
        Arc::new(Self { allowed, by_user: HashMap::new(), by_program: HashMap::new(), ..(**self).clone() })
    }

    /// Where to connect for `scheme://host:port`, or why not.
    async fn destination(&self, scheme: &str, host: &str, port: u16) -> Result<SocketAddr, String> {
        let rules: Vec<&HostRule> = self.allowed.iter().filter(|r| r.admits(scheme, port) && r.names(host)).collect();
        if rules.is_empty() {
            return Err(format!(
                "{scheme}://{host}:{port} is not an allowed host (outbound.allowed_hosts, outbound.users.<user>, outbound.programs.<digest>, or --allow-http)"
            ));
        }
        let addresses: Vec<SocketAddr> = match host.parse::<IpAddr>() {
            Ok(address) => vec![SocketAddr::new(address, port)],
            Err(_) => match tokio::time::timeout(self.connect_timeout, tokio::net::lookup_host((host, port))).await {
                Ok(Ok(found)) => found.collect(),
                Ok(Err(e)) => return Err(format!("{host} does not resolve: {e}")),
                Err(_) => return Err(format!("resolving {host} took longer than {:?}", self.connect_timeout)),
            },
        };
        // Every answer must be allowed: a name with one private answer is refused.
        let all: Vec<&HostRule> = self.allowed.iter().filter(|r| r.admits(scheme, port)).collect();
        if let Some(refused) = addresses.iter().find(|a| !all.iter().any(|r| r.reaches(a.ip()))) {
            return Err(format!(
                "{host} resolves to {}, which is not public: allow it by address to reach it (say, {scheme}://{}:{port})",
                refused.ip(),
                refused.ip()
            ));
        }
        // IPv4 first: a name with both answers is most often served on both, or on IPv4 only.
        addresses.iter().find(|a| a.is_ipv4()).or(addresses.first()).copied().ok_or_else(|| format!("{host} has no address"))
    }
}

/// The `wasi:http` hooks of one instance: the policy, and its requests in flight.
pub struct OutboundHooks {
    policy: Arc<OutboundPolicy>,
    instance: String,
    in_flight: Arc<AtomicUsize>,
}

impl OutboundHooks {
    pub fn new(policy: Arc<OutboundPolicy>, instance: String) -> Self {
        Self { policy, instance, in_flight: Arc::default() }
    }
}

type Exchange = Result<(http::Response<WasiBody>, Box<dyn Future<Output = Result<(), HttpError>> + Send>), HttpError>;

impl WasiHttpHooks for OutboundHooks {
    fn send_request(
        &mut self,
        mut request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        _: Box<dyn Future<Output = Result<(), HttpError>> + Send>,
    ) -> Box<dyn Future<Output = Exchange> + Send> {
        let (policy, instance, in_flight) = (self.policy.clone(), self.instance.clone(), self.in_flight.clone());
        Box::new(async move {
            let uri = request.uri().clone();
            let denied = |why: String| {
                tracing::warn!(instance = %instance, url = %uri, "outgoing request denied: {why}");
                HttpError::HttpRequestDenied
            };
            // Counted before the check, so requests sent at once cannot all pass it.
            let before = in_flight.fetch_add(1, Ordering::AcqRel);
            let held = Held::counted(&in_flight, 1);
            if before >= policy.max_in_flight {
                return Err(denied(format!("{before} requests already in flight, the most one instance may have (outbound.max_requests_in_flight)")));
            }
            let scheme = uri.scheme_str().unwrap_or("https").to_string();
            let host = uri.host().unwrap_or_default().trim_start_matches('[').trim_end_matches(']').to_ascii_lowercase();
            let port = uri.port_u16().unwrap_or(if scheme == "https" { 443 } else { 80 });
            let address = policy.destination(&scheme, &host, port).await.map_err(denied)?;
            if scheme == "http" {
                // Connect to the address checked, not to whatever the name resolves to next.
                let mut parts = uri.into_parts();
                parts.authority = Some(address.to_string().parse().map_err(|_| HttpError::HttpRequestUriInvalid)?);
                *request.uri_mut() = http::Uri::from_parts(parts).map_err(|_| HttpError::HttpRequestUriInvalid)?;
            }
            let options = bounded(options, &policy);
            let sent = wasmtime_wasi_http::default_send_request(request, Some(options));
            let (response, io) = match tokio::time::timeout(policy.timeout, sent).await {
                Ok(answer) => answer?,
                Err(_) => return Err(HttpError::HttpResponseTimeout),
            };
            let limit = policy.max_response_bytes;
            let (head, body) = response.into_parts();
            let body = http_body_util::Limited::new(body, limit as usize)
                .map_err(move |e| match e.downcast::<HttpError>() {
                    Ok(inner) => *inner,
                    Err(_) => HttpError::HttpResponseBodySize(Some(limit)),
                })
                // The request counts as in flight until its body is read or dropped.
                .map_frame(move |frame| {
                    let _ = &held;
                    frame
                })
                .boxed_unsync();
            Ok((http::Response::from_parts(head, body), Box::new(io) as Box<dyn Future<Output = _> + Send>))
        })
    }
}

/// The guest's timeouts, none longer than the policy's.
fn bounded(options: Option<RequestOptions>, policy: &OutboundPolicy) -> RequestOptions {
    let options = options.unwrap_or_default();
    let cap = |asked: Option<Duration>, most: Duration| Some(asked.map_or(most, |a| a.min(most)));
    RequestOptions {
        connect_timeout: cap(options.connect_timeout, policy.connect_timeout),
        first_byte_timeout: cap(options.first_byte_timeout, policy.timeout),
        between_bytes_timeout: cap(options.between_bytes_timeout, policy.timeout),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(rules: &[&str]) -> OutboundPolicy {
        OutboundPolicy { allowed: rules.iter().map(|r| r.parse().unwrap()).collect(), ..OutboundPolicy::default() }
    }

    #[test]
    fn rules_parse_or_say_why_not() {
        assert!("https://api.example.com".parse::<HostRule>().is_ok());
        assert!("*://10.0.0.0/8:*".parse::<HostRule>().is_ok());
        assert!("[::1]:8080".parse::<HostRule>().is_ok());
        assert!("[fd00::]/8".parse::<HostRule>().is_ok());
        assert_eq!("ftp://x".parse::<HostRule>().unwrap_err().to_string(), "allowed host `ftp://x`: the scheme must be http, https or *");
        assert_eq!("x:port".parse::<HostRule>().unwrap_err().to_string(), "allowed host `x:port`: the port must be a number or *");
        assert!("10.0.0.0/40".parse::<HostRule>().is_err());
        assert!("http://x.com/path".parse::<HostRule>().is_err());
    }

    #[tokio::test]
    async fn only_allowed_hosts_are_reached_and_private_addresses_only_by_address() {
        let p = policy(&["http://127.0.0.1:8000", "https://*.example.com", "*"]);
        assert_eq!(p.destination("http", "127.0.0.1", 8000).await, Ok("127.0.0.1:8000".parse().unwrap()));
        assert!(p.destination("http", "127.0.0.1", 8001).await.unwrap_err().contains("is not an allowed host"));
        let via_name = p.destination("http", "localhost", 8000).await.unwrap_err();
        assert!(via_name.contains("not an allowed host") || via_name.contains("is not public"), "{via_name}");
        // `*` allows public hosts only: loopback, metadata and private ranges are not.
        for private in ["169.254.169.254", "10.1.2.3", "192.168.0.1", "::1", "::ffff:127.0.0.1", "100.64.0.1"] {
            assert!(p.destination("https", private, 443).await.is_err(), "{private}");
        }
        assert!(p.destination("https", "93.184.215.14", 443).await.is_ok());
        assert!(policy(&[]).destination("https", "93.184.215.14", 443).await.is_err(), "deny by default");
    }

    #[test]
    fn ranges_hold_their_addresses() {
        assert!(in_range("10.200.1.1".parse().unwrap(), "10.0.0.0".parse().unwrap(), 8));
        assert!(!in_range("11.0.0.1".parse().unwrap(), "10.0.0.0".parse().unwrap(), 8));
        assert!(in_range("::ffff:10.0.0.1".parse().unwrap(), "10.0.0.0".parse().unwrap(), 8));
        assert!(in_range("1.2.3.4".parse().unwrap(), "0.0.0.0".parse().unwrap(), 0));
    }
}
