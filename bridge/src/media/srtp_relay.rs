//! SRTP relay: static routes like relay mode, but each packet is decrypted on arrival and
//! re-encrypted for every receiver with that receiver's keys, as the SFU does. It is the
//! crypto half of the SFU's hot path on the engine, without signaling: what bench-report and
//! the no-allocation test measure.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Instant;

use engine::{Datagram, Destination, DropReason, Handler, Output};

use super::srtp::Context;

/// One sender and the receivers its packets go to.
#[derive(Debug)]
pub struct SrtpRoute {
    /// Decrypts what the sender sends.
    pub inbound: Context,
    /// Where copies go, each with the context that encrypts for that receiver.
    pub to: Vec<(Destination, Context)>,
}

/// The data plane: source address to route.
#[derive(Debug, Default)]
pub struct SrtpRelay {
    routes: HashMap<SocketAddr, SrtpRoute>,
}

impl SrtpRelay {
    pub fn new(routes: HashMap<SocketAddr, SrtpRoute>) -> Self {
        Self { routes }
    }
}

impl Handler for SrtpRelay {
    fn handle(&mut self, _now: Instant, from: SocketAddr, packet: &mut Datagram<'_>, out: &mut Output<'_>) {
        let Some(route) = self.routes.get_mut(&from) else {
            out.drop_packet(DropReason::NoRoute);
            return;
        };
        let Ok(plain) = route.inbound.unprotect_rtp(&mut packet[..]) else {
            out.drop_packet(DropReason::Rejected);
            return;
        };
        packet.truncate(plain);
        for (to, context) in &mut route.to {
            let mut failed = false;
            out.send(*to, |buf| {
                let overhead = context.profile().overhead();
                let fits = buf.extend_from_slice(&packet[..]).is_ok() && buf.extend_zeroed(overhead).is_ok();
                if !fits || context.protect_rtp(&mut buf[..], plain).is_err() {
                    failed = true;
                    buf.truncate(0); // an empty packet is not sent
                }
            });
            if failed {
                out.drop_packet(DropReason::Rejected);
            }
        }
        // The decrypted packet itself goes nowhere: its slot is wiped and recycled.
    }
}
