//! Room names: the syntax the protocol accepts, and a generator of names that are easy to
//! read aloud and hard to guess (privacy invariant 3 in DESIGN.md).
//!
//! A generated name is four words joined by `-`: an adjective, a plural noun, a verb that
//! agrees with a plural subject, and an adverb, as in `quiet-otters-sing-softly`. Each word is
//! drawn independently and uniformly from its list with the operating system's CSPRNG, so a
//! name is one of [`combinations()`] equally likely ones (about 1.8 x 10^12, some 40.7 bits):
//! someone who wants to walk into a stranger's room by guessing its name has nothing better to
//! do than try them one by one, which the per-address rate limit on joins makes hopeless. The
//! anchor's generator has a similar count but a non-cryptographic RNG, whose next outputs can
//! be worked out from a few past ones (say, names seen in invitations); ours cannot.
//!
//! The words live in `signaling/words/{adjectives,nouns,verbs,adverbs}.txt`, one per line, and
//! are compiled in. They were written for this project: common, easy to say and to spell,
//! lowercase ASCII of 3 to 10 letters, nothing sad, violent, offensive or embarrassing, no
//! word that sounds like another word (so a name survives being read out on a call), and no
//! word in two lists. The tests at the bottom of this file check what can be checked
//! mechanically; the rest is judgement, so read the lists before adding to them, and keep the
//! product of their lengths at or above 10^12.
//!
//! ```
//! let name = signaling::names::generate();
//! assert!(signaling::names::is_valid_room_name(&name));
//! assert_eq!(name.split('-').count(), signaling::names::WORDS);
//! ```

use std::sync::LazyLock;

use ring::rand::{SecureRandom, SystemRandom};

/// How many words a generated name has.
pub const WORDS: usize = 4;

/// The word lists in the order the words appear in a name.
static LISTS: LazyLock<[Vec<&'static str>; WORDS]> = LazyLock::new(|| {
    [
        include_str!("../words/adjectives.txt"),
        include_str!("../words/nouns.txt"),
        include_str!("../words/verbs.txt"),
        include_str!("../words/adverbs.txt"),
    ]
    .map(|text| text.lines().collect())
});

/// Whether `name` is a room name the protocol allows (PROTOCOL.md): 3 to 64 characters of
/// `a-z`, `0-9` and `-`, neither starting nor ending with `-`, and no `--`.
pub fn is_valid_room_name(name: &str) -> bool {
    (3..=64).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-')
        && !name.contains("--")
}

/// A new random room name such as `quiet-otters-sing-softly`: lowercase words joined by `-`,
/// always a valid room name (at most 4 x 10 letters and 3 dashes).
pub fn generate() -> String {
    let rng = SystemRandom::new();
    let mut draws = Draws::new(&rng);
    let mut name = String::with_capacity(WORDS * 11);
    for list in LISTS.iter() {
        if !name.is_empty() {
            name.push('-');
        }
        name.push_str(list[uniform_index(list.len(), || draws.next_u32())]);
    }
    name
}

/// How many different names [`generate`] can return: the product of the list lengths.
pub fn combinations() -> u64 {
    LISTS.iter().map(|list| list.len() as u64).product()
}

/// An index uniformly distributed over `0..len`, built from uniform `u32` draws.
///
/// Taking one draw modulo `len` would be biased: unless `len` divides 2^32, the first
/// `2^32 mod len` indices have one more draw mapping to them than the others. So draws at or
/// above the largest multiple of `len` that fits in 2^32 are thrown away and drawn again;
/// the draws kept are uniform over a whole number of copies of `0..len`. For our lists
/// (fewer than 2,000 words) a draw is rejected with probability below 5 x 10^-7, so this
/// costs nothing in practice.
fn uniform_index(len: usize, mut next_u32: impl FnMut() -> u32) -> usize {
    const SPAN: u64 = 1 << 32;
    let len = len as u64;
    assert!((1..=SPAN).contains(&len), "can only pick from 1 to 2^32 items, not {len}");
    let limit = SPAN - SPAN % len; // the largest multiple of `len` that is <= 2^32
    loop {
        let draw = u64::from(next_u32());
        if draw < limit {
            return usize::try_from(draw % len).expect("an index below a usize length fits a usize");
        }
    }
}

/// Uniform `u32`s from the OS CSPRNG, fetched a few at a time: one `getrandom` call covers a
/// whole name, including a rejected draw or four.
struct Draws<'r> {
    rng: &'r dyn SecureRandom,
    buf: [u8; 32],
    next: usize,
}

impl<'r> Draws<'r> {
    fn new(rng: &'r dyn SecureRandom) -> Self {
        Self { rng, buf: [0; 32], next: 32 }
    }

