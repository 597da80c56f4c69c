//! Behaviour tables for the whole moderation path (parse → fold → scan → mask/excerpt): the
//! evasions that must be seen through, the ordinary chat that must not be touched.

use super::{excerpt, mask, parse, Hit, TermSet};

const NEUTRAL: &str = "\
# stand-in terms
badword
crud
jerk | category=insult
loser | category=insult weight=2
idiot | category=insult weight=2
bob
bad word | category=phrase weight=3
you suck | category=phrase weight=5
!jerk chicken
";

fn neutral() -> TermSet {
    let list = parse("neutral.txt", NEUTRAL).expect("valid list");
    TermSet::build(&[list]).expect("builds")
}

fn terms<'s>(hits: &[Hit<'s>]) -> Vec<&'s str> {
    hits.iter().map(|h| h.term).collect()
}

#[test]
fn evasions_are_seen_through() {
    let set = neutral();
    let rows: &[(&str, &str)] = &[
        ("badword", "badword"),
        ("BADWORD", "badword"),
        ("BaDwOrD", "badword"),
        ("b4dw0rd", "badword"),
        ("b@dword", "badword"),
        ("bädwörd", "badword"),
        ("b\u{301}a\u{300}dword", "badword"),
        ("ｂａｄｗｏｒｄ", "badword"),
        ("𝐛𝐚𝐝𝐰𝐨𝐫𝐝", "badword"),
        ("𝒷𝒶𝒹𝓌ℴ𝓇𝒹", "badword"),
        ("ⓑⓐⓓⓦⓞⓡⓓ", "badword"),
        ("ʙᴀᴅᴡᴏʀᴅ", "badword"),
        ("🇧🇦🇩🇼🇴🇷🇩", "badword"),
        ("bаdwоrd", "badword"), // Cyrillic а, о
        ("bαdwοrd", "badword"), // Greek α, ο
        ("BΑDWΟRD", "badword"), // Greek capitals
        ("b.a.d.w.o.r.d", "badword"),
        ("b a d w o r d", "badword"),
        ("b_a_d_w_o_r_d", "badword"),
        ("b-a-d-w-o-r-d", "badword"),
        ("L.0.S.E.R", "loser"),
        ("you l 0 s 3 r", "loser"),
        ("i.d.1.o.t", "idiot"),
        ("b  a  d  w  o  r  d", "badword"),
        ("bad\u{200B}word", "badword"),
        ("bad\u{AD}word", "badword"),
        ("b\u{202E}ad\u{202C}word", "badword"),
        ("\u{FEFF}crud\u{2060}", "crud"),
        ("baaaadwooooord", "badword"),
        ("b̸̡a̷d̶w̵o̴r̷d̸", "badword"),
        ("CRUD!!!", "crud"),
        ("crüüüd", "crud"),
        ("ⅽrud", "crud"),
        ("c r u d", "crud"),
        ("c\u{200B}r\u{200B}u\u{200B}d", "crud"),
        ("what a crud day", "crud"),
        ("jerrrrk", "jerk"),
        ("j3rk", "jerk"),
        ("j е r k", "jerk"), // spaced, Cyrillic е
        ("1d10t", "idiot"),
        ("id!ot", "idiot"),
        ("1d|ot", "idiot"),
        ("ÍDÍÓT", "idiot"),
        ("idiooooot", "idiot"),
        ("that's a 1d10t move", "idiot"),
        ("l0ser", "loser"),
        ("1oser", "loser"),
        ("Ioser", "loser"),
        ("lo$er", "loser"),
        ("l0$3r", "loser"),
        ("looooser", "loser"),
        ("b0b", "bob"),
        ("you suck", "you suck"),
        ("YOU,   SUCK", "you suck"),
        ("y0u $uck", "you suck"),
        ("y o u s u c k", "you suck"),
        ("yousuck", "you suck"),
        ("bad_word", "bad word"),
        ("BAD-WORD", "bad word"),
        ("u r a b a d w o r d", "badword"),
    ];
    let mut failures = Vec::new();
    for &(text, want) in rows {
        let hits = set.scan(text);
        if !terms(&hits).contains(&want) {
            failures.push(format!("{text:?}: want {want:?}, got {:?}", terms(&hits)));
        }
    }
    assert!(rows.len() >= 40);
    assert!(failures.is_empty(), "missed evasions:\n{}", failures.join("\n"));
}

