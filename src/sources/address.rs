//! The operator's address policy: which destinations a LaunchPolicy may make the operator
//! contact. Whoever may create a policy chooses its addresses, and the operator connects from
//! inside the cluster network with its own identity; without a policy, a tenant could have it
//! fetch a cloud metadata service or probe internal hosts (`docs/security.md`).
//!
//! Rules are CIDRs, optionally for one kind of destination (`prometheus=10.0.0.0/8`). An address
//! is refused when a deny rule matches it, or when allow rules exist for its kind and none
//! matches. By default link-local addresses (169.254.0.0/16, fe80::/10, where cloud metadata
//! services answer), the other well-known metadata addresses and host names, and the
//! apiserver's own address are denied. Names are checked after DNS resolution, on every
//! connection, so a name that resolves differently later cannot slip through; an address
//! written as an IP is refused before anything is contacted.

use std::{
    fmt,
    net::{IpAddr, SocketAddr},
    str::FromStr,
    sync::Arc,
};

use ipnet::IpNet;

/// What kind of destination an address is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Destination {
    Prometheus,
    Kafka,
    Postgres,
    Redis,
    Webhook,
}

impl Destination {
    pub const ALL: [Destination; 5] = [
        Destination::Prometheus,
        Destination::Kafka,
        Destination::Postgres,
        Destination::Redis,
        Destination::Webhook,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Destination::Prometheus => "prometheus",
            Destination::Kafka => "kafka",
            Destination::Postgres => "postgres",
            Destination::Redis => "redis",
            Destination::Webhook => "webhook",
        }
    }
}

impl FromStr for Destination {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Destination::ALL
            .into_iter()
            .find(|d| d.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "unknown destination {s:?}: one of prometheus, kafka, postgres, redis, webhook"
                )
            })
    }
}

/// One rule: a network (and port, for the apiserver's own address), for every destination or one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    pub destination: Option<Destination>,
    pub net: IpNet,
    pub port: Option<u16>,
}

impl Rule {
    fn matches(&self, destination: Destination, addr: SocketAddr) -> bool {
        self.destination.is_none_or(|d| d == destination)
            && self.net.contains(&canonical(addr.ip()))
            && self.port.is_none_or(|p| p == addr.port())
    }
}

impl FromStr for Rule {
    type Err = String;
    /// `CIDR`, `IP`, or either prefixed with a destination: `prometheus=10.0.0.0/8`.
    fn from_str(s: &str) -> Result<Self, String> {
        let (destination, net) = match s.split_once('=') {
            Some((kind, net)) => (Some(kind.trim().parse()?), net.trim()),
            None => (None, s.trim()),
        };
        let net = net
            .parse::<IpNet>()
            .or_else(|_| net.parse::<IpAddr>().map(IpNet::from))
            .map_err(|_| format!("{net:?} is not a CIDR (10.0.0.0/8) or an IP address"))?;
        Ok(Rule {
            destination,
            net,
            port: None,
        })
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(d) = self.destination {
            write!(f, "{}=", d.as_str())?;
        }
        match self.port {
            Some(port) => write!(f, "{} port {port}", self.net),
            None => write!(f, "{}", self.net),
        }
    }
}

/// Link-local ranges (cloud metadata services answer at 169.254.169.254), the other well-known
/// metadata addresses (AWS's and GCP's IPv6 ones, Alibaba Cloud's, Azure's wire server), and
/// "this host" (`0.0.0.0/8`, `::`), which Linux connects to loopback.
pub const DEFAULT_DENY: [&str; 8] = [
    "169.254.0.0/16",
    "fe80::/10",
    "fd00:ec2::254/128",
    "fd20:ce::254/128",
    "100.100.100.200/32",
    "168.63.129.16/32",
    "0.0.0.0/8",
    "::/128",
];

/// Host names of metadata services, refused whatever they resolve to.
pub const DENIED_HOSTS: [&str; 3] = ["metadata.google.internal", "metadata.goog", "metadata"];

/// Why an address was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{address} is refused by the operator's address policy ({why})")]
pub struct Denied {
    /// The address as the policy wrote it (host and port).
    pub address: String,
    pub why: String,
}