    fn next_u32(&mut self) -> u32 {
        if self.next == self.buf.len() {
            self.rng.fill(&mut self.buf).expect("the operating system's random number generator works");
            self.next = 0;
        }
        let b = &self.buf[self.next..self.next + 4];
        self.next += 4;
        u32::from_le_bytes([b[0], b[1], b[2], b[3]])
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{HashMap, HashSet};

    use super::*;

    const LIST_NAMES: [&str; WORDS] = ["adjectives", "nouns", "verbs", "adverbs"];

    #[test]
    fn at_least_10_pow_12_combinations() {
        let sizes: Vec<usize> = LISTS.iter().map(Vec::len).collect();
        let product = sizes.iter().map(|&n| n as u64).product::<u64>();
        println!(
            "word lists {sizes:?}: {product} combinations ({:.3e}, {:.1} bits)",
            product as f64,
            (product as f64).log2()
        );
        assert_eq!(combinations(), product);
        assert!(product >= 1_000_000_000_000, "only {product} combinations");
    }

    #[test]
    fn word_lists_are_clean() {
        let mut seen: HashMap<&str, &str> = HashMap::new();
        for (list, name) in LISTS.iter().zip(LIST_NAMES) {
            for &word in list {
                assert!(
                    (3..=10).contains(&word.len()) && word.bytes().all(|b| b.is_ascii_lowercase()),
                    "{name}: {word:?} is not 3 to 10 letters a-z"
                );
                if let Some(other) = seen.insert(word, name) {
                    panic!("{word:?} is in {other} and in {name}");
                }
            }
        }
        assert!(LISTS[1].iter().all(|noun| noun.ends_with('s')), "the nouns are plurals");
        let ly = LISTS[3].iter().filter(|adverb| adverb.ends_with("ly")).count();
        assert!(ly * 3 >= LISTS[3].len() * 2, "adverbs are mostly -ly: {ly} of {}", LISTS[3].len());
    }

    #[test]
    fn generated_names_are_four_words_from_the_lists() {
        let sets: Vec<HashSet<&str>> = LISTS.iter().map(|list| list.iter().copied().collect()).collect();
        for _ in 0..1_000 {
            let name = generate();
            assert!(is_valid_room_name(&name), "{name:?}");
            let words: Vec<&str> = name.split('-').collect();
            assert_eq!(words.len(), WORDS, "{name:?}");
            for ((word, set), list) in words.iter().zip(&sets).zip(LIST_NAMES) {
                assert!(set.contains(word), "{name:?}: {word:?} is not in the {list}");
            }
        }
    }

    /// With N ~ 1.8 x 10^12 names and k = 10,000 draws, the number of colliding pairs is about
    /// Poisson with mean k(k-1)/2N ~ 2.8 x 10^-5: one collision happens in about 1 run in
    /// 36,000, which is fine for the product but not for a test that must never flake. Two or
    /// more happen with probability ~ (2.8 x 10^-5)^2 / 2 ~ 4 x 10^-10, and would mean the
    /// generator is far from uniform, so that is what fails the test.
    #[test]
    fn ten_thousand_names_do_not_repeat() {
        let mut seen = HashSet::new();
        let repeats = (0..10_000).filter(|_| !seen.insert(generate())).count();
        assert!(repeats < 2, "{repeats} repeated names in 10,000");
    }

    /// 100,000 picks over the adjectives (about 64 per word). Each count is Poisson with mean
    /// e ~ 64; one falls outside [e/3, 3e] with probability ~ 10^-10, so a run with any word
    /// out of those bounds (~ 2 x 10^-7 for the whole list) means a broken index, not bad
    /// luck. The chi-square statistic has mean n-1 and standard deviation sqrt(2(n-1)); it is
    /// allowed 8 of them either way.
    #[test]
    fn adjective_picks_are_spread_evenly() {
        const DRAWS: usize = 100_000;
        let n = LISTS[0].len();
        let rng = SystemRandom::new();
        let mut draws = Draws::new(&rng);
        let mut counts = vec![0u32; n];
        for _ in 0..DRAWS {
            counts[uniform_index(n, || draws.next_u32())] += 1;
        }
        let expected = DRAWS as f64 / n as f64;
        for (word, &count) in LISTS[0].iter().zip(&counts) {
            let count = f64::from(count);
            assert!(
                (expected / 3.0..=expected * 3.0).contains(&count),
                "{word:?} drawn {count} times, expected about {expected:.0}"
            );
        }
        let chi2: f64 = counts.iter().map(|&c| (f64::from(c) - expected).powi(2) / expected).sum();
        let df = (n - 1) as f64;
        let sd = (2.0 * df).sqrt();
        assert!((chi2 - df).abs() < 8.0 * sd, "chi-square {chi2:.0} with {df} degrees of freedom");
    }

    #[test]
    fn draws_past_the_last_whole_multiple_are_rejected() {
        // 2^32 = 3 * 1431655765 + 1: only u32::MAX is past the last multiple of 3.
        let mut draws = [u32::MAX, 7].into_iter();
        assert_eq!(uniform_index(3, || draws.next().unwrap()), 7 % 3);
        assert_eq!(draws.next(), None, "u32::MAX was rejected, 7 accepted");

        // len = 3 * 2^30: the top quarter of the draws would give indices below 2^30 a second
        // chance; all of it is rejected.
        let len = 3usize << 30;
        let mut draws = [u32::MAX, 3 << 30, (3 << 30) - 1].into_iter();
        assert_eq!(uniform_index(len, || draws.next().unwrap()), len - 1);
        assert_eq!(draws.next(), None);

        // A power of two divides 2^32: nothing is rejected.
        let mut draws = [u32::MAX].into_iter();
        assert_eq!(uniform_index(1024, || draws.next().unwrap()), 1023);
        assert_eq!(uniform_index(1, || 12345), 0);
    }

    #[test]
    fn room_name_syntax() {
        for ok in ["abc", "quiet-otters-sing-softly", "room-42", "a1b", &"a".repeat(64)] {
            assert!(is_valid_room_name(ok), "{ok:?}");
        }
        for bad in ["", "ab", "-abc", "abc-", "a--b", "Abc", "a b", "a_b", "caf\u{e9}", &"a".repeat(65)] {
            assert!(!is_valid_room_name(bad), "{bad:?}");
        }
    }
}
