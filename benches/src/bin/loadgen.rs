//! `loadgen`: P participants in M conferences against a running bridge, joined through the
//! signaling daemon or the bridge's control API, with real ICE, DTLS and SRTP (or plain RTP
//! through the bridge's relay mode); reports per-stream loss,
//! duplicates, reordering and one-way latency. See `loadgen --help` and
//! [`benches::loadgen`].

use std::net::SocketAddr;
use std::time::Duration;

use benches::loadgen::connect::ProfileChoice;
use benches::loadgen::schedule::VideoPattern;
use benches::loadgen::{self, Config, Progress, Receive, RunOptions, Target};
use bridge::media::srtp::Profile;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const HELP: &str = "\
loadgen: simulated meetings against a running bridge, with the real protocols

USAGE:
  loadgen --signaling URL [options]                   the SFU, joined through the signaling
                                                      daemon (the full path)
  loadgen --api ADDR [--secret S] [options]          the SFU, joined through its control API
  loadgen --relay ADDR [--base-port N] [options]      a bridge in relay mode, plain RTP
  loadgen --print-relay-config [--base-port N] [--drop-every N] [options]

Each participant sends audio (50 packets/s, 100 bytes, RFC 6464 audio level) and video
(1200-byte packets in frame bursts, marker on the last of a frame, a larger keyframe every
--keyframe-interval s), and receives what the bridge forwards from the other members of its
conference. Participant i is in conference i mod M. Sending lasts --duration, receiving
--drain-ms longer; then a summary table goes to stdout (and JSON to --json FILE). A progress
line goes to stderr every second.

SFU through the signaling daemon (signaling/PROTOCOL.md), as browsers join:
  --signaling URL            the daemon, e.g. https://127.0.0.1:8443 (its WebSocket is
                             wss://HOST/ws; its certificate is not checked: test tool)
  Each participant keeps a WebSocket open for the whole run, in room
  loadgen-<random>-<conference>, offers SDP when the room goes to the bridge, answers every
  renegotiation, and leaves at the end. The daemon connects two-member rooms peer to peer,
  which loadgen does not speak: every conference needs 3 to 32 participants (-p >= 3 * -c).
  The daemon rate-limits joins per address (rooms.join_burst, default 20, then one per
  3 s): loadgen waits, but raise it on the daemon for bigger runs.

SFU through the control API, bridge/API.md (the data plane alone):
  --api ADDR                 control API address (the bridge's control.listen)
  --secret S                 its secret (default: $BRIDGE_CONTROL_SECRET)

End-to-end encryption (any mode):
  --e2ee                     every media payload is SFrame-encrypted (RFC 9605,
                             AES_128_GCM_SHA256_128) before SRTP and decrypted after it,
                             keyed as the web client keys it (one random passphrase per run,
                             a key per sender and stream); packets keep their lengths, the
                             RTP header and audio level stay in clear, video keeps a 3-byte
                             VP8 tag in clear. Frames that do not decrypt are counted as
                             failed SFrame (a frame from another conference has no key).

Either SFU path:
  --media ADDR               send media here instead of the bridge's announced candidate
  --profile gcm|cm|both      SRTP profiles to offer (default both: the bridge picks GCM)
  --handshake-timeout-ms N   ICE + DTLS deadline per participant (default 5000)

Relay mode (no signaling, no crypto): the bridge must already know the routes, so
participant i sends from the fixed address 127.0.0.1:(base-port + i). Print the [relay]
table for the same -p/-c/--base-port with --print-relay-config, put it in the bridge's
config file (engine.listen on 127.0.0.1), start the bridge, then run loadgen --relay with
the same options:
  --relay ADDR               the relay's media address (the bridge's engine.listen)
  --base-port N              first participant port (default 40000)
  --print-relay-config       print the [relay] table and exit
  --drop-every N             with --print-relay-config: the relay's test-only fault
                             injection, dropping every N-th datagram (default 0, off)

