//! Which network addresses the crawler may connect to, and the DNS resolver that enforces it.
//!
//! The check runs inside the resolver reqwest connects with, so the addresses checked are exactly
//! the addresses connected to: a name that resolves to a public address for a pre-check and to
//! 127.0.0.1 a moment later (DNS rebinding) is still refused. reqwest never calls the resolver for
//! IP-literal hosts; `fetch` checks those itself with [`AddressPolicy::permits`].

use std::error::Error as StdError;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// Which addresses the crawler may connect to.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum AddressPolicy {
    /// Only globally routable addresses (production default). See [`is_public_ip`].
    #[default]
    PublicOnly,
    /// Anything, including loopback and private networks. For operators who crawl an intranet
    /// (`MTDESK_ALLOW_PRIVATE_URLS=1`) and for tests.
    AllowPrivate,
    /// Public addresses plus exactly these socket addresses (IP *and* port), which must be written
    /// as IP literals in URLs. Exists so tests can crawl a loopback server and still prove that
    /// every other private address is refused.
    ///
    /// Names (e.g. `localhost`) that resolve to non-public addresses are always refused under this
    /// policy: the resolver sees only the name, not the port, so it cannot tell an allowed port
    /// from another one, and it fails closed.
    AllowOnly(Vec<SocketAddr>),
}

impl AddressPolicy {
    /// Whether connecting to `addr` (an IP-literal host with its port) is allowed.
    pub fn permits(&self, addr: SocketAddr) -> bool {
        match self {
            Self::AllowPrivate => true,
            Self::PublicOnly => is_public_ip(addr.ip()),
            Self::AllowOnly(allowed) => is_public_ip(addr.ip()) || allowed.contains(&addr),
        }
    }

    /// Whether an address a host *name* resolved to may be used (the port is not known here).
    fn permits_resolved(&self, ip: IpAddr) -> bool {
        match self {
            Self::AllowPrivate => true,
            Self::PublicOnly | Self::AllowOnly(_) => is_public_ip(ip),
        }
    }
}

/// Whether `ip` is a globally routable unicast address, i.e. safe for a server to fetch on a
/// customer's behalf.
///
/// Refused: unspecified, `0.0.0.0/8`, loopback, private (10/8, 172.16/12, 192.168/16), link-local
/// (169.254/16 incl. cloud metadata 169.254.169.254, fe80::/10), CGNAT 100.64/10, broadcast,
/// multicast, IETF/benchmark/documentation/reserved ranges, unique-local fc00::/7, site-local
/// fec0::/10, Teredo, anything outside 2000::/3, and IPv6 forms that embed a refused IPv4 address
/// (IPv4-mapped `::ffff:a.b.c.d`, IPv4-compatible `::a.b.c.d`, NAT64 `64:ff9b::/96`, 6to4 `2002::/16`).
pub fn is_public_ip(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    let refused = a == 0 // 0.0.0.0/8 "this network", incl. unspecified
        || ip.is_loopback() // 127/8
        || ip.is_private() // 10/8, 172.16/12, 192.168/16
        || ip.is_link_local() // 169.254/16
        || (a == 100 && (b & 0xc0) == 64) // 100.64/10 CGNAT
        || (a == 192 && b == 0 && c == 0) // 192.0.0/24 IETF protocol assignments
        || ip.is_documentation() // 192.0.2/24, 198.51.100/24, 203.0.113/24
        || (a == 198 && (b & 0xfe) == 18) // 198.18/15 benchmarking
        || ip.is_multicast() // 224/4
        || a >= 240; // 240/4 reserved, incl. 255.255.255.255 broadcast
    !refused
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    if ip.is_unspecified() || ip.is_loopback() {
        return false;
    }
    if let Some(v4) = ip.to_ipv4_mapped() {
        return is_public_v4(v4);
    }
    let s = ip.segments();
    let embedded_low = || {
        let o = ip.octets();
        Ipv4Addr::new(o[12], o[13], o[14], o[15])
    };
    // Deprecated IPv4-compatible ::a.b.c.d (some stacks still route it to the IPv4 address).
    if s[..6] == [0; 6] {
        return is_public_v4(embedded_low());
    }
    // NAT64 well-known prefix: the IPv4 address in the low 32 bits is what gets reached.
    if s[0] == 0x64 && s[1] == 0xff9b && s[2..6] == [0; 4] {
        return is_public_v4(embedded_low());
    }
    // 6to4: 2002:AABB:CCDD::/48 reaches AA.BB.CC.DD.
    if s[0] == 0x2002 {
        let [a, b] = s[1].to_be_bytes();
        let [c, d] = s[2].to_be_bytes();
        return is_public_v4(Ipv4Addr::new(a, b, c, d));
    }
    // Teredo 2001::/32 (tunnels to an obfuscated IPv4) and documentation 2001:db8::/32.
    let refused = (s[0] == 0x2001 && matches!(s[1], 0 | 0x0db8))
        || (s[0] == 0x3fff && (s[1] & 0xf000) == 0) // 3fff::/20 documentation (RFC 9637)
        || (s[0] & 0xfe00) == 0xfc00 // fc00::/7 unique local
        || (s[0] & 0xffc0) == 0xfe80 // fe80::/10 link-local
        || (s[0] & 0xffc0) == 0xfec0 // fec0::/10 site-local (deprecated)
        || (s[0] & 0xff00) == 0xff00; // multicast
    // Only 2000::/3 is allocated as global unicast.
    !refused && (s[0] & 0xe000) == 0x2000
}

