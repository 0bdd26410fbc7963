//! `turn --config FILE`: a turnserver.conf, as coturn reads it.
//!
//! Operators migrate with the file they have. The format is coturn's: one option per line,
//! `name=value` or a bare `name` for a flag, `#` comments, values optionally in double
//! quotes; names may repeat where coturn lets them (`listening-ip`, `user`, ...). We accept
//! coturn's names for the concepts we have. Names of coturn options that mean nothing here
//! (we always send FINGERPRINT, have no CLI, ...) are accepted quietly; any other name gets a
//! warning naming it and its line, and an invalid value is an error naming both.

use std::net::IpAddr;
use std::path::PathBuf;

use sdnotify::logging::{LevelFilter, parse_level};

use crate::policy::{IpRange, PeerPolicy};

/// coturn's options that have no meaning for this server, accepted without a warning.
const MEANINGLESS_HERE: [&str; 14] = [
    "fingerprint",
    "no-cli",
    "cli-password",
    "verbose",
    "Verbose",
    "log-file",
    "simple-log",
    "syslog",
    "pidfile",
    "no-stdout-log",
    "no-multicast-peers", // always: multicast peers are never relayed to
    "no-loopback-peers",  // always, unless allow-loopback-peers
    "mobility",
    "no-software-attribute",
];

/// A long-term credential (`user=name:password`, or `name:0x<hex key>` with the MD5 key).
#[derive(Clone, PartialEq, Eq)]
pub struct User {
    pub name: String,
    pub secret: UserSecret,
}

#[derive(Clone, PartialEq, Eq)]
pub enum UserSecret {
    Password(String),
    /// MD5(name:realm:password), as coturn's `turnadmin -k` prints it.
    Key([u8; 16]),
}

/// Names the kind only: secrets stay out of logs.
impl std::fmt::Debug for UserSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Password(_) => "Password(..)",
            Self::Key(_) => "Key(..)",
        })
    }
}

impl std::fmt::Debug for User {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("User").field("name", &self.name).finish_non_exhaustive()
    }
}

/// `external-ip=public[/private]`: the address announced for a relay address behind NAT.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExternalIp {
    pub public: IpAddr,
    pub private: Option<IpAddr>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TurnConfig {
    pub listening_port: u16,
    pub tls_listening_port: u16,
    /// Empty: every address of the host.
    pub listening_ips: Vec<IpAddr>,
    /// Empty: the listening addresses.
    pub relay_ips: Vec<IpAddr>,
    pub external_ips: Vec<ExternalIp>,
    pub min_port: u16,
    pub max_port: u16,
    pub realm: String,
    /// `use-auth-secret`: time-limited credentials from a shared secret (what the signaling
    /// daemon hands to browsers).
    pub use_auth_secret: bool,
    /// `static-auth-secret`, repeatable: any of them validates (rotation).
    pub static_auth_secrets: Vec<String>,
    /// `lt-cred-mech`: long-term credentials from `user` lines.
    pub lt_cred_mech: bool,
    pub users: Vec<User>,
    pub cert: Option<PathBuf>,
    pub pkey: Option<PathBuf>,
    pub peers: PeerPolicy,
    /// Allocations at once per user name; 0 = no limit.
    pub user_quota: u32,
    /// Allocations at once in total; 0 = no limit.
    pub total_quota: u32,
    /// Bytes per second per allocation; 0 = no limit.
    pub max_bps: u64,
    pub no_udp: bool,
    pub no_tcp: bool,
    pub no_tls: bool,
    /// `prometheus`: serve metrics (coturn's port, 9641).
    pub prometheus: bool,
    /// `prometheus-port`, as coturn names it.
    pub prometheus_port: u16,
    /// `prometheus-address`: where the metrics endpoint listens; coturn's default is every
    /// address (the metrics carry counts only, nothing about users or peers).
    pub prometheus_address: IpAddr,
    /// `log-level` (ours; coturn's `verbose` stays meaningless): off, error, warn, info, debug
    /// or trace. SIGHUP applies it again; `TURN_LOG` in the environment overrides it.
    pub log_level: LevelFilter,
    /// `kernel-relay-interface` (ours, repeatable): interfaces on whose ingress the in-kernel
    /// ChannelData relay runs (`crate::offload`). Empty: the daemon relays everything itself.
    /// Needs CAP_BPF and CAP_NET_ADMIN, `listening-ip`s that are all specific addresses, and
    /// relays only UDP, IPv4, channel-bound traffic of allocations without `max-bps`.
    pub kernel_relay_interfaces: Vec<String>,
}

