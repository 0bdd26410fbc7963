//! Steering the listeners' datagrams to workers by source IP address (`steer_by_source_ip`).
//!
//! Each listen address is its own SO_REUSEPORT group (the kernel groups sockets by bound
//! address and port) with its own copy of the program, so a client reaches the same worker
//! whichever of the engine's addresses it sends to.
//!
//! Without a program the kernel picks a socket of the SO_REUSEPORT group by a hash of the
//! 4-tuple, so two ports of one client (an RTP/RTCP pair, a TURN client's two allocations) may
//! reach different workers. A classic BPF program attached to the group with
//! SO_ATTACH_REUSEPORT_CBPF (Linux 4.5+ for UDP) returns the index of the socket instead, and
//! this one computes it from the source address alone. `socket(7)`: "Sockets are numbered in
//! the order in which they are added to the group (that is, the order of bind(2) calls for UDP
//! sockets)"; the engine binds worker i's socket i-th, so index i is worker i. An index out of
//! range (never returned here) would fall back to the 4-tuple hash; a socket leaving the group
//! would move the last one into its place, which is why a worker never closes a listener.
//!
//! The program, as [`program`] builds it for `n` workers:
//!
//! ```text
//! 0: ldb [net+0]          A = first byte of the IP header         (BPF_LD|BPF_B|BPF_ABS)
//! 1: and #0xf0            A = version nibble, in place            (BPF_ALU|BPF_AND|BPF_K)
//! 2: jeq #0x60, 5, 3      IPv6?                                   (BPF_JMP|BPF_JEQ|BPF_K)
//! 3: ld [net+12]          IPv4: A = source address                (BPF_LD|BPF_W|BPF_ABS)
//! 4: ja 6                                                         (BPF_JMP|BPF_JA)
//! 5: ld [net+20]          IPv6: A = last 32 bits of the source    (BPF_LD|BPF_W|BPF_ABS)
//! 6: mul #0x9e3779b1      mix all 32 bits into the high half      (BPF_ALU|BPF_MUL|BPF_K)
//! 7: rsh #16              keep the high half                      (BPF_ALU|BPF_RSH|BPF_K)
//! 8: mod #n               worker index                            (BPF_ALU|BPF_MOD|BPF_K)
//! 9: ret a                                                        (BPF_RET|BPF_A)
//! ```
//!
//! A reuseport program sees the packet from the UDP payload on, so the IP header is read at
//! negative offsets from `SKF_NET_OFF` (`net` above). Loads are big-endian: A holds the
//! address as `u32::from(Ipv4Addr)` does. An IPv4 client of a dual-stack listener arrives as
//! IPv4 on the wire; its IPv4-mapped form (`::ffff:a.b.c.d`) has the same last 32 bits, so
//! [`worker_for_source_ip`] agrees whichever form a caller holds.
//!
//! Why multiply and shift rather than `address % n`: a plain modulus by a power-of-two worker
//! count looks only at the last bits of the address, and real client addresses are not
//! uniform there (home gateways and NAT pools favour `.1` and aligned blocks; every `x.y.z.1`
//! would land on one worker of 2, 4 or 8). Multiplying by an odd constant (2^32 / golden ratio,
//! Fibonacci hashing) makes the high half depend on every bit of the address, and consecutive
//! addresses still land on different workers. The low bits of the product depend only on the
//! low bits of the address, so the shift to the high half is what does the mixing.

use std::io;
use std::mem::size_of;
use std::net::{IpAddr, UdpSocket};
use std::os::fd::AsRawFd;

use crate::handler::WorkerId;

/// 2^32 divided by the golden ratio, rounded to odd: Knuth's multiplicative hashing constant.
const MIX: u32 = 0x9e37_79b1;
/// The product's low half depends only on the address's low bits; its high half is kept.
const MIX_SHIFT: u32 = 16;
/// Instructions in the program.
const LEN: usize = 10;