/// `localhost` and `*.localhost` must resolve to loopback (RFC 6761); refuse them by name too, in
/// case a local resolver is configured oddly.
fn is_localhost_name(host: &str) -> bool {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    host == "localhost" || host.ends_with(".localhost")
}

/// Error returned from [`GuardedResolver`]; `fetch` finds it in reqwest's error chain to report
/// [`crate::FetchError::PrivateAddress`] or [`crate::FetchError::Dns`].
#[derive(Debug)]
pub(crate) enum ResolveFailure {
    Refused { host: String },
    NotFound { host: String, reason: String },
}

impl fmt::Display for ResolveFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Refused { host } => write!(f, "{host} resolves only to non-public addresses"),
            Self::NotFound { host, reason } => write!(f, "DNS lookup of {host} failed: {reason}"),
        }
    }
}

impl StdError for ResolveFailure {}

/// The resolver every crawler request connects through: system DNS, then [`AddressPolicy`].
#[derive(Debug)]
pub(crate) struct GuardedResolver {
    pub(crate) policy: AddressPolicy,
}

impl GuardedResolver {
    /// Resolves `host` and keeps only the addresses the policy allows.
    pub(crate) async fn lookup(
        policy: &AddressPolicy,
        host: &str,
    ) -> Result<Vec<SocketAddr>, ResolveFailure> {
        let found: Vec<SocketAddr> = tokio::net::lookup_host((host, 0))
            .await
            .map_err(|e| ResolveFailure::NotFound {
                host: host.to_owned(),
                reason: e.to_string(),
            })?
            .collect();
        if found.is_empty() {
            return Err(ResolveFailure::NotFound {
                host: host.to_owned(),
                reason: "no addresses".to_owned(),
            });
        }
        let allowed: Vec<SocketAddr> = found
            .iter()
            .copied()
            .filter(|a| policy.permits_resolved(a.ip()))
            .collect();
        let localhost_refused = *policy != AddressPolicy::AllowPrivate && is_localhost_name(host);
        if allowed.is_empty() || localhost_refused {
            tracing::warn!(
                host,
                addresses = ?found,
                "refused a host that resolves to non-public addresses"
            );
            return Err(ResolveFailure::Refused {
                host: host.to_owned(),
            });
        }
        if allowed.len() < found.len() {
            tracing::warn!(
                host,
                "ignored non-public addresses among a host's DNS answers"
            );
        }
        Ok(allowed)
    }
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.policy.clone();
        let host = name.as_str().to_owned();
        Box::pin(async move {
            match Self::lookup(&policy, &host).await {
                Ok(addrs) => Ok(Box::new(addrs.into_iter()) as Addrs),
                Err(e) => Err(Box::new(e) as Box<dyn StdError + Send + Sync>),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("test table holds valid IPs")
    }

    #[test]
    fn classifier_refuses_every_non_public_range() {
        let refused = [
            "0.0.0.0",
            "0.1.2.3",
            "127.0.0.1",
            "127.255.255.254",
            "10.0.0.1",
            "10.255.255.255",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "169.254.0.1",
            "100.64.0.1",
            "100.127.255.255",
            "192.0.0.8",
            "192.0.2.1",
            "198.18.0.1",
            "198.19.255.255",
            "198.51.100.7",
            "203.0.113.9",
            "224.0.0.1",
            "239.255.255.250",
            "240.0.0.1",
            "255.255.255.255",
            "::",
            "::1",
            "fe80::1",
            "febf::1",
            "fc00::1",
            "fd12:3456::1",
            "fec0::1",
            "ff02::1",
            "2001:db8::1",
            "2001:0:4136:e378::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "::ffff:10.0.0.1",
            "::ffff:0.0.0.0",
            "::127.0.0.1",
            "::169.254.169.254",
            "64:ff9b::a9fe:a9fe",
            "64:ff9b::7f00:1",
            "2002:7f00:1::1",
            "2002:a9fe:a9fe::",
            "100::1",
            "3fff::1",
        ];
        for s in refused {
            assert!(!is_public_ip(ip(s)), "{s} must be refused");
        }
    }

    #[test]
    fn classifier_accepts_public_addresses() {
        let public = [
            "1.1.1.1",
            "8.8.8.8",
            "93.184.216.34",
            "172.15.255.255",
            "172.32.0.1",
            "100.63.255.255",
            "100.128.0.1",
            "169.253.255.255",
            "192.169.0.1",
            "198.17.255.255",
            "223.255.255.255",
            "2606:4700:4700::1111",
            "2a00:1450:4001:80b::200e",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
            "2002:808:808::1",
        ];
        for s in public {
            assert!(is_public_ip(ip(s)), "{s} must be accepted");
        }
    }

    #[test]
    fn allow_only_permits_exactly_the_listed_socket_addresses_and_public_ones() {
        let listed: SocketAddr = "127.0.0.1:4000".parse().expect("valid");
        let policy = AddressPolicy::AllowOnly(vec![listed]);
        assert!(policy.permits(listed));
        assert!(!policy.permits("127.0.0.1:4001".parse().expect("valid")));
        assert!(!policy.permits("169.254.169.254:80".parse().expect("valid")));
        assert!(policy.permits("8.8.8.8:443".parse().expect("valid")));
        // A name resolving to the listed IP is still refused: the port is unknown at that point.
        assert!(!policy.permits_resolved(listed.ip()));
        assert!(AddressPolicy::AllowPrivate.permits("127.0.0.1:1".parse().expect("valid")));
        assert!(!AddressPolicy::PublicOnly.permits("127.0.0.1:1".parse().expect("valid")));
    }

    #[test]
    fn localhost_names_are_recognised() {
        for h in ["localhost", "LOCALHOST", "localhost.", "api.localhost"] {
            assert!(is_localhost_name(h), "{h}");
        }
        for h in ["localhost.com", "example.com", "notlocalhost"] {
            assert!(!is_localhost_name(h), "{h}");
        }
    }

    #[tokio::test]
    async fn resolver_refuses_localhost_after_resolution_unless_private_is_allowed() {
        let refused = GuardedResolver::lookup(&AddressPolicy::PublicOnly, "localhost").await;
        assert!(
            matches!(refused, Err(ResolveFailure::Refused { ref host }) if host == "localhost"),
            "{refused:?}"
        );
        let allowed = GuardedResolver::lookup(&AddressPolicy::AllowPrivate, "localhost")
            .await
            .expect("localhost resolves on any test machine");
        assert!(allowed.iter().all(|a| a.ip().is_loopback()), "{allowed:?}");
    }
}