#[test]
fn ordinary_chat_is_left_alone() {
    let set = neutral();
    let rows: &[&str] = &[
        "that jerky was great",
        "crude oil prices",
        "crudely drawn map",
        "an idiotic idea", // a longer word is a different word
        "badwordsmith",
        "the bobcat",
        "808 drum machine",
        "my pin is 8 0 8",
        "code 1 0 5 3 r",
        "a 1 0 5 e",
        "call 555 1234 before 2024",
        "room 101, floor 3",
        "price $5 or 3$",
        "https://crudeoil.example/jerky?id=a1b2c3",
        "user@jerkyshop.example",
        "bad words are bad",
        "you sucker",
        "I love jerk chicken",
        "J E R K chicken",
        "b a d  is not so bad",
    ];
    let mut failures = Vec::new();
    for &text in rows {
        let hits = set.scan(text);
        if !hits.is_empty() {
            failures.push(format!("{text:?}: {:?}", terms(&hits)));
        }
    }
    assert!(failures.is_empty(), "false positives:\n{}", failures.join("\n"));
}

#[test]
fn words_are_not_glued_across_spaces() {
    let list = parse("t", "shit\nass\ncunt\nhell\n!scunthorpe\n").expect("valid list");
    let set = TermSet::build(&[list]).expect("builds");
    for text in [
        "this hit the spot",
        "the class assignment",
        "Scunthorpe United",
        "s c u n t h o r p e",
        "h e l l o",
        "a shell script",
        "bass ass-ignment",
    ] {
        let hits: Vec<_> = set.scan(text).into_iter().filter(|h| h.term != "ass").collect();
        assert!(hits.is_empty(), "{text:?}: {:?}", terms(&hits));
    }
    assert_eq!(terms(&set.scan("s.h.i.t")), ["shit"]);
    assert_eq!(terms(&set.scan("what the hell")), ["hell"]);
}

#[test]
fn exceptions_suppress_only_what_they_cover() {
    let set = neutral();
    assert!(set.scan("jerk chicken").is_empty());
    assert!(set.scan("JERK   CHICKEN!").is_empty());
    assert_eq!(terms(&set.scan("jerk, chicken is fine")), Vec::<&str>::new());
    assert_eq!(terms(&set.scan("you jerk. chickens")), ["jerk"]);
    assert_eq!(terms(&set.scan("jerk chicken, jerk")), ["jerk"]);
}

#[test]
fn hits_carry_list_data_and_original_ranges() {
    let set = neutral();
    let text = "hey Ｌ0０ＳＥＲ!";
    let hits = set.scan(text);
    assert_eq!(hits.len(), 1);
    let h = &hits[0];
    assert_eq!(h.list, 0);
    assert_eq!(h.list_name, "neutral.txt");
    assert_eq!(h.term, "loser");
    assert_eq!(h.category, Some("insult"));
    assert_eq!(h.weight, 2);
    assert_eq!(&text[h.range.clone()], "Ｌ0０ＳＥＲ");

    let phrase = set.scan("so, bad   word.");
    assert_eq!(terms(&phrase), ["bad word"]);
    assert_eq!(phrase[0].range, 4..14);
}

#[test]
fn offsets_survive_multibyte_combining_and_invisible_input() {
    let set = neutral();
    let cases: &[(&str, &str)] = &[
        ("ok b\u{301}\u{316}a\u{200B}dword ok", "b\u{301}\u{316}a\u{200B}dword"),
        ("日本語 crüd 日本語", "crüd"),
        ("😀c\u{200D}r\u{200D}u\u{200D}d😀", "c\u{200D}r\u{200D}u\u{200D}d"),
        ("ǰ jerrrk", "jerrrk"),
        ("ｃｒｕｄ", "ｃｒｕｄ"),
        ("c r u d d d!", "c r u d d d"),
        ("idiot\u{301}\u{301}!", "idiot\u{301}\u{301}"),
    ];
    for &(text, want) in cases {
        let hits = set.scan(text);
        assert_eq!(hits.len(), 1, "{text:?}: {hits:?}");
        assert_eq!(&text[hits[0].range.clone()], want, "{text:?}");
    }
}

#[test]
fn mask_changes_only_the_hits() {
    let set = neutral();
    let text = "héllo 1d10t, you ｃｒｕｄ\u{200B}dy? b a d w o r d 😀";
    let hits = set.scan(text);
    assert_eq!(terms(&hits), ["idiot", "badword"]);
    let masked = mask(text, &hits);
    assert_eq!(masked, "héllo *****, you ｃｒｕｄ\u{200B}dy? ************* 😀");

    let text = "crud crud b4dword";
    let masked = mask(text, &set.scan(text));
    assert_eq!(masked, "**** **** *******");
    assert_eq!(mask("nothing here", &[]), "nothing here");
}

