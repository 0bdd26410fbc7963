//! Which interface a relayed packet to an address leaves by, and how large it may be: what
//! the kernel program cannot ask itself (its route lookup helper refuses to answer on hosts
//! that do not forward), worked out once per route when the daemon writes it.

use std::ffi::CStr;
use std::io;
use std::net::{Ipv4Addr, UdpSocket};

use super::layout::Exit;

/// The largest packet the stack delivers locally in one piece (loopback's MTU is larger).
const LOCAL_MTU: u32 = 65_535;

/// How a packet to `to` leaves: delivered locally when `to` is this host's own address,
/// otherwise by the interface that holds the source address the kernel picks for `to`.
/// `None`: no route, or one through an interface this cannot name; such routes stay with the
/// daemon's sockets.
pub(crate) fn exit_towards(to: Ipv4Addr) -> Option<Exit> {
    let addresses = interface_addresses().ok()?;
    if to.is_loopback() || addresses.iter().any(|(_, ip)| *ip == to) {
        return Some(Exit { ifindex: 0, mtu: LOCAL_MTU });
    }
    // connect() on a UDP socket only looks the route up: nothing is sent.
    let probe = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).ok()?;
    probe.connect((to, 9)).ok()?;
    let std::net::IpAddr::V4(source) = probe.local_addr().ok()?.ip() else { return None };
    let (name, _) = addresses.iter().find(|(_, ip)| *ip == source)?;
    let read = |what: &str| std::fs::read_to_string(format!("/sys/class/net/{name}/{what}")).ok();
    let ifindex = read("ifindex")?.trim().parse().ok()?;
    let mtu = read("mtu")?.trim().parse().ok()?;
    Some(Exit { ifindex, mtu })
}

/// Every IPv4 address of this host, with its interface's name.
fn interface_addresses() -> io::Result<Vec<(String, Ipv4Addr)>> {
    let mut list: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs writes a list head to `list`, which we free below with freeifaddrs.
    if unsafe { libc::getifaddrs(&mut list) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let mut found = Vec::new();
    let mut entry = list;
    while !entry.is_null() {
        // SAFETY: `entry` is a node of the list getifaddrs returned, not yet freed.
        let ifa = unsafe { &*entry };
        entry = ifa.ifa_next;
        if ifa.ifa_addr.is_null() || ifa.ifa_name.is_null() {
            continue;
        }
        // SAFETY: a non-null ifa_addr points to a sockaddr whose family says its real type.
        if i32::from(unsafe { (*ifa.ifa_addr).sa_family }) != libc::AF_INET {
            continue;
        }
        // SAFETY: an AF_INET address is a sockaddr_in; the name is a NUL-terminated string.
        let (sin, name) =
            unsafe { (&*(ifa.ifa_addr as *const libc::sockaddr_in), CStr::from_ptr(ifa.ifa_name)) };
        let ip = Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr));
        found.push((name.to_string_lossy().into_owned(), ip));
    }
    // SAFETY: `list` came from getifaddrs and no reference into it outlives this call.
    unsafe { libc::freeifaddrs(list) };
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_addresses_are_delivered_locally() {
        assert_eq!(exit_towards(Ipv4Addr::LOCALHOST), Some(Exit { ifindex: 0, mtu: LOCAL_MTU }));
        assert_eq!(exit_towards(Ipv4Addr::new(127, 1, 2, 3)), Some(Exit { ifindex: 0, mtu: LOCAL_MTU }));
        let addresses = interface_addresses().unwrap();
        assert!(addresses.iter().any(|(name, ip)| name == "lo" && ip.is_loopback()), "{addresses:?}");
        for (_, ip) in addresses {
            assert_eq!(exit_towards(ip).map(|e| e.ifindex), Some(0), "{ip} is this host's");
        }
    }
}
