//! The WebSocket protocol, version 1 (`signaling/PROTOCOL.md`): message types and their
//! validation. Parsing is strict: unknown types and fields, wrong types and oversized values
//! are errors that name the field, so a client bug shows up as a clear message.

use serde::{Deserialize, Serialize};
use serde_json::Value;

pub const VERSION: u32 = 1;
/// Largest frame accepted (an SDP offer of a big meeting fits easily).
pub const MAX_FRAME: usize = 64 * 1024;
pub const MAX_NAME: usize = 64;
pub const MAX_EMAIL: usize = 128;
pub const MAX_CHAT: usize = 4000;
pub const MAX_PASSWORD: usize = 128;
pub const MAX_SPEAKING_MS: u32 = 10_000;

/// What a client sends.
#[derive(Debug, Deserialize, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ClientMessage {
    Hello {
        version: u32,
    },
    Join {
        room: String,
        #[serde(default)]
        name: Option<String>,
        #[serde(default)]
        email: Option<String>,
        #[serde(default)]
        password: Option<String>,
    },
    Leave,
    Chat {
        text: String,
        #[serde(default)]
        to: Option<String>,
    },
    SetPassword {
        password: Option<String>,
    },
    SetLobby {
        enabled: bool,
    },
    Admit {
        id: String,
    },
    Deny {
        id: String,
    },
    Signal {
        to: String,
        data: Value,
        epoch: u64,
    },
    Offer {
        sdp: String,
        epoch: u64,
    },
    Speaking {
        ms: u32,
    },
    Media {
        audio: bool,
        video: bool,
    },
    /// The member turned end-to-end encryption on or off. Only the fact: the passphrase and
    /// keys never reach the server (DESIGN.md invariant 9).
    E2ee {
        enabled: bool,
    },
}

/// A protocol error to send back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProtocolError {
    pub code: ErrorCode,
    pub message: String,
    pub retry_after_ms: Option<u64>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    BadMessage,
    BadState,
    Version,
    Password,
    Denied,
    RateLimited,
    Full,
    Unavailable,
}

impl ProtocolError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self { code, message: message.into(), retry_after_ms: None }
    }

    pub fn bad(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::BadMessage, message)
    }

    pub fn state(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::BadState, message)
    }
}

/// Parses and validates one text frame.
pub fn parse(frame: &str) -> Result<ClientMessage, ProtocolError> {
    if frame.len() > MAX_FRAME {
        return Err(ProtocolError::bad(format!("frame of {} bytes; at most {MAX_FRAME}", frame.len())));
    }
    let message: ClientMessage =
        serde_json::from_str(frame).map_err(|e| ProtocolError::bad(describe(&e, frame)))?;
    validate(&message)?;
    Ok(message)
}

/// serde's message, with the message type in front so the client knows which one failed.
fn describe(error: &serde_json::Error, frame: &str) -> String {
    let kind = serde_json::from_str::<Value>(frame)
        .ok()
        .and_then(|v| v.get("type").and_then(Value::as_str).map(str::to_owned));
    match kind {
        Some(kind) => format!("{kind}: {error}"),
        None => format!("{error}"),
    }
}

fn check_len(field: &str, value: &str, max: usize) -> Result<(), ProtocolError> {
    if value.chars().count() > max {
        return Err(ProtocolError::bad(format!("{field}: at most {max} characters")));
    }
    if value.chars().any(|c| c.is_control() && c != '\n') {
        return Err(ProtocolError::bad(format!("{field}: control characters are not allowed")));
    }
    Ok(())
}

fn check_id(field: &str, value: &str) -> Result<(), ProtocolError> {
    let hex = value.len() == 16 && value.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if hex { Ok(()) } else { Err(ProtocolError::bad(format!("{field}: a participant id (16 hex digits)"))) }
}

fn validate(message: &ClientMessage) -> Result<(), ProtocolError> {
    match message {
        ClientMessage::Join { room, name, email, password } => {
            if !crate::names::is_valid_room_name(room) {
                return Err(ProtocolError::bad("join.room: 3 to 64 characters of a-z, 0-9 and '-'"));
            }
            if let Some(name) = name {
                check_len("join.name", name, MAX_NAME)?;
                if name.contains('\n') {
                    return Err(ProtocolError::bad("join.name: one line"));
                }
            }
            if let Some(email) = email {
                check_len("join.email", email, MAX_EMAIL)?;
                if !email.is_empty() && (!email.contains('@') || email.contains(char::is_whitespace)) {
                    return Err(ProtocolError::bad("join.email: not an e-mail address"));
                }
            }
            if let Some(password) = password {
                check_len("join.password", password, MAX_PASSWORD)?;
            }
        }
        ClientMessage::Chat { text, to } => {
            if text.trim().is_empty() {
                return Err(ProtocolError::bad("chat.text: empty"));
            }
            check_len("chat.text", text, MAX_CHAT)?;
            if let Some(to) = to {
                check_id("chat.to", to)?;
            }
        }
        ClientMessage::SetPassword { password: Some(password) } => {
            if password.is_empty() {
                return Err(ProtocolError::bad("set_password.password: empty (use null to clear)"));
            }
            check_len("set_password.password", password, MAX_PASSWORD)?;
        }
        ClientMessage::Admit { id } | ClientMessage::Deny { id } => check_id("id", id)?,
        ClientMessage::Signal { to, data, .. } => {
            check_id("signal.to", to)?;
            let known = data.as_object().is_some_and(|o| {
                o.len() == 1 && (o.get("sdp").is_some_and(Value::is_object) || o.contains_key("candidate"))
            });
            if !known {
                return Err(ProtocolError::bad("signal.data: {\"sdp\": {...}} or {\"candidate\": ...}"));
            }
        }
        ClientMessage::Offer { sdp, .. } if !sdp.starts_with("v=0") => {
            return Err(ProtocolError::bad("offer.sdp: not an SDP session description"));
        }
        ClientMessage::Speaking { ms } if *ms > MAX_SPEAKING_MS => {
            return Err(ProtocolError::bad(format!("speaking.ms: at most {MAX_SPEAKING_MS}")));
        }
        _ => {}
    }
    Ok(())
}

