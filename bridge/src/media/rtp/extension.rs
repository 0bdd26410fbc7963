//! RTP header extension elements (RFC 8285) and the audio level (RFC 6464).
//!
//! ```text
//! one-byte (profile 0xBEDE):  | ID (4) | L (4) | data: L + 1 bytes |      ID 0: padding, ID 15: stop
//! two-byte (profile 0x100x):  | ID (8) | L (8) | data: L bytes |          ID 0: padding
//! ```

const ONE_BYTE_PROFILE: u16 = 0xBEDE;
const TWO_BYTE_PROFILE_MASK: u16 = 0xFFF0;
const TWO_BYTE_PROFILE: u16 = 0x1000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Form {
    OneByte,
    TwoByte,
    Unknown,
}

/// Iterator over (id, data) of the extension elements. Stops at the first element that does
/// not fit (a malformed block yields what precedes the damage, never out-of-bounds reads).
#[derive(Clone, Debug)]
pub struct Extensions<'a> {
    form: Form,
    data: &'a [u8],
}

impl<'a> Extensions<'a> {
    pub(super) fn new(profile: u16, data: &'a [u8]) -> Self {
        let form = if profile == ONE_BYTE_PROFILE {
            Form::OneByte
        } else if profile & TWO_BYTE_PROFILE_MASK == TWO_BYTE_PROFILE {
            Form::TwoByte
        } else {
            Form::Unknown
        };
        Self { form, data }
    }
}

impl<'a> Iterator for Extensions<'a> {
    type Item = (u8, &'a [u8]);

    fn next(&mut self) -> Option<(u8, &'a [u8])> {
        loop {
            let (&first, rest) = self.data.split_first()?;
            let (id, len, rest) = match self.form {
                Form::Unknown => return None,
                Form::OneByte => {
                    let id = first >> 4;
                    if id == 0 {
                        self.data = rest; // padding byte
                        continue;
                    }
                    if id == 15 {
                        self.data = &[];
                        return None;
                    }
                    (id, usize::from(first & 0x0f) + 1, rest)
                }
                Form::TwoByte => {
                    if first == 0 {
                        self.data = rest;
                        continue;
                    }
                    let (&len, rest) = rest.split_first()?;
                    (first, usize::from(len), rest)
                }
            };
            if rest.len() < len {
                self.data = &[];
                return None;
            }
            let (value, after) = rest.split_at(len);
            self.data = after;
            return Some((id, value));
        }
    }
}

/// The audio level extension (RFC 6464): voice activity flag and level in -dBov (0 loudest,
/// 127 silence).
pub fn audio_level(value: &[u8]) -> Option<(bool, u8)> {
    let &first = value.first()?;
    Some((first & 0x80 != 0, first & 0x7f))
}