/// The rules in force. Cheap to clone.
#[derive(Clone, Debug, Default)]
pub struct AddressPolicy {
    inner: Arc<Rules>,
}

#[derive(Debug, Default)]
struct Rules {
    deny: Vec<Rule>,
    allow: Vec<Rule>,
}

impl AddressPolicy {
    /// The default denials, `deny` and `allow` (as the operator's flags spell them), and the
    /// apiserver's own addresses.
    pub fn new(deny: &[Rule], allow: &[Rule], apiserver: &[SocketAddr]) -> AddressPolicy {
        let mut rules = Rules {
            deny: DEFAULT_DENY
                .iter()
                .map(|net| net.parse().expect("the default rules parse"))
                .collect(),
            allow: allow.to_vec(),
        };
        rules.deny.extend(deny.iter().cloned());
        rules.deny.extend(apiserver.iter().map(|a| Rule {
            destination: None,
            net: IpNet::from(canonical(a.ip())),
            port: Some(a.port()),
        }));
        AddressPolicy {
            inner: Arc::new(rules),
        }
    }

    /// A policy that allows everything (tests of the sources themselves).
    pub fn allow_all() -> AddressPolicy {
        AddressPolicy::default()
    }

    /// Whether `destination` may be contacted at `addr`.
    pub fn check(&self, destination: Destination, addr: SocketAddr) -> Result<(), Denied> {
        let denied = |why: String| Denied {
            address: addr.to_string(),
            why,
        };
        if let Some(rule) = self
            .inner
            .deny
            .iter()
            .find(|r| r.matches(destination, addr))
        {
            return Err(denied(format!("denied by {rule}")));
        }
        let allows: Vec<&Rule> = self
            .inner
            .allow
            .iter()
            .filter(|r| r.destination.is_none_or(|d| d == destination))
            .collect();
        if !allows.is_empty() && !allows.iter().any(|r| r.matches(destination, addr)) {
            let list: Vec<String> = allows.iter().map(|r| r.to_string()).collect();
            return Err(denied(format!("not in the allowed {}", list.join(", "))));
        }
        Ok(())
    }

    /// Checks what can be checked of `host:port` before any lookup: a denied metadata host
    /// name, or an IP address. A name is checked again on every connection, once resolved.
    pub fn check_host(
        &self,
        destination: Destination,
        host: &str,
        port: u16,
    ) -> Result<(), Denied> {
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        let name = bare.trim_end_matches('.').to_ascii_lowercase();
        if DENIED_HOSTS.contains(&name.as_str()) {
            return Err(Denied {
                address: format!("{host}:{port}"),
                why: "a cloud metadata service".into(),
            });
        }
        match bare.parse::<IpAddr>() {
            Ok(ip) => self.check(destination, SocketAddr::new(ip, port)),
            Err(_) => Ok(()),
        }
    }

    /// [`AddressPolicy::check_host`] for a URL's host and port, without resolving a name.
    pub fn check_url_as_written(&self, destination: Destination, url: &str) -> Result<(), Denied> {
        match url_host_port(url) {
            Some((host, port)) => self.check_host(destination, &host, port),
            None => Ok(()), // the client refuses it on its own
        }
    }

    /// Checks a URL's host and port, resolving a name: before an HTTP client is built or used,
    /// so that rules for one port apply to names too (the resolver does not see the port).
    pub async fn check_url(&self, destination: Destination, url: &str) -> Result<(), Refusal> {
        let Some((host, port)) = url_host_port(url) else {
            return Ok(()); // the client refuses it on its own
        };
        self.resolve(destination, &host, port).await.map(|_| ())
    }