Load:
  -p, --participants N       participants (default 6)
  -c, --conferences N        conferences (default 2)
  -d, --duration SECS        sending time (default 10)
  --drain-ms N               receiving time after sending stops (default 500)
  --warmup SECS              the first part of --duration, whose packets count for loss
                             but not for latency (default 1; 0 = measure everything)
  --video-pps N              average video packets/s per participant (default 200)
  --fps N                    video frames/s (default 30)
  --keyframe-interval SECS   0 = no larger keyframes (default 2)
  --keyframe-weight N        a keyframe's size in delta frames (default 5)
  --pacing F                 video leaves through a pacer at F times its average rate, as
                             browsers send it (libwebrtc's factor, default 2.5); 0 = every
                             frame in one burst
  --audio-level-id N         header extension id of the audio level (default 1)
  --threads N                media threads (default 1)
  --nap                      receivers sleep on the 1 ms tick only and then drain their
                             sockets, instead of sleeping on them: fewer wake-ups, which on
                             loopback the bridge pays for; latency is the same (it ends at
                             the kernel's arrival stamp)
  --nice N                   the media threads' nice value: 19 on the bridge's own host
                             keeps them from delaying it (default 0, unchanged)

Output:
  --json FILE                write the result as JSON
  -q, --quiet                no progress line
  -h, --help
";

struct Cli {
    config: Config,
    json: Option<String>,
    quiet: bool,
    print_relay: Option<u32>,
    receive: Receive,
    nice: i32,
}

fn parse(args: &[String]) -> Result<Option<Cli>, String> {
    let mut participants = 6usize;
    let mut conferences = 2usize;
    let mut duration = 10.0f64;
    let mut drain_ms = 500u64;
    let mut warmup = 1.0f64;
    let mut receive = Receive::Wake;
    let mut nice = 0i32;
    let (mut video_pps, mut fps, mut key_interval, mut key_weight) = (200u32, 30u32, 2u32, 5u32);
    let mut audio_level_id = 1u8;
    let mut pacing = 2.5f64;
    let mut threads = 1usize;
    let mut e2ee = false;
    let (mut api, mut relay, mut media): (Option<SocketAddr>, Option<SocketAddr>, Option<SocketAddr>) =
        (None, None, None);
    let mut signaling: Option<String> = None;
    let mut secret = std::env::var("BRIDGE_CONTROL_SECRET").ok();
    let mut profiles = ProfileChoice::Both;
    let mut handshake_ms = 5000u64;
    let mut base_port = 40000u16;
    let (mut print_relay, mut drop_every) = (false, 0u32);
    let (mut json, mut quiet) = (None, false);

    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let mut value = || it.next().cloned().ok_or_else(|| format!("{flag} needs a value"));
        fn num<T: std::str::FromStr>(flag: &str, v: String) -> Result<T, String> {
            v.parse().map_err(|_| format!("{flag}: bad value {v:?}"))
        }
        match flag.as_str() {
            "-h" | "--help" => return Ok(None),
            "-p" | "--participants" => participants = num(flag, value()?)?,
            "-c" | "--conferences" => conferences = num(flag, value()?)?,
            "-d" | "--duration" => duration = num(flag, value()?)?,
            "--drain-ms" => drain_ms = num(flag, value()?)?,
            "--warmup" => warmup = num(flag, value()?)?,
            "--nap" => receive = Receive::Nap,
            "--nice" => nice = num(flag, value()?)?,
            "--video-pps" => video_pps = num(flag, value()?)?,
            "--fps" => fps = num(flag, value()?)?,
            "--keyframe-interval" => key_interval = num(flag, value()?)?,
            "--keyframe-weight" => key_weight = num(flag, value()?)?,
            "--pacing" => pacing = num(flag, value()?)?,
            "--audio-level-id" => audio_level_id = num(flag, value()?)?,
            "--threads" => threads = num(flag, value()?)?,
            "--e2ee" => e2ee = true,
            "--api" => api = Some(num(flag, value()?)?),
            "--secret" => secret = Some(value()?),
            "--signaling" => signaling = Some(value()?),
            "--media" => media = Some(num(flag, value()?)?),
            "--profile" => {
                profiles = match value()?.as_str() {
                    "gcm" => ProfileChoice::Only(Profile::AeadAes128Gcm),
                    "cm" => ProfileChoice::Only(Profile::Aes128CmHmacSha1_80),
                    "both" => ProfileChoice::Both,
                    other => return Err(format!("--profile {other}: expected gcm, cm or both")),
                }
            }
            "--handshake-timeout-ms" => handshake_ms = num(flag, value()?)?,
            "--relay" => relay = Some(num(flag, value()?)?),
            "--base-port" => base_port = num(flag, value()?)?,
            "--print-relay-config" => print_relay = true,
            "--drop-every" => drop_every = num(flag, value()?)?,
            "--json" => json = Some(value()?),
            "-q" | "--quiet" => quiet = true,
            other => return Err(format!("unknown option {other:?} (see --help)")),
        }
    }
    if !(1..=14).contains(&audio_level_id) {
        return Err("--audio-level-id: a one-byte extension id is 1..=14".into());
    }
    if !duration.is_finite() || duration <= 0.0 || duration > 86_400.0 {
        return Err("--duration: seconds, more than 0".into());
    }
    if !pacing.is_finite() || !(pacing == 0.0 || (1.0..=100.0).contains(&pacing)) {
        return Err("--pacing: 0 (no pacer) or a factor from 1 to 100".into());
    }
    if !warmup.is_finite() || !(0.0..duration).contains(&warmup) {
        return Err("--warmup: seconds, at least 0 and less than --duration".into());
    }
    let target = match (api, relay, signaling, print_relay) {
        (_, _, _, true) => Target::Relay { relay: SocketAddr::from(([127, 0, 0, 1], 0)), base_port },
        (None, None, Some(url), false) => {
            Target::Signaling { url, media, profiles, handshake_timeout: Duration::from_millis(handshake_ms) }
        }
        (Some(api), None, None, false) => Target::ControlApi {
            api,
            secret: secret.ok_or("--api needs --secret or BRIDGE_CONTROL_SECRET")?,
            media,
            profiles,
            handshake_timeout: Duration::from_millis(handshake_ms),
        },
        (None, Some(relay), None, false) => Target::Relay { relay, base_port },
        _ => return Err("give exactly one of --signaling, --api and --relay (see --help)".into()),
    };
    let config = Config {
        participants,
        conferences,
        duration: Duration::from_secs_f64(duration),
        drain: Duration::from_millis(drain_ms),
        warmup: Duration::from_secs_f64(warmup),
        video: VideoPattern::new(video_pps, fps, key_interval, key_weight).paced(pacing),
        audio_level_id,
        threads,
        target,
        e2ee,
    };
    Ok(Some(Cli { config, json, quiet, print_relay: print_relay.then_some(drop_every), receive, nice }))
}

fn show(progress: &Progress, last: &mut Progress) {
    let secs = (progress.elapsed - last.elapsed).as_secs_f64().max(1e-9);
    let out = (progress.sent - last.sent) as f64 / secs;
    let incoming = (progress.received - last.received) as f64 / secs;
    let loss = 100.0 * progress.gaps as f64 / (progress.received + progress.gaps).max(1) as f64;
    eprintln!(
        "loadgen: {:>4.0} s  out {out:>9.0} pkt/s  in {incoming:>9.0} pkt/s  loss so far {loss:.3}% ({} missing)",
        progress.elapsed.as_secs_f64(),
        progress.gaps
    );
    *last = *progress;
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let cli = match parse(&args) {
        Ok(Some(cli)) => cli,
        Ok(None) => {
            print!("{HELP}");
            return;
        }
        Err(e) => {
            eprintln!("loadgen: {e}");
            std::process::exit(2);
        }
    };
    if let (Some(drop_every), Target::Relay { base_port, .. }) = (cli.print_relay, &cli.config.target) {
        let c = &cli.config;
        print!("{}", loadgen::relay_routes(c.participants, c.conferences, *base_port, drop_every));
        return;
    }
    let mut last = Progress::default();
    let quiet = cli.quiet;
    let options = RunOptions { receive: cli.receive, nice: cli.nice, ..RunOptions::default() };
    let report = match loadgen::run_with(&cli.config, &options, |p| {
        if !quiet {
            show(p, &mut last)
        }
    }) {
        Ok(report) => report,
        Err(e) => {
            eprintln!("loadgen: {e}");
            std::process::exit(1);
        }
    };
    print!("{}", report.table());
    if let Some(path) = cli.json {
        let text = serde_json::to_string_pretty(&report.to_json()).expect("a JSON value always serializes");
        if let Err(e) = std::fs::write(&path, text + "\n") {
            eprintln!("loadgen: {path}: {e}");
            std::process::exit(1);
        }
    }
}
