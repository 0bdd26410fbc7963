//! Where lost packets were lost: the kernel's per-socket drop counters from `/proc/net/udp`.
//!
//! A UDP socket's `drops` column counts datagrams the kernel discarded because the socket's
//! receive buffer was full. Summed over the forwarder's port it says the forwarder fell behind
//! (it was not scheduled, or too slow); summed over the sinks' ports it says the load
//! generator did, and the loss is not the forwarder's fault.

use std::fs;
use std::io;

/// Drops summed over every IPv4 UDP socket bound to one of `ports` (all sockets of an
/// SO_REUSEPORT group share the port, so the engine's workers are all counted).
pub fn udp_drops(ports: &[u16]) -> io::Result<u64> {
    Ok(parse(&fs::read_to_string("/proc/net/udp")?, ports))
}

/// Drops summed over every IPv4 UDP socket of the machine.
pub fn all_udp_drops() -> io::Result<u64> {
    let table = fs::read_to_string("/proc/net/udp")?;
    Ok(table
        .lines()
        .skip(1)
        .filter_map(|line| line.split_ascii_whitespace().last()?.parse::<u64>().ok())
        .sum())
}

/// Each line after the header: `sl local_address rem_address st ... drops`, with the local
/// address as `HEXIP:HEXPORT` and drops as the last field.
fn parse(table: &str, ports: &[u16]) -> u64 {
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_ascii_whitespace().collect();
            let (_, port) = fields.get(1)?.split_once(':')?;
            let port = u16::from_str_radix(port, 16).ok()?;
            let drops: u64 = fields.last()?.parse().ok()?;
            ports.contains(&port).then_some(drops)
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drops_are_summed_over_matching_ports() {
        let table = "   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  \
                     timeout inode ref pointer drops\n\
            1: 0100007F:1F90 00000000:0000 07 00000000:00000000 00:00000000 00000000 0 0 1 2 0 7\n\
            2: 0100007F:1F90 00000000:0000 07 00000000:00000000 00:00000000 00000000 0 0 3 2 0 5\n\
            3: 0100007F:1F91 00000000:0000 07 00000000:00000000 00:00000000 00000000 0 0 4 2 0 100\n";
        assert_eq!(parse(table, &[8080]), 12);
        assert_eq!(parse(table, &[8081, 8080]), 112);
        assert_eq!(parse(table, &[1]), 0);
    }
}
