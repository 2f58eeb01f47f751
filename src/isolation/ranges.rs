//! The arithmetic of the isolation model: CIDR blocks that contain addresses (IPv4 and IPv6), and
//! traffic as a set of protocols and port ranges that rules add to and subtract from. Partial
//! shadowing is subtraction: a drop of `TCP 22/22` before an accept of `ALL` leaves every other port
//! open, so the accept still opens a path.
//!
//! `core::net` is the address parser: it does no I/O (the pure core may not name `std::net`, whose
//! sockets it must never touch; the address types are the same).

use core::net::IpAddr;

/// One CIDR block, IPv4 or IPv6. A bare address is a /32 (or /128).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// `10.0.0.0/8`, `2408:4000::/32`, `10.0.0.1`; `None` for anything else.
    pub fn parse(text: &str) -> Option<Cidr> {
        let text = text.trim();
        let (addr, prefix) = match text.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (text, None),
        };
        let network: IpAddr = addr.parse().ok()?;
        let max = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p.parse::<u8>().ok().filter(|p| *p <= max)?,
            None => max,
        };
        Some(Cidr { network, prefix })
    }

    /// Whether `addr` is inside the block; an IPv4 block never contains an IPv6 address.
    pub fn contains(&self, addr: &IpAddr) -> bool {
        match (self.network, addr) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(n) & mask == u32::from(*a) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(n) & mask == u128::from(*a) & mask
            }
            _ => false,
        }
    }
}

/// Sorted, disjoint, non-adjacent inclusive ranges of ports.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PortSet(Vec<(u16, u16)>);

impl PortSet {
    pub const ALL: (u16, u16) = (1, 65535);

    pub fn all() -> PortSet {
        PortSet(vec![Self::ALL])
    }

    pub fn range(from: u16, to: u16) -> PortSet {
        if from > to {
            PortSet::default()
        } else {
            PortSet(vec![(from, to)])
        }
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn union(&self, other: &PortSet) -> PortSet {
        let mut all: Vec<(u16, u16)> = self.0.iter().chain(&other.0).copied().collect();
        all.sort_unstable();
        let mut out: Vec<(u16, u16)> = Vec::with_capacity(all.len());
        for (a, b) in all {
            match out.last_mut() {
                Some(last) if u32::from(a) <= u32::from(last.1) + 1 => last.1 = last.1.max(b),
                _ => out.push((a, b)),
            }
        }
        PortSet(out)
    }

    pub fn minus(&self, other: &PortSet) -> PortSet {
        let mut out = Vec::new();
        for &(a, b) in &self.0 {
            let mut start = u32::from(a);
            let end = u32::from(b);
            for &(c, d) in &other.0 {
                let (c, d) = (u32::from(c), u32::from(d));
                if d < start || c > end {
                    continue;
                }
                if c > start {
                    out.push((start as u16, (c - 1) as u16));
                }
                start = start.max(d + 1);
                if start > end {
                    break;
                }
            }
            if start <= end {
                out.push((start as u16, end as u16));
            }
        }
        PortSet(out)
    }

    pub fn intersect(&self, other: &PortSet) -> PortSet {
        self.minus(&self.minus(other))
    }
}

/// A set of traffic: TCP and UDP by destination port, and the port-less protocols whole. `other`
/// stands for every protocol a rule cannot name one by one (ALL covers them).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Traffic {
    pub tcp: PortSet,
    pub udp: PortSet,
    pub icmp: bool,
    pub icmpv6: bool,
    pub gre: bool,
    pub other: bool,
}

impl Traffic {
    pub fn everything() -> Traffic {
        Traffic {
            tcp: PortSet::all(),
            udp: PortSet::all(),
            icmp: true,
            icmpv6: true,
            gre: true,
            other: true,
        }
    }

    pub fn none() -> Traffic {
        Traffic::default()
    }

    /// The traffic of a rule's `IpProtocol` and `PortRange`, or why they cannot be understood. A
    /// TCP or UDP rule with `-1/-1` (or no range) covers every port.
    pub fn of_rule(protocol: &str, ports: Option<&str>) -> Result<Traffic, String> {
        let mut t = Traffic::none();
        match protocol.to_ascii_lowercase().as_str() {
            "all" | "-1" => return Ok(Traffic::everything()),
            "icmp" => t.icmp = true,
            "icmpv6" => t.icmpv6 = true,
            "gre" => t.gre = true,
            p @ ("tcp" | "udp") => {
                let set = port_range(ports)?;
                if p == "tcp" {
                    t.tcp = set;
                } else {
                    t.udp = set;
                }
            }
            other => return Err(format!("unknown protocol {other:?}")),
        }
        Ok(t)
    }

    pub fn is_empty(&self) -> bool {
        self.tcp.is_empty()
            && self.udp.is_empty()
            && !(self.icmp || self.icmpv6 || self.gre || self.other)
    }

