//! What the hardened client may reach: the address ranges it refuses (loopback, private,
//! link-local, CGNAT, unique-local, multicast, cloud metadata and the other special-purpose
//! blocks of the IANA IPv4/IPv6 registries, RFC 6890), the allow-list that exempts some, and
//! when plain `http://` is acceptable (loopback hosts, when configured for tests and
//! development).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use ipnet::IpNet;

use super::NetError;

/// One allow-list entry: a network (`10.0.0.0/8`, `fd12::/16`), one address, or a host name
/// (`sms.internal`, matched exactly, case-insensitively).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Allowed {
    /// A network or (as a /32 or /128) one address, whose addresses are let through.
    Net(IpNet),
    /// A host name, let through whatever it resolves to (lower case).
    Host(String),
}

impl std::str::FromStr for Allowed {
    type Err = NetError;

    fn from_str(text: &str) -> Result<Allowed, NetError> {
        let text = text.trim();
        let bad = |reason: &str| NetError::BadAllowEntry {
            entry: text.chars().take(80).collect(),
            reason: reason.to_string(),
        };
        if let Ok(net) = text.parse::<IpNet>() {
            return Ok(Allowed::Net(net.trunc()));
        }
        if let Ok(ip) = text.parse::<IpAddr>() {
            return Ok(Allowed::Net(IpNet::from(ip)));
        }
        let host = text.to_ascii_lowercase();
        let label_ok = |label: &str| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        };
        if host.is_empty() || host.len() > 253 || !host.split('.').all(label_ok) {
            return Err(bad(
                "neither a network (CIDR), an IP address nor a host name",
            ));
        }
        Ok(Allowed::Host(host))
    }
}

/// What the client may fetch and how long it may take. [`NetPolicy::default`] is the strict
/// policy a public deployment keeps: HTTPS to public addresses only.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetPolicy {
    /// Loopback hosts (`localhost`, 127.0.0.0/8, `::1`) may be reached, over plain `http://`
    /// too. For tests and development only; off by default.
    pub allow_loopback: bool,
    /// Networks and hosts exempt from the refusal of non-public addresses (an SMS gateway
    /// on a private network, a test host). HTTPS is still required.
    pub allow: Vec<Allowed>,
    /// Longest wait for a TCP (and TLS) connection.
    pub connect_timeout: Duration,
    /// Longest a whole request may take, from waiting for a slot to the last body byte.
    pub timeout: Duration,
    /// Requests in flight to one host at a time; further ones wait (within `timeout`).
    pub per_host: usize,
    /// Root certificates (DER) trusted beside the built-in web roots: a private CA, or a
    /// test's own. Certificates are always verified; this only adds anchors.
    pub extra_roots: Vec<Vec<u8>>,
}

impl Default for NetPolicy {
    fn default() -> Self {
        NetPolicy {
            allow_loopback: false,
            allow: Vec::new(),
            connect_timeout: Duration::from_secs(5),
            timeout: Duration::from_secs(10),
            per_host: 8,
            extra_roots: Vec::new(),
        }
    }
}

impl NetPolicy {
    /// The strict policy with loopback hosts allowed (over plain HTTP too): tests and
    /// development against an agent on this machine.
    pub fn loopback() -> NetPolicy {
        NetPolicy {
            allow_loopback: true,
            ..NetPolicy::default()
        }
    }

    fn host_allowed(&self, host: &str) -> bool {
        self.allow
            .iter()
            .any(|entry| matches!(entry, Allowed::Host(name) if name.eq_ignore_ascii_case(host)))
    }

    /// Whether `ip` may be connected to for `host`: a public address, a loopback one when
    /// loopback is allowed, or one the allow-list names (by network or by host).
    pub(crate) fn check_ip(&self, host: &str, ip: IpAddr) -> Result<(), NetError> {
        let Some(range) = special_range(ip) else {
            return Ok(());
        };
        if range == Range::Loopback && self.allow_loopback {
            return Ok(());
        }
        if self.host_allowed(host)
            || self
                .allow
                .iter()
                .any(|entry| matches!(entry, Allowed::Net(net) if net.contains(&ip)))
        {
            return Ok(());
        }
        Err(NetError::Refused {
            host: host.to_string(),
            ip,
            range: range.name(),
        })
    }
}

/// A special-purpose range an address falls in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Range {
    Unspecified,
    Loopback,
    Private,
    Cgnat,
    LinkLocal,
    Metadata,
    UniqueLocal,
    Multicast,
    Reserved,
}

impl Range {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Range::Unspecified => "unspecified",
            Range::Loopback => "loopback",
            Range::Private => "private",
            Range::Cgnat => "shared (CGNAT)",
            Range::LinkLocal => "link-local",
            Range::Metadata => "cloud metadata",
            Range::UniqueLocal => "unique-local",
            Range::Multicast => "multicast",
            Range::Reserved => "reserved",
        }
    }
}

fn v4_range(ip: Ipv4Addr) -> Option<Range> {
    let [a, b, c, _] = ip.octets();
    Some(match (a, b, c) {
        _ if ip == Ipv4Addr::new(169, 254, 169, 254) => Range::Metadata,
        // Alibaba Cloud's metadata service.
        _ if ip == Ipv4Addr::new(100, 100, 100, 200) => Range::Metadata,
        (0, _, _) => Range::Unspecified,
        (10, _, _) | (172, 16..=31, _) | (192, 168, _) => Range::Private,
        (100, 64..=127, _) => Range::Cgnat,
        (127, _, _) => Range::Loopback,
        (169, 254, _) => Range::LinkLocal,
        // IETF protocol assignments, documentation, benchmarking, 6to4 relay.
        (192, 0, 0) | (192, 0, 2) | (192, 88, 99) | (198, 18..=19, _) | (198, 51, 100) => {
            Range::Reserved
        }
        (203, 0, 113) => Range::Reserved,
        (224..=239, _, _) => Range::Multicast,
        (240..=255, _, _) => Range::Reserved,
        _ => return None,
    })
}

