//! The relaying paths (ChannelData and Send indications from the client, peer datagrams back
//! as ChannelData or Data indications) allocate nothing: counted with a global allocator
//! around thousands of relayed packets, through an I/O layer that allocates nothing either.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use stun::TransactionId;
use turn::client::{AllocateOptions, Client, Outcome, write_channel_data};
use turn::config::TurnConfig;
use turn::server::{
    ChannelNumber, ClientTuple, Now, PortRequest, RelayError, RelayId, Server, Shared, Transport, TurnIo,
};

#[path = "../../scripts/counting_allocator.rs"]
mod counting_allocator;

#[global_allocator]
static GLOBAL: counting_allocator::Counting = counting_allocator::Counting;

/// Keeps the last message for each side in fixed buffers.
struct StaticIo {
    client_buf: [u8; 1504],
    client_len: usize,
    peer_sends: usize,
    relay: Option<(RelayId, SocketAddr)>,
}

impl TurnIo for StaticIo {
    fn to_client(&mut self, _: &ClientTuple, write: impl FnOnce(&mut [u8]) -> usize) -> bool {
        self.client_len = write(&mut self.client_buf);
        true
    }

    fn to_peer(&mut self, _: RelayId, _: SocketAddr, _: &[u8], _: bool) -> bool {
        self.peer_sends += 1;
        true
    }

    fn open_relay(&mut self, ip: IpAddr, _: PortRequest) -> Result<(RelayId, SocketAddr), RelayError> {
        let relay = (RelayId(1), SocketAddr::new(ip, 50000));
        self.relay = Some(relay);
        Ok(relay)
    }

    fn close_relay(&mut self, _: RelayId) {}
}

#[test]
fn relaying_allocates_nothing() {
    let config = TurnConfig::parse(
        "lt-cred-mech\nuser=ada:lovelace\nrealm=r\nrelay-ip=192.0.2.10\nmax-bps=1000000000\n",
    )
    .unwrap()
    .config;
    let mut server = Server::new(&config, Arc::new(Shared::new(&config)), [1; 32]);
    let mut io = StaticIo { client_buf: [0; 1504], client_len: 0, peer_sends: 0, relay: None };
    let tuple = ClientTuple {
        transport: Transport::Udp,
        client: "198.51.100.1:40000".parse().unwrap(),
        server: "192.0.2.10:3478".parse().unwrap(),
    };
    let t0 = Instant::now();
    let now = |ms: u64| Now { instant: t0 + Duration::from_millis(ms), unix_s: 1_764_172_800 };
    let mut client = Client::new("ada", "lovelace");
    let mut buf = [0u8; 1504];
    let mut request =
        |server: &mut Server, io: &mut StaticIo, build: &dyn Fn(&Client, &mut [u8]) -> usize| {
            for _ in 0..2 {
                let len = build(&client, &mut buf);
                server.handle_client(now(0), &tuple, &buf[..len], io);
                let response = client.handle_response(&io.client_buf[..io.client_len]).unwrap();
                if response.outcome != Outcome::Retry {
                    assert_eq!(response.outcome, Outcome::Success);
                    return;
                }
            }
        };
    let peer: SocketAddr = "93.184.216.34:5000".parse().unwrap();
    let other: SocketAddr = "93.184.216.34:5001".parse().unwrap();
    let t = TransactionId([1; 12]);
    request(&mut server, &mut io, &|c, b| c.allocate(b, t, &AllocateOptions::default()).unwrap().1);
    request(&mut server, &mut io, &|c, b| c.channel_bind(b, TransactionId([2; 12]), 0x4000, peer).unwrap().1);
    let (relay, _) = io.relay.unwrap();

    let channel = ChannelNumber::new(0x4000).unwrap();
    let mut channel_data = [0u8; 1204];
    let channel_len = write_channel_data(&mut channel_data, channel, &[7; 1200], false).unwrap();
    let mut send = [0u8; 1504];
    let send_len =
        client.send_indication(&mut send, TransactionId([3; 12]), other, &[8; 1200], false).unwrap();
    let payload = [9u8; 1200];

    let before = counting_allocator::ALLOCATIONS.load(Ordering::Relaxed);
    for i in 0..2000 {
        server.handle_client(now(i), &tuple, &channel_data[..channel_len], &mut io);
        server.handle_client(now(i), &tuple, &send[..send_len], &mut io);
        server.handle_peer(now(i), relay, peer, &payload, &mut io);
        server.handle_peer(now(i), relay, other, &payload, &mut io);
    }
    let allocated = counting_allocator::ALLOCATIONS.load(Ordering::Relaxed) - before;
    assert_eq!(io.peer_sends, 4000);
    assert_eq!(server.shared().metrics.peer_to_client().0, 4000);
    assert_eq!(allocated, 0, "allocations on the relaying paths");
}