#[test]
fn excerpt_redacts_and_bounds() {
    let set = neutral();
    let text = "short idiot msg";
    let hits = set.scan(text);
    assert_eq!(excerpt(text, &hits[0]), "short i**** msg");

    let long = format!("{} you are a l0ser\nreally {}", "x".repeat(200), "y".repeat(200));
    let hits = set.scan(&long);
    assert_eq!(hits.len(), 1);
    let ex = excerpt(&long, &hits[0]);
    assert!(ex.starts_with('…') && ex.ends_with('…'), "{ex}");
    assert!(ex.contains("l****"), "{ex}");
    assert!(!ex.contains("l0ser") && !ex.contains('\n'), "{ex}");
    assert!(ex.chars().count() <= 80, "{} chars: {ex}", ex.chars().count());
}

#[test]
fn several_lists_and_large_sets() {
    let a = parse("a", "crud | category=x\n").expect("valid");
    let b = parse("b", "crud | category=y weight=7\njerk\n").expect("valid");
    let set = TermSet::build(&[a, b]).expect("builds");
    let hits = set.scan("crud jerk");
    let got: Vec<_> = hits
        .iter()
        .map(|h| (h.list_name, h.term, h.category, h.weight))
        .collect();
    assert_eq!(
        got,
        [
            ("a", "crud", Some("x"), 1),
            ("b", "crud", Some("y"), 7),
            ("b", "jerk", None, 1)
        ]
    );

    // 100k generated entries compile and still match exactly (timing lives in the bench).
    let mut text = String::new();
    for i in 0..100_000u32 {
        text.push_str(&format!("zq{}x | weight={}\n", super::list::tests::word(i), i % 9 + 1));
    }
    let big = parse("big", &text).expect("valid");
    let set = TermSet::build(&[big]).expect("builds");
    let hits = set.scan("hello zqbcx and ZQBCX zqbc");
    assert_eq!(hits.len(), 2);
    assert!(hits.iter().all(|h| h.term == "zqbcx"));
}

/// Folding and scanning never panic, and ranges stay on character boundaries, on arbitrary input.
#[test]
fn arbitrary_input_never_panics() {
    let set = neutral();
    let mut rng = fastrand::Rng::with_seed(13);
    let pool: Vec<char> = "aAbBdDrRwWoO014@$!| .-_\n\t😀ä\u{301}\u{200B}\u{AD}ßﬁＢ𝐛ⓑбаΑ日\u{FEFF}\u{202E}"
        .chars()
        .collect();
    for round in 0..20_000 {
        let len = rng.usize(0..40);
        let text: String = if round % 2 == 0 {
            (0..len).map(|_| pool[rng.usize(0..pool.len())]).collect()
        } else {
            (0..len).map(|_| rng.char(..)).collect()
        };
        let folded = super::fold::fold(&text);
        for pos in 0..=folded.as_str().len() {
            let _ = folded.is_word_start(pos) && folded.is_word_end(pos);
        }
        let hits = set.scan(&text);
        for h in &hits {
            assert!(text.is_char_boundary(h.range.start) && text.is_char_boundary(h.range.end));
            let _ = excerpt(&text, h);
        }
        let masked = mask(&text, &hits);
        assert_eq!(masked.chars().count(), text.chars().count());
    }
}

/// Random chat-like text: ASCII letters in both cases, repeats, digits, leetspeak symbols,
/// separators of every kind, and non-ASCII characters that take each folding step (accents,
/// combining marks, homoglyphs, fullwidth, ligatures, invisibles, emoji, a character whose
/// lowercase is two characters, one whose decomposition is too long to cache).
fn chat_like(rng: &mut fastrand::Rng) -> String {
    const POOL: &[&str] = &[
        "a", "b", "d", "o", "r", "w", "l", "i", "s", "A", "B", "D", "W", "L", "I", "aa", "ooo", "0", "1", "3", "4",
        "5", "7", "2", "9", "@", "$", "!", "|", " ", " ", " ", "  ", ".", "-", "_", "\n", "\t", ",", "?", "'",
        "\u{7f}", "ä", "é", "\u{301}", "\u{200B}", "\u{AD}", "ß", "æ", "ﬁ", "ﬃ", "Ｂ", "ａ", "𝐛", "ⓑ", "б", "а", "о",
        "Α", "Η", "η", "日", "😀", "\u{FEFF}", "\u{202E}", "İ", "ǅ", "\u{FDFA}", "\u{2028}", "¹", "٣",
    ];
    let words = rng.usize(0..12);
    let mut s = String::new();
    for _ in 0..words {
        match rng.u8(0..4) {
            // A plain ASCII word (the fast path's case) and a separator.
            0 | 1 => {
                for _ in 0..rng.usize(1..8) {
                    let c = if rng.bool() { rng.lowercase() } else { rng.uppercase() };
                    s.push(c);
                }
                s.push_str([" ", " ", ", ", "! ", ".", "  ", "\n", "?"][rng.usize(0..8)]);
            }
            _ => {
                for _ in 0..rng.usize(1..6) {
                    s.push_str(POOL[rng.usize(0..POOL.len())]);
                }
            }
        }
    }
    s
}