/// The worker the steering program picks for datagrams from `source` when the engine runs
/// `workers` workers (`Engine::workers`) with `steer_by_source_ip`: the program's arithmetic,
/// in Rust. Every port of one address maps to the same worker; one worker means worker 0.
/// Without `steer_by_source_ip` the kernel hashes the 4-tuple and this says nothing.
pub fn worker_for_source_ip(source: IpAddr, workers: usize) -> WorkerId {
    if workers <= 1 {
        return WorkerId(0);
    }
    let key = match source {
        IpAddr::V4(v4) => u32::from(v4),
        IpAddr::V6(v6) => {
            let [.., a, b, c, d] = v6.octets();
            u32::from_be_bytes([a, b, c, d])
        }
    };
    // `workers` is at most 1024 (`EngineConfig::validate`), so the index fits in u16.
    WorkerId((key.wrapping_mul(MIX) >> MIX_SHIFT) as u16 % workers as u16)
}

fn stmt(code: u32, k: u32) -> libc::sock_filter {
    libc::sock_filter { code: code as u16, jt: 0, jf: 0, k }
}

fn jump(code: u32, k: u32, jt: u8, jf: u8) -> libc::sock_filter {
    libc::sock_filter { code: code as u16, jt, jf, k }
}

/// An offset into the network header, as a load's `k`.
fn net(offset: i32) -> u32 {
    (libc::SKF_NET_OFF + offset) as u32
}

/// The steering program for `workers` (> 1) sockets; listed in the module docs.
pub(crate) fn program(workers: u32) -> [libc::sock_filter; LEN] {
    use libc::{
        BPF_A, BPF_ABS, BPF_ALU, BPF_AND, BPF_B, BPF_JA, BPF_JEQ, BPF_JMP, BPF_K, BPF_LD, BPF_MOD, BPF_MUL,
        BPF_RET, BPF_RSH, BPF_W,
    };
    [
        stmt(BPF_LD | BPF_B | BPF_ABS, net(0)),
        stmt(BPF_ALU | BPF_AND | BPF_K, 0xf0),
        jump(BPF_JMP | BPF_JEQ | BPF_K, 0x60, 2, 0),
        stmt(BPF_LD | BPF_W | BPF_ABS, net(12)),
        stmt(BPF_JMP | BPF_JA, 1),
        stmt(BPF_LD | BPF_W | BPF_ABS, net(20)),
        stmt(BPF_ALU | BPF_MUL | BPF_K, MIX),
        stmt(BPF_ALU | BPF_RSH | BPF_K, MIX_SHIFT),
        stmt(BPF_ALU | BPF_MOD | BPF_K, workers),
        stmt(BPF_RET | BPF_A, 0),
    ]
}

