//! Which local address a relay socket binds, and which address the client is told.

use std::net::{IpAddr, SocketAddr};

use stun::AddressFamily;

use crate::config::{ExternalIp, TurnConfig};

#[derive(Debug)]
pub(crate) struct Addresses {
    relay_ips: Vec<IpAddr>,
    listening_ips: Vec<IpAddr>,
    external: Vec<ExternalIp>,
}

impl Addresses {
    pub fn new(config: &TurnConfig) -> Self {
        Self {
            relay_ips: config.relay_ips.clone(),
            listening_ips: config.listening_ips.clone(),
            external: config.external_ips.clone(),
        }
    }

    /// The address to relay from for `family`: the first `relay-ip` of the family, else the
    /// first `listening-ip` (coturn's default), else the address the client reached.
    pub fn relay_ip(&self, family: AddressFamily, reached: IpAddr) -> Option<IpAddr> {
        let of_family = |ip: &&IpAddr| AddressFamily::of(**ip) == family;
        if !self.relay_ips.is_empty() {
            return self.relay_ips.iter().find(of_family).copied();
        }
        if !self.listening_ips.is_empty() {
            return self.listening_ips.iter().find(of_family).copied();
        }
        (AddressFamily::of(reached) == family && !reached.is_unspecified()).then_some(reached)
    }

    /// What the client is told for a relay bound to `local`: `external-ip=public/private`
    /// maps `private`; a bare `external-ip=public` maps every relay address of its family.
    pub fn announced(&self, local: SocketAddr) -> SocketAddr {
        let ip = local.ip();
        let public = self
            .external
            .iter()
            .find(|e| e.private == Some(ip))
            .or_else(|| {
                self.external
                    .iter()
                    .find(|e| e.private.is_none() && AddressFamily::of(e.public) == AddressFamily::of(ip))
            })
            .map_or(ip, |e| e.public);
        SocketAddr::new(public, local.port())
    }
}