fn v6_range(ip: Ipv6Addr) -> Option<Range> {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return v4_range(v4);
    }
    let segments = ip.segments();
    Some(match segments {
        _ if ip.is_unspecified() => Range::Unspecified,
        _ if ip.is_loopback() => Range::Loopback,
        // AWS's IPv6 metadata service.
        [0xfd00, 0x0ec2, 0, 0, 0, 0, 0, 0x0254] => Range::Metadata,
        // IPv4-compatible (deprecated), NAT64 and the discard prefix: they can reach IPv4
        // or nothing; refused rather than decoded.
        [0, 0, 0, 0, 0, 0, _, _] | [0x64, 0xff9b, ..] | [0x100, 0, 0, 0, ..] => Range::Reserved,
        [s, ..] if s & 0xfe00 == 0xfc00 => Range::UniqueLocal,
        [s, ..] if s & 0xffc0 == 0xfe80 => Range::LinkLocal,
        // Site-local (deprecated, still routed inside some networks).
        [s, ..] if s & 0xffc0 == 0xfec0 => Range::Private,
        [s, ..] if s & 0xff00 == 0xff00 => Range::Multicast,
        // Documentation, ORCHIDv2, 6to4 (embeds any IPv4 address), Teredo.
        [0x2001, 0x0db8, ..] | [0x2001, 0x0010..=0x002f, ..] | [0x2002, ..] | [0x2001, 0, ..] => {
            Range::Reserved
        }
        _ => return None,
    })
}

/// The special-purpose range `ip` is in, if it is not a public unicast address.
pub(crate) fn special_range(ip: IpAddr) -> Option<Range> {
    match ip {
        IpAddr::V4(v4) => v4_range(v4),
        IpAddr::V6(v6) => v6_range(v6),
    }
}

/// Whether a host name always means this machine (RFC 6761 §6.3).
pub(crate) fn is_localhost_name(host: &str) -> bool {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    host == "localhost" || host.ends_with(".localhost")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(text: &str) -> Option<&'static str> {
        special_range(text.parse().unwrap()).map(Range::name)
    }

    #[test]
    fn special_ranges_are_named_and_public_addresses_pass() {
        for (ip, name) in [
            ("127.0.0.1", "loopback"),
            ("127.200.0.9", "loopback"),
            ("::1", "loopback"),
            ("::ffff:127.0.0.1", "loopback"),
            ("10.1.2.3", "private"),
            ("172.16.0.1", "private"),
            ("172.31.255.255", "private"),
            ("192.168.1.1", "private"),
            ("100.64.0.1", "shared (CGNAT)"),
            ("100.127.255.254", "shared (CGNAT)"),
            ("169.254.1.1", "link-local"),
            ("fe80::1", "link-local"),
            ("169.254.169.254", "cloud metadata"),
            ("::ffff:169.254.169.254", "cloud metadata"),
            ("fd00:ec2::254", "cloud metadata"),
            ("fd12:3456::1", "unique-local"),
            ("fc00::1", "unique-local"),
            ("224.0.0.1", "multicast"),
            ("ff02::1", "multicast"),
            ("0.0.0.0", "unspecified"),
            ("::", "unspecified"),
            ("255.255.255.255", "reserved"),
            ("192.0.2.10", "reserved"),
            ("2001:db8::1", "reserved"),
            ("64:ff9b::a00:1", "reserved"),
            ("::a00:1", "reserved"),
            ("2002:a00:1::", "reserved"),
        ] {
            assert_eq!(range(ip), Some(name), "{ip}");
        }
        for public in [
            "93.184.216.34",
            "8.8.8.8",
            "172.32.0.1",
            "100.128.0.1",
            "2606:4700::1111",
        ] {
            assert_eq!(range(public), None, "{public} is public");
        }
    }

    #[test]
    fn the_allow_list_exempts_what_it_names_and_nothing_else() {
        let policy = NetPolicy {
            allow: vec![
                "10.9.0.0/16".parse().unwrap(),
                "sms.internal".parse().unwrap(),
            ],
            ..NetPolicy::default()
        };
        let ip = |t: &str| t.parse::<IpAddr>().unwrap();
        assert!(policy.check_ip("gw.example", ip("10.9.3.4")).is_ok());
        assert!(policy.check_ip("SMS.internal", ip("192.168.0.7")).is_ok());
        let refused = policy.check_ip("gw.example", ip("10.8.3.4")).unwrap_err();
        assert_eq!(
            refused.to_string(),
            "gw.example resolves to 10.8.3.4, a private address, which is not allowed"
        );
        // Loopback needs its own switch.
        assert!(policy.check_ip("localhost", ip("127.0.0.1")).is_err());
        assert!(NetPolicy::loopback()
            .check_ip("localhost", ip("127.0.0.1"))
            .is_ok());
        assert!(NetPolicy::loopback()
            .check_ip("x", ip("169.254.169.254"))
            .is_err());
        let bad = "not a host!".parse::<Allowed>().unwrap_err();
        assert!(bad.to_string().contains("\"not a host!\""), "{bad}");
        assert_eq!(
            "10.1.2.3".parse::<Allowed>().unwrap(),
            Allowed::Net("10.1.2.3/32".parse().unwrap())
        );
    }
}