impl Default for TurnConfig {
    fn default() -> Self {
        Self {
            listening_port: 3478,
            tls_listening_port: 5349,
            listening_ips: Vec::new(),
            relay_ips: Vec::new(),
            external_ips: Vec::new(),
            min_port: 49152,
            max_port: 65535,
            realm: String::new(),
            use_auth_secret: false,
            static_auth_secrets: Vec::new(),
            lt_cred_mech: false,
            users: Vec::new(),
            cert: None,
            pkey: None,
            peers: PeerPolicy::default(),
            user_quota: 0,
            total_quota: 0,
            max_bps: 0,
            no_udp: false,
            no_tcp: false,
            no_tls: false,
            prometheus: false,
            prometheus_port: 9641,
            prometheus_address: IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
            log_level: LevelFilter::INFO,
            kernel_relay_interfaces: Vec::new(),
        }
    }
}

/// A configuration and what the operator should hear about it.
#[derive(Debug)]
pub struct Parsed {
    pub config: TurnConfig,
    /// One line each: unknown option names, with their line numbers.
    pub warnings: Vec<String>,
}

impl TurnConfig {
    /// Parses a turnserver.conf. Errors name the line and the option.
    pub fn parse(text: &str) -> Result<Parsed, String> {
        let mut config = TurnConfig::default();
        let mut warnings = Vec::new();
        for (index, raw) in text.lines().enumerate() {
            let line_no = index + 1;
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let line = line.strip_prefix("--").unwrap_or(line);
            let (name, value) = match line.split_once('=') {
                Some((name, value)) => (name.trim(), Some(unquote(value.trim()))),
                None => (line, None),
            };
            let at = |e: String| format!("line {line_no}: {name}: {e}");
            if !config.apply(name, value).map_err(at)? {
                if MEANINGLESS_HERE.contains(&name) {
                    continue;
                }
                warnings.push(format!("line {line_no}: unknown option {name:?} ignored"));
            }
        }
        config.check()?;
        Ok(Parsed { config, warnings })
    }