    pub fn minus(&self, o: &Traffic) -> Traffic {
        Traffic {
            tcp: self.tcp.minus(&o.tcp),
            udp: self.udp.minus(&o.udp),
            icmp: self.icmp && !o.icmp,
            icmpv6: self.icmpv6 && !o.icmpv6,
            gre: self.gre && !o.gre,
            other: self.other && !o.other,
        }
    }

    pub fn union(&self, o: &Traffic) -> Traffic {
        Traffic {
            tcp: self.tcp.union(&o.tcp),
            udp: self.udp.union(&o.udp),
            icmp: self.icmp || o.icmp,
            icmpv6: self.icmpv6 || o.icmpv6,
            gre: self.gre || o.gre,
            other: self.other || o.other,
        }
    }

    pub fn intersect(&self, o: &Traffic) -> Traffic {
        self.minus(&self.minus(o))
    }
}

/// `22/22`, `1/65535`, `-1/-1` (every port).
fn port_range(text: Option<&str>) -> Result<PortSet, String> {
    let Some(text) = text.map(str::trim).filter(|t| !t.is_empty()) else {
        return Ok(PortSet::all());
    };
    if text == "-1/-1" || text == "-1" {
        return Ok(PortSet::all());
    }
    let bad = || format!("port range {text:?} is not start/end within 1..65535");
    let (a, b) = text.split_once('/').ok_or_else(bad)?;
    let (a, b): (u16, u16) = (
        a.trim().parse().map_err(|_| bad())?,
        b.trim().parse().map_err(|_| bad())?,
    );
    if a == 0 || a > b {
        return Err(bad());
    }
    Ok(PortSet::range(a, b))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn a_cidr_contains_the_addresses_of_its_own_family_only() {
        let v4 = Cidr::parse("10.1.0.0/16").unwrap();
        assert!(v4.contains(&ip("10.1.255.7")));
        assert!(!v4.contains(&ip("10.2.0.1")));
        assert!(!v4.contains(&ip("::ffff:10.1.0.1")));
        assert!(Cidr::parse("0.0.0.0/0")
            .unwrap()
            .contains(&ip("192.168.1.1")));
        assert!(Cidr::parse("10.0.0.5").unwrap().contains(&ip("10.0.0.5")));
        assert!(!Cidr::parse("10.0.0.5").unwrap().contains(&ip("10.0.0.6")));
        let v6 = Cidr::parse("2408:4000::/32").unwrap();
        assert!(v6.contains(&ip("2408:4000:0:1::9")));
        assert!(!v6.contains(&ip("2408:4001::1")));
        assert!(!v6.contains(&ip("10.0.0.1")));
        assert!(Cidr::parse("::/0").unwrap().contains(&ip("2408:4000::1")));
        for bad in ["10.0.0.0/33", "10.0.0/8", "sg-1", "", "::/129"] {
            assert_eq!(Cidr::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn port_sets_subtract_into_the_ranges_left_over() {
        let all = PortSet::all();
        assert_eq!(all.minus(&PortSet::range(22, 22)).0, [(1, 21), (23, 65535)]);
        assert!(PortSet::range(22, 22).minus(&all).is_empty());
        assert_eq!(
            PortSet::range(20, 30).intersect(&PortSet::range(25, 40)).0,
            [(25, 30)]
        );
        assert_eq!(
            PortSet::range(1, 5).union(&PortSet::range(6, 9)).0,
            [(1, 9)],
            "adjacent ranges merge"
        );
        assert_eq!(
            PortSet::range(1, 100)
                .minus(&PortSet::range(10, 20).union(&PortSet::range(30, 40)))
                .0,
            [(1, 9), (21, 29), (41, 100)]
        );
    }

    #[test]
    fn a_rule_s_protocol_and_ports_become_traffic_and_nonsense_is_refused() {
        let ssh = Traffic::of_rule("TCP", Some("22/22")).unwrap();
        assert_eq!(ssh.tcp, PortSet::range(22, 22));
        assert!(ssh.udp.is_empty() && !ssh.icmp);
        assert_eq!(
            Traffic::of_rule("all", Some("-1/-1")).unwrap(),
            Traffic::everything()
        );
        assert_eq!(
            Traffic::of_rule("udp", Some("-1/-1")).unwrap().udp,
            PortSet::all()
        );
        assert!(Traffic::of_rule("ICMPv6", Some("-1/-1")).unwrap().icmpv6);
        assert!(Traffic::of_rule("tcp", Some("30/20")).is_err());
        assert!(Traffic::of_rule("tcp", Some("0/20")).is_err());
        assert!(Traffic::of_rule("sctp", None).is_err());
        let rest = Traffic::everything().minus(&ssh);
        assert!(!rest.is_empty() && rest.tcp.intersect(&ssh.tcp).is_empty());
    }
}