/// A participant as others see it.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct ParticipantView {
    pub id: String,
    pub name: Option<String>,
    pub email: Option<String>,
    pub audio: bool,
    pub video: bool,
    /// Whether this member encrypts its media end to end (what it last said in `e2ee`).
    pub e2ee: bool,
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct ChatView {
    pub from: String,
    pub name: Option<String>,
    pub text: String,
    pub at: u64,
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct SpeakerView {
    pub id: String,
    pub ms: u64,
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct TrackView {
    pub mid: String,
    pub id: String,
    pub kind: String,
}

/// What the server sends.
#[derive(Clone, Debug, Serialize, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMessage {
    Welcome {
        version: u32,
        ice_servers: Vec<Value>,
    },
    Error {
        code: ErrorCode,
        message: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        retry_after_ms: Option<u64>,
    },
    Joined {
        id: String,
        moderator: Option<String>,
        participants: Vec<ParticipantView>,
        chat: Vec<ChatView>,
        password: bool,
        lobby: bool,
        speakers: Vec<SpeakerView>,
    },
    Lobby,
    ParticipantJoined {
        participant: ParticipantView,
    },
    ParticipantLeft {
        id: String,
    },
    ParticipantUpdated {
        participant: ParticipantView,
    },
    Moderator {
        id: String,
    },
    Knock {
        id: String,
        name: Option<String>,
    },
    LobbyLeft {
        id: String,
    },
    Settings {
        password: bool,
        lobby: bool,
    },
    Chat {
        from: String,
        name: Option<String>,
        text: String,
        at: u64,
        private: bool,
        /// The recipient of a private message (so the sender's copy says whom it went to).
        #[serde(skip_serializing_if = "Option::is_none")]
        to: Option<String>,
    },
    Speakers {
        speakers: Vec<SpeakerView>,
        dominant: Option<String>,
    },
    Mode {
        mode: &'static str,
        #[serde(skip_serializing_if = "Option::is_none")]
        peer: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        polite: Option<bool>,
        epoch: u64,
    },
    Signal {
        from: String,
        data: Value,
        epoch: u64,
    },
    Answer {
        sdp: String,
        epoch: u64,
        tracks: Vec<TrackView>,
    },
    Renegotiate {
        epoch: u64,
    },
    Left,
}

impl From<ProtocolError> for ServerMessage {
    fn from(e: ProtocolError) -> Self {
        ServerMessage::Error { code: e.code, message: e.message, retry_after_ms: e.retry_after_ms }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_messages_parse() {
        assert_eq!(parse(r#"{"type":"hello","version":1}"#), Ok(ClientMessage::Hello { version: 1 }));
        assert!(matches!(
            parse(r#"{"type":"join","room":"quiet-otters-sing-softly","name":"Ada"}"#),
            Ok(ClientMessage::Join { .. })
        ));
        assert_eq!(
            parse(r#"{"type":"set_password","password":null}"#),
            Ok(ClientMessage::SetPassword { password: None })
        );
        assert_eq!(parse(r#"{"type":"e2ee","enabled":true}"#), Ok(ClientMessage::E2ee { enabled: true }));
    }

    #[test]
    fn errors_name_the_field() {
        let cases = [
            (r#"{"type":"join","room":"A B"}"#, "join.room"),
            (r#"{"type":"join","room":"abc","name":"x","colour":1}"#, "unknown field `colour`"),
            (r#"{"type":"hello"}"#, "missing field `version`"),
            (r#"{"type":"explode"}"#, "unknown variant `explode`"),
            (r#"{"type":"chat","text":"   "}"#, "chat.text"),
            (r#"{"type":"chat","text":"hi","to":"bob"}"#, "chat.to"),
            (r#"{"type":"signal","to":"0123456789abcdef","data":{"evil":1},"epoch":1}"#, "signal.data"),
            (r#"{"type":"speaking","ms":99999}"#, "speaking.ms"),
            (r#"{"type":"join","room":"abc","email":"not an address"}"#, "join.email"),
            (r#"[1,2,3]"#, "invalid type"),
            // Only the flag: a page that tried to send its passphrase or key is refused.
            (r#"{"type":"e2ee","enabled":true,"passphrase":"x"}"#, "unknown field `passphrase`"),
            (r#"{"type":"e2ee","enabled":"yes"}"#, "e2ee"),
        ];
        for (frame, expected) in cases {
            let error = parse(frame).unwrap_err();
            assert_eq!(error.code, ErrorCode::BadMessage);
            assert!(
                error.message.contains(expected),
                "{frame}: {:?} should mention {expected:?}",
                error.message
            );
        }
        let long_name = format!(r#"{{"type":"join","room":"abc","name":"{}"}}"#, "n".repeat(65));
        assert!(parse(&long_name).unwrap_err().message.contains("at most 64"));
        let huge = format!(r#"{{"type":"chat","text":"{}"}}"#, "x".repeat(MAX_FRAME));
        assert!(parse(&huge).unwrap_err().message.contains("frame of"));
    }
}