    /// Resolves `host:port` and keeps the addresses the policy allows; `Err` when none is left
    /// (naming the first refused) or the name does not resolve.
    pub async fn resolve(
        &self,
        destination: Destination,
        host: &str,
        port: u16,
    ) -> Result<Vec<SocketAddr>, Refusal> {
        self.check_host(destination, host, port)?;
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        let found: Vec<SocketAddr> = tokio::net::lookup_host((bare, port))
            .await
            .map_err(|_| Refusal::Unresolved)?
            .collect();
        let mut first_denial = None;
        let allowed: Vec<SocketAddr> = found
            .into_iter()
            .filter(|addr| match self.check(destination, *addr) {
                Ok(()) => true,
                Err(denied) => {
                    first_denial.get_or_insert(denied);
                    false
                }
            })
            .collect();
        match (allowed.is_empty(), first_denial) {
            (false, _) => Ok(allowed),
            // Named as written: what an internal name resolves to is not the policy author's to
            // learn from a refusal.
            // Nor which rule refused it: the apiserver's rule is its own IP.
            (true, Some(_)) => Err(Refusal::Denied(Denied {
                address: format!("{host}:{port}"),
                why: "it resolves to an address the policy refuses".into(),
            })),
            (true, None) => Err(Refusal::Unresolved),
        }
    }
}

/// Why no address of a host may be contacted.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error(transparent)]
    Denied(#[from] Denied),
    #[error("the host name does not resolve")]
    Unresolved,
}

/// A URL's host and port (the scheme's port when none is written); `None` when it does not parse.
fn url_host_port(url: &str) -> Option<(String, u16)> {
    let url = reqwest::Url::parse(url.trim()).ok()?;
    let port = url.port_or_known_default().unwrap_or(80);
    Some((url.host_str().unwrap_or_default().to_string(), port))
}

/// The `host:port` entries of a Kafka `bootstrapServers` list, as librdkafka reads it: entries
/// separated by commas, each optionally prefixed with a protocol (`SASL_SSL://`); empty entries
/// skipped; the port 9092 when none is given.
pub fn kafka_bootstrap(servers: &str) -> Vec<(&str, u16)> {
    servers
        .split(',')
        .map(|s| s.trim())
        .map(|s| s.split_once("://").map_or(s, |(_, rest)| rest))
        .filter(|s| !s.is_empty())
        .map(|s| match s.rsplit_once(':') {
            Some((host, port)) if !host.ends_with(':') => (host, port.parse().unwrap_or(9092)),
            _ => (s, 9092),
        })
        .collect()
}

/// IPv4-mapped IPv6 addresses (`::ffff:169.254.169.254`) are their IPv4 address.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// The address policy as reqwest's resolver: every name a client connects to is resolved here,
/// and only allowed addresses are returned, so a refused address is never connected to.
#[derive(Clone, Debug)]
pub struct PolicyResolver {
    pub policy: AddressPolicy,
    pub destination: Destination,
}

