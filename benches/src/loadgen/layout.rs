//! Who is in which conference. Participant `p` joins conference `p mod M`, so conference sizes
//! differ by one at most and a run with `P = 5, M = 2` has conferences of 3 and 2.

/// The membership of one run.
#[derive(Clone, Debug)]
pub struct Layout {
    conference_of: Box<[u32]>,
    /// A participant's position among its conference's members.
    slot_of: Box<[u32]>,
    members: Box<[Box<[u32]>]>,
}

impl Layout {
    pub fn round_robin(participants: usize, conferences: usize) -> Self {
        let conferences = conferences.clamp(1, participants.max(1));
        let mut members = vec![Vec::new(); conferences];
        let mut conference_of = Vec::with_capacity(participants);
        let mut slot_of = Vec::with_capacity(participants);
        for p in 0..participants {
            let c = p % conferences;
            conference_of.push(c as u32);
            slot_of.push(members[c].len() as u32);
            members[c].push(p as u32);
        }
        Self {
            conference_of: conference_of.into(),
            slot_of: slot_of.into(),
            members: members.into_iter().map(Vec::into_boxed_slice).collect(),
        }
    }

    pub fn participants(&self) -> usize {
        self.conference_of.len()
    }

    pub fn conferences(&self) -> usize {
        self.members.len()
    }

    pub fn conference(&self, participant: usize) -> usize {
        self.conference_of[participant] as usize
    }

    pub fn slot(&self, participant: usize) -> usize {
        self.slot_of[participant] as usize
    }

    pub fn members(&self, conference: usize) -> &[u32] {
        &self.members[conference]
    }

    /// Whether `receiver` should get what `sender` sends: same conference, someone else.
    pub fn forwards(&self, sender: usize, receiver: usize) -> bool {
        sender != receiver
            && sender < self.participants()
            && self.conference_of[sender] == self.conference_of[receiver]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn five_in_two_is_three_and_two() {
        let layout = Layout::round_robin(5, 2);
        assert_eq!(layout.members(0), [0, 2, 4]);
        assert_eq!(layout.members(1), [1, 3]);
        assert_eq!((layout.conference(3), layout.slot(3), layout.slot(4)), (1, 1, 2));
        assert!(layout.forwards(0, 4) && !layout.forwards(0, 1) && !layout.forwards(2, 2));
        assert!(!layout.forwards(9, 0), "an unknown sender is forwarded to nobody");
    }
}