    /// Applies one option; `Ok(false)` when the name is not one of ours.
    fn apply(&mut self, name: &str, value: Option<&str>) -> Result<bool, String> {
        let v = || value.filter(|v| !v.is_empty()).ok_or_else(|| "needs a value".to_string());
        let flag = || match value {
            None | Some("1" | "true" | "yes" | "on") => Ok(true),
            Some("0" | "false" | "no" | "off") => Ok(false),
            Some(other) => Err(format!("{other:?} is not a flag value (leave it out, or 1/0)")),
        };
        match name {
            "listening-port" => self.listening_port = port(v()?)?,
            "tls-listening-port" => self.tls_listening_port = port(v()?)?,
            "listening-ip" => self.listening_ips.push(ip(v()?)?),
            "relay-ip" => self.relay_ips.push(ip(v()?)?),
            "external-ip" => self.external_ips.push(external_ip(v()?)?),
            "min-port" => self.min_port = port(v()?)?,
            "max-port" => self.max_port = port(v()?)?,
            "realm" => self.realm = v()?.to_owned(),
            "use-auth-secret" => self.use_auth_secret = flag()?,
            "static-auth-secret" => self.static_auth_secrets.push(v()?.to_owned()),
            "lt-cred-mech" => self.lt_cred_mech = flag()?,
            "user" => self.users.push(user(v()?)?),
            "cert" => self.cert = Some(PathBuf::from(v()?)),
            "pkey" => self.pkey = Some(PathBuf::from(v()?)),
            "denied-peer-ip" => self.peers.denied.push(v()?.parse()?),
            "allowed-peer-ip" => self.peers.allowed.push(v()?.parse::<IpRange>()?),
            "allow-loopback-peers" => self.peers.allow_loopback = flag()?,
            "user-quota" => self.user_quota = number(v()?)?,
            "total-quota" => self.total_quota = number(v()?)?,
            "max-bps" => self.max_bps = number(v()?)?,
            "no-udp" => self.no_udp = flag()?,
            "no-tcp" => self.no_tcp = flag()?,
            "no-tls" => self.no_tls = flag()?,
            "prometheus" => self.prometheus = flag()?,
            "prometheus-port" => self.prometheus_port = port(v()?)?,
            "prometheus-address" => self.prometheus_address = ip(v()?)?,
            "log-level" => self.log_level = parse_level(v()?)?,
            "kernel-relay-interface" => self.kernel_relay_interfaces.push(interface(v()?)?),
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// Checks the options together.
    fn check(&mut self) -> Result<(), String> {
        if self.min_port > self.max_port {
            return Err(format!("min-port {} is above max-port {}", self.min_port, self.max_port));
        }
        if self.use_auth_secret && self.static_auth_secrets.is_empty() {
            return Err("use-auth-secret needs a static-auth-secret".into());
        }
        if let Some(short) = self.static_auth_secrets.iter().find(|s| s.len() < 16) {
            return Err(format!(
                "static-auth-secret: {} characters is too short to be secret (16 or more)",
                short.len()
            ));
        }
        if self.lt_cred_mech && self.users.is_empty() && !self.use_auth_secret {
            return Err("lt-cred-mech needs at least one user=name:password (or use-auth-secret)".into());
        }
        if !self.lt_cred_mech && !self.use_auth_secret {
            return Err(
                "no authentication: set use-auth-secret with static-auth-secret, or lt-cred-mech with \
                        user lines (this server never relays for anonymous clients)"
                    .into(),
            );
        }
        if (self.lt_cred_mech || self.use_auth_secret) && self.realm.is_empty() {
            return Err("realm is required with long-term credentials".into());
        }
        if self.cert.is_some() != self.pkey.is_some() {
            return Err("cert and pkey go together".into());
        }
        if self.no_udp && self.no_tcp && (self.no_tls || self.cert.is_none()) {
            return Err("every listener is off (no-udp, no-tcp, and no TLS)".into());
        }
        // UDP listens on every listening-ip; a wildcard among them would be a server address
        // the program cannot match.
        let udp_listens_on_specific_addresses =
            !self.listening_ips.is_empty() && self.listening_ips.iter().all(|ip| !ip.is_unspecified());
        if !self.kernel_relay_interfaces.is_empty() && (self.no_udp || !udp_listens_on_specific_addresses) {
            return Err("kernel-relay-interface relays UDP for specific addresses: it needs UDP on and \
                        every listening-ip a specific address, none a wildcard (the program matches \
                        the exact address clients reach)"
                .into());
        }
        // The server's own addresses are never peers (a relay to itself loops).
        let own = self.listening_ips.iter().chain(&self.relay_ips).copied();
        let external = self.external_ips.iter().flat_map(|e| std::iter::once(e.public).chain(e.private));
        self.peers.own = own.chain(external).collect();
        Ok(())
    }
}

fn unquote(value: &str) -> &str {
    value.strip_prefix('"').and_then(|v| v.strip_suffix('"')).unwrap_or(value)
}

fn port(value: &str) -> Result<u16, String> {
    match value.parse::<u16>() {
        Ok(0) | Err(_) => Err(format!("{value:?} is not a port (1-65535)")),
        Ok(port) => Ok(port),
    }
}

fn number<T: std::str::FromStr>(value: &str) -> Result<T, String> {
    value.parse().map_err(|_| format!("{value:?} is not a non-negative number"))
}

fn ip(value: &str) -> Result<IpAddr, String> {
    value.parse().map_err(|_| format!("{value:?} is not an IP address"))
}

/// A network interface's name as the kernel allows it (IFNAMSIZ, no '/' or whitespace).
fn interface(value: &str) -> Result<String, String> {
    let valid = value.len() < 16 && !value.contains(['/', ':']) && !value.chars().any(char::is_whitespace);
    if valid { Ok(value.to_owned()) } else { Err(format!("{value:?} is not an interface name")) }
}

fn external_ip(value: &str) -> Result<ExternalIp, String> {
    Ok(match value.split_once('/') {
        Some((public, private)) => ExternalIp { public: ip(public)?, private: Some(ip(private)?) },
        None => ExternalIp { public: ip(value)?, private: None },
    })
}

fn user(value: &str) -> Result<User, String> {
    let (name, secret) = value.split_once(':').ok_or("expected name:password")?;
    if name.is_empty() || secret.is_empty() {
        return Err("expected name:password".into());
    }
    let secret = match secret.strip_prefix("0x") {
        Some(hex) => UserSecret::Key(hex_key(hex).ok_or("a 0x key is 32 hex digits (MD5)")?),
        None => UserSecret::Password(secret.to_owned()),
    };
    Ok(User { name: name.to_owned(), secret })
}

fn hex_key(hex: &str) -> Option<[u8; 16]> {
    if hex.len() != 32 {
        return None;
    }
    let mut key = [0u8; 16];
    for (byte, pair) in key.iter_mut().zip(hex.as_bytes().chunks(2)) {
        *byte = u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok()?;
    }
    Some(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A coturn configuration as operators write them, with comments and a few options that
    /// mean nothing here.
    const COTURN: &str = r#"
# /etc/turnserver.conf
listening-port=3478
tls-listening-port=443
listening-ip=192.0.2.10
listening-ip=2001:db8::10
relay-ip=192.0.2.10
external-ip=203.0.113.5/192.0.2.10
min-port=49160
max-port=49200
fingerprint
use-auth-secret
static-auth-secret="0123456789abcdef0123"
realm=turn.example.org
cert=/etc/ssl/turn.pem
pkey=/etc/ssl/turn.key
denied-peer-ip=8.8.8.0-8.8.8.255
allowed-peer-ip=10.5.0.1
user-quota=12
total-quota=1200
max-bps=3000000
no-cli
prometheus
prometheus-port=9700
prometheus-address=127.0.0.1
"#;

    #[test]
    fn a_coturn_file_reads_as_coturn_means_it() {
        let Parsed { config, warnings } = TurnConfig::parse(COTURN).unwrap();
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(config.listening_port, 3478);
        assert_eq!(config.tls_listening_port, 443);
        assert_eq!(
            config.listening_ips,
            vec!["192.0.2.10".parse::<IpAddr>().unwrap(), "2001:db8::10".parse().unwrap()]
        );
        assert_eq!(
            config.external_ips,
            vec![ExternalIp {
                public: "203.0.113.5".parse().unwrap(),
                private: Some("192.0.2.10".parse().unwrap())
            }]
        );
        assert_eq!((config.min_port, config.max_port), (49160, 49200));
        assert!(config.use_auth_secret && !config.lt_cred_mech);
        assert_eq!(config.static_auth_secrets, vec!["0123456789abcdef0123".to_string()]);
        assert_eq!(config.realm, "turn.example.org");
        assert_eq!((config.user_quota, config.total_quota, config.max_bps), (12, 1200, 3_000_000));
        assert!(config.prometheus);
        assert_eq!(config.prometheus_port, 9700);
        assert_eq!(config.prometheus_address, IpAddr::from([127, 0, 0, 1]));
        assert!(config.peers.check("8.8.8.8".parse().unwrap()).is_err());
        assert!(config.peers.check("10.5.0.1".parse().unwrap()).is_ok(), "explicitly allowed");
        assert!(config.peers.check("203.0.113.5".parse().unwrap()).is_err(), "our own address");
        assert!(config.peers.check("1.1.1.1".parse().unwrap()).is_ok());
    }

    #[test]
    fn unknown_options_are_named_in_a_warning() {
        let text = "lt-cred-mech\nuser=ada:secret\nuser=bob:0x000102030405060708090a0b0c0d0e0f\nrealm=r\n\
                    no-tlsv1\ndh2066\nalt-listening-port=3479\n";
        let Parsed { config, warnings } = TurnConfig::parse(text).unwrap();
        assert_eq!(
            warnings,
            vec![
                "line 5: unknown option \"no-tlsv1\" ignored",
                "line 6: unknown option \"dh2066\" ignored",
                "line 7: unknown option \"alt-listening-port\" ignored",
            ]
        );
        assert_eq!(config.users.len(), 2);
        assert!(config.users[0].secret == UserSecret::Password("secret".into()));
        assert!(config.users[1].secret == UserSecret::Key(std::array::from_fn(|i| i as u8)));
        assert!(!format!("{:?}", config.users).contains("secret"), "passwords stay out of Debug");
    }

    #[test]
    fn invalid_values_are_errors_that_name_line_and_option() {
        let base = "use-auth-secret\nstatic-auth-secret=0123456789abcdef\nrealm=r\n";
        let cases = [
            ("listening-port=70000", "line 4: listening-port"),
            ("listening-port=0", "line 4: listening-port"),
            ("listening-ip=not-an-ip", "line 4: listening-ip"),
            ("denied-peer-ip=10.0.0.9-10.0.0.1", "line 4: denied-peer-ip"),
            ("allowed-peer-ip=", "line 4: allowed-peer-ip: needs a value"),
            ("user-quota=-1", "line 4: user-quota"),
            ("max-bps=lots", "line 4: max-bps"),
            ("no-udp=maybe", "line 4: no-udp"),
            ("external-ip=1.2.3.4/nat", "line 4: external-ip"),
            ("log-level=loud", "line 4: log-level: \"loud\" is not a log level"),
            ("user=nopassword", "line 4: user"),
            ("user=bob:0x1234", "line 4: user"),
            ("min-port=50000\nmax-port=40000", "min-port 50000 is above max-port 40000"),
            ("cert=/x.pem", "cert and pkey go together"),
            ("no-udp\nno-tcp\nno-tls", "every listener is off"),
        ];
        for (extra, expected) in cases {
            let error = TurnConfig::parse(&format!("{base}{extra}\n")).unwrap_err();
            assert!(error.contains(expected), "{extra:?}: {error}");
        }
        let auth = [
            ("realm=r\n", "no authentication"),
            ("use-auth-secret\nrealm=r\n", "use-auth-secret needs a static-auth-secret"),
            ("use-auth-secret\nstatic-auth-secret=short\nrealm=r\n", "too short"),
            ("lt-cred-mech\nrealm=r\n", "lt-cred-mech needs at least one user"),
            ("lt-cred-mech\nuser=a:b\n", "realm is required"),
        ];
        for (text, expected) in auth {
            let error = TurnConfig::parse(text).unwrap_err();
            assert!(error.contains(expected), "{text:?}: {error}");
        }
    }

    #[test]
    fn flags_take_coturn_spellings() {
        let text = "--lt-cred-mech\nuser=a:b\nrealm=r\nno-tcp=1\nno-tls = 0\nallow-loopback-peers=yes\n";
        let config = TurnConfig::parse(text).unwrap().config;
        assert!(config.lt_cred_mech && config.no_tcp && !config.no_tls && config.peers.allow_loopback);
        assert_eq!(config.log_level, LevelFilter::INFO, "the default");
        let config = TurnConfig::parse("lt-cred-mech\nuser=a:b\nrealm=r\nlog-level=debug\n").unwrap().config;
        assert_eq!(config.log_level, LevelFilter::DEBUG);
    }

    #[test]
    fn the_kernel_relay_needs_every_listening_ip_specific() {
        let base = "lt-cred-mech\nuser=a:b\nrealm=r\nkernel-relay-interface=lo\n";
        let parse = |ips: &str| TurnConfig::parse(&format!("{base}{ips}")).map(|_| ());
        assert_eq!(parse("listening-ip=192.0.2.1\nlistening-ip=2001:db8::1\n"), Ok(()));
        for ips in ["", "listening-ip=0.0.0.0\n", "listening-ip=192.0.2.1\nlistening-ip=::\n"] {
            let error = parse(ips).unwrap_err();
            assert!(error.contains("every listening-ip a specific address"), "{ips:?}: {error}");
        }
    }
}