impl reqwest::dns::Resolve for PolicyResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let (policy, destination) = (self.policy.clone(), self.destination);
        let host = name.as_str().to_string();
        Box::pin(async move {
            // Port 0: reqwest puts the URL's port in afterwards. Rules for one port (the
            // apiserver's) are checked with the URL's port before the client is used
            // (`AddressPolicy::check_url`); here the networks are checked on every connection.
            let addrs = policy
                .resolve(destination, &host, 0)
                .await
                .map_err(|e| Box::new(e) as Box<dyn std::error::Error + Send + Sync>)?;
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn metadata_and_link_local_addresses_are_denied_by_default() {
        let policy = AddressPolicy::new(&[], &[], &[]);
        for a in [
            "169.254.169.254:80",
            "[fd00:ec2::254]:80",
            "[fe80::1]:80",
            "100.100.100.200:80",
            "[::ffff:169.254.169.254]:80",
            "0.0.0.0:80",
            "[::]:80",
            "[fd20:ce::254]:80",
        ] {
            let err = policy.check(Destination::Prometheus, addr(a)).unwrap_err();
            assert!(
                err.to_string()
                    .contains("refused by the operator's address policy"),
                "{err}"
            );
        }
        assert_eq!(
            policy.check(Destination::Prometheus, addr("10.0.0.7:9090")),
            Ok(())
        );
        for host in [
            "metadata.google.internal",
            "METADATA.GOOGLE.INTERNAL.",
            "metadata",
        ] {
            assert!(
                policy.check_host(Destination::Webhook, host, 80).is_err(),
                "{host}"
            );
        }
        assert_eq!(
            policy.check_host(Destination::Webhook, "hooks.slack.com", 443),
            Ok(())
        );
    }

    #[test]
    fn kafka_bootstrap_lists_are_read_as_librdkafka_reads_them() {
        assert_eq!(
            kafka_bootstrap("SASL_SSL://k1:9093, k2 ,,[::1]:9094"),
            [("k1", 9093), ("k2", 9092), ("[::1]", 9094)]
        );
    }

    #[test]
    fn the_apiserver_is_denied_on_its_port_only() {
        let policy = AddressPolicy::new(&[], &[], &[addr("10.96.0.1:443")]);
        assert!(
            policy
                .check(Destination::Prometheus, addr("10.96.0.1:443"))
                .is_err()
        );
        assert_eq!(
            policy.check(Destination::Prometheus, addr("10.96.0.1:9090")),
            Ok(())
        );
    }

    #[test]
    fn allow_rules_of_a_destination_allow_only_their_networks() {
        let allow: Vec<Rule> = ["prometheus=10.1.0.0/16", "webhook=0.0.0.0/0"]
            .iter()
            .map(|r| r.parse().unwrap())
            .collect();
        let policy = AddressPolicy::new(&["10.1.9.0/24".parse().unwrap()], &allow, &[]);
        let p = Destination::Prometheus;
        assert_eq!(policy.check(p, addr("10.1.2.3:9090")), Ok(()));
        let outside = policy.check(p, addr("10.2.0.1:9090")).unwrap_err();
        assert_eq!(outside.why, "not in the allowed prometheus=10.1.0.0/16");
        let denied = policy.check(p, addr("10.1.9.9:9090")).unwrap_err();
        assert_eq!(denied.why, "denied by 10.1.9.0/24");
        // No allow rule for Redis: anything not denied.
        assert_eq!(
            policy.check(Destination::Redis, addr("192.168.1.1:6379")),
            Ok(())
        );
        assert!(
            policy
                .check(Destination::Webhook, addr("169.254.169.254:80"))
                .is_err()
        );
    }

    #[test]
    fn rules_parse_with_a_destination_and_say_what_is_wrong() {
        let rule: Rule = "kafka=10.0.0.0/8".parse().unwrap();
        assert_eq!(rule.destination, Some(Destination::Kafka));
        assert_eq!(rule.to_string(), "kafka=10.0.0.0/8");
        let single: Rule = "127.0.0.2".parse().unwrap();
        assert_eq!(single.to_string(), "127.0.0.2/32");
        assert!(
            "ftp=10.0.0.0/8"
                .parse::<Rule>()
                .unwrap_err()
                .contains("unknown destination")
        );
        assert!(
            "10.0.0.0/33"
                .parse::<Rule>()
                .unwrap_err()
                .contains("not a CIDR")
        );
    }

    #[tokio::test]
    async fn a_url_naming_the_apiserver_by_name_is_refused_on_its_port() {
        let policy = AddressPolicy::new(&[], &[], &[addr("127.0.0.1:6443"), addr("[::1]:6443")]);
        let p = Destination::Prometheus;
        let refused = policy.check_url(p, "https://localhost:6443/").await;
        assert!(matches!(refused, Err(Refusal::Denied(_))), "{refused:?}");
        assert_eq!(policy.check_url(p, "http://localhost:9090").await, Ok(()));
    }

    #[tokio::test]
    async fn a_name_is_checked_once_resolved() {
        let policy = AddressPolicy::new(
            &["127.0.0.0/8".parse().unwrap(), "::1".parse().unwrap()],
            &[],
            &[],
        );
        let refused = policy.resolve(Destination::Redis, "localhost", 6379).await;
        let Err(Refusal::Denied(denied)) = refused else {
            panic!("{refused:?}");
        };
        // The refusal names the host as written, never the address it resolved to.
        assert_eq!(denied.address, "localhost:6379");
        assert!(!denied.to_string().contains("127.0.0.1:"), "{denied}");
        let open = AddressPolicy::new(&[], &[], &[]);
        let found = open
            .resolve(Destination::Redis, "localhost", 6379)
            .await
            .unwrap();
        assert!(found.iter().all(|a| a.ip().is_loopback()), "{found:?}");
    }
}