/// Attaches the steering program for `workers` (> 1) sockets to the reuseport group `socket`
/// belongs to; it applies to every socket of the group, including later ones.
pub(crate) fn attach(socket: &UdpSocket, workers: usize) -> io::Result<()> {
    let program = program(workers as u32);
    let fprog = libc::sock_fprog { len: LEN as u16, filter: program.as_ptr().cast_mut() };
    // SAFETY: `fprog` and the `program` array it points to are locals that live until the call
    // returns; the kernel copies the instructions during setsockopt and never writes to them
    // (the `*mut` is only the C declaration's).
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_ATTACH_REUSEPORT_CBPF,
            (&raw const fprog).cast(),
            size_of::<libc::sock_fprog>() as libc::socklen_t,
        )
    };
    if rc == 0 { Ok(()) } else { Err(io::Error::last_os_error()) }
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use super::*;

    /// Runs the program as the kernel would on a datagram whose network header is `header`.
    /// Knows only the instructions `program` uses.
    fn run(program: &[libc::sock_filter], header: &[u8]) -> u32 {
        let load = |k: u32, size: usize| {
            let at = (k as i32 - libc::SKF_NET_OFF) as usize;
            header[at..at + size].iter().fold(0u32, |a, &b| a << 8 | u32::from(b))
        };
        let (mut a, mut pc) = (0u32, 0usize);
        loop {
            let insn = program[pc];
            pc += 1;
            match u32::from(insn.code) {
                c if c == libc::BPF_LD | libc::BPF_B | libc::BPF_ABS => a = load(insn.k, 1),
                c if c == libc::BPF_LD | libc::BPF_W | libc::BPF_ABS => a = load(insn.k, 4),
                c if c == libc::BPF_ALU | libc::BPF_AND | libc::BPF_K => a &= insn.k,
                c if c == libc::BPF_ALU | libc::BPF_MUL | libc::BPF_K => a = a.wrapping_mul(insn.k),
                c if c == libc::BPF_ALU | libc::BPF_RSH | libc::BPF_K => a >>= insn.k,
                c if c == libc::BPF_ALU | libc::BPF_MOD | libc::BPF_K => a %= insn.k,
                c if c == libc::BPF_JMP | libc::BPF_JA => pc += insn.k as usize,
                c if c == libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K => {
                    pc += usize::from(if a == insn.k { insn.jt } else { insn.jf })
                }
                c if c == libc::BPF_RET | libc::BPF_A => return a,
                c => panic!("instruction {c:#x} not modelled"),
            }
        }
    }

    fn ipv4_header(source: Ipv4Addr) -> Vec<u8> {
        let mut header = vec![0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, 17, 0, 0];
        header.extend_from_slice(&source.octets());
        header.extend_from_slice(&[10, 0, 0, 1]);
        header
    }

    fn ipv6_header(source: Ipv6Addr) -> Vec<u8> {
        let mut header = vec![0x60, 0, 0, 0, 0, 0, 17, 64];
        header.extend_from_slice(&source.octets());
        header.extend_from_slice(&Ipv6Addr::LOCALHOST.octets());
        header
    }

    #[test]
    fn the_program_and_the_rust_function_agree() {
        for workers in [2u32, 3, 4, 7, 16, 1024] {
            let program = program(workers);
            for i in 0..2000u32 {
                let v4 = Ipv4Addr::from(i.wrapping_mul(0x0101_0733) ^ 0x7f00_0001);
                let picked = run(&program, &ipv4_header(v4));
                assert_eq!(picked, u32::from(worker_for_source_ip(v4.into(), workers as usize).0), "{v4}");
                assert!(picked < workers);

                let v6 = Ipv6Addr::new(0x2001, 0xdb8, 0, i as u16, 0, 0, (i >> 3) as u16, i as u16);
                let picked = run(&program, &ipv6_header(v6));
                assert_eq!(picked, u32::from(worker_for_source_ip(v6.into(), workers as usize).0), "{v6}");
            }
        }
    }

    #[test]
    fn an_ipv4_mapped_address_picks_the_ipv4_worker() {
        for i in 0..256u32 {
            let v4 = Ipv4Addr::from(0xc633_6400 | i);
            let mapped = IpAddr::V6(v4.to_ipv6_mapped());
            assert_eq!(worker_for_source_ip(mapped, 5), worker_for_source_ip(v4.into(), 5));
        }
    }

    #[test]
    fn addresses_that_differ_only_in_high_bits_still_spread() {
        // Every x.y.z.1 (what a plain `% 4` would put on one worker), and a run of
        // consecutive addresses: each worker gets its share, within 15%.
        for workers in [2usize, 3, 4, 8] {
            let gateways = (0..4096u32).map(|i| Ipv4Addr::from(0x5000_0001 | i << 8));
            let consecutive = (0..4096u32).map(|i| Ipv4Addr::from(0xc0a8_0000 | i));
            for (name, population) in
                [("x.y.z.1", gateways.collect::<Vec<_>>()), ("consecutive", consecutive.collect())]
            {
                let mut per_worker = vec![0usize; workers];
                for ip in &population {
                    per_worker[usize::from(worker_for_source_ip((*ip).into(), workers).0)] += 1;
                }
                let fair = population.len() / workers;
                for &n in &per_worker {
                    assert!(n.abs_diff(fair) * 100 <= fair * 15, "{name}, {workers} workers: {per_worker:?}");
                }
            }
        }
    }

    #[test]
    fn one_worker_is_worker_zero() {
        assert_eq!(worker_for_source_ip(Ipv4Addr::LOCALHOST.into(), 1), WorkerId(0));
        assert_eq!(worker_for_source_ip(Ipv6Addr::LOCALHOST.into(), 0), WorkerId(0));
    }
}