/// The fast paths of `fold_into` (ASCII words copied in bulk, the per-character cache of
/// non-ASCII steps, buffers reused across calls) fold exactly as the general per-character path:
/// same text, same source offsets, same soft word starts.
#[test]
fn fast_folding_equals_the_reference_path() {
    let mut rng = fastrand::Rng::with_seed(29);
    let mut reused = super::fold::Folded::default();
    for round in 0..12_000 {
        let text = if round % 10 == 9 {
            (0..rng.usize(0..30)).map(|_| rng.char(..)).collect()
        } else {
            chat_like(&mut rng)
        };
        let reference = super::fold::fold_reference(&text);
        // Twice into the same buffers: the second run hits the character cache.
        for _ in 0..2 {
            super::fold::fold_into(&text, &mut reused);
            assert_eq!(reused.parts(), reference.parts(), "{text:?}");
        }
        assert_eq!(super::fold::fold(&text).parts(), reference.parts(), "{text:?}");
    }
}

/// The anchored walk from word starts finds exactly what an unanchored search of every folded
/// term variant finds once filtered by the word-boundary rules.
#[test]
fn anchored_scan_equals_a_brute_force_search() {
    let list = "badword\ncrud\njerk\nloser\nidiot\nbob\nbad word\nyou suck\nlol\nsos\nab\nba\n!jerk chicken\n!so sad\n";
    let parsed = parse("l.txt", list).expect("valid list");
    let set = TermSet::build(std::slice::from_ref(&parsed)).expect("builds");
    let mut rng = fastrand::Rng::with_seed(31);
    let extra = [
        "badword",
        "b a d w o r d",
        "l0ser",
        "1oser",
        "jerk chicken",
        "you suck",
        "y o u s u c k",
        "lol",
        "so sad",
    ];
    for _ in 0..6_000 {
        let mut text = chat_like(&mut rng);
        if rng.bool() {
            text.push_str(extra[rng.usize(0..extra.len())]);
            text.push_str(&chat_like(&mut rng));
        }
        let folded = super::fold::fold(&text);
        let f = folded.as_str().as_bytes();
        let found = |needles: &[String]| -> Vec<std::ops::Range<usize>> {
            let mut out = Vec::new();
            for n in needles {
                let n = n.as_bytes();
                for s in 0..f.len().saturating_sub(n.len() - 1) {
                    if f[s..].starts_with(n) && folded.is_word_start(s) && folded.is_word_end(s + n.len()) {
                        out.push(s..s + n.len());
                    }
                }
            }
            out
        };
        // A folded spelling shared by several entries (`bad word` joined is `badword`) belongs
        // to the first of them.
        let mut owner: Vec<(String, usize)> = Vec::new();
        for (i, e) in parsed.entries().iter().enumerate() {
            for v in super::matcher::variants(&e.folded) {
                if !owner.iter().any(|(o, _)| *o == v) {
                    owner.push((v, i));
                }
            }
        }
        let mut expected = Vec::new();
        for (v, i) in &owner {
            let i = *i;
            for r in found(std::slice::from_ref(v)) {
                let excepted = parsed.exceptions().iter().any(|x| {
                    found(&super::matcher::variants(&x.folded))
                        .iter()
                        .any(|xr| xr.start <= r.start && r.end <= xr.end)
                });
                if !excepted {
                    expected.push((folded.source_range(r), i));
                }
            }
        }
        expected.sort_by_key(|(r, i)| (r.start, r.end, *i));
        expected.dedup();
        let got: Vec<_> = set.scan(&text).into_iter().map(|h| (h.range, h.entry)).collect();
        assert_eq!(got, expected, "{text:?} folded {:?}", folded.as_str());
    }
}
