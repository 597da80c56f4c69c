// The chat lines and the generated 10k-term list shared by the moderation benchmark and
// `examples/ws_moderation_load.rs`, so that both measure the same work.

/// Chat lines (two of them evasions of listed terms: `l0ser`, `b a d w o r d`).
pub const CHAT: &[&str] = &[
    "lol that play was insane gg",
    "can you show the settings again? I missed it",
    "hello from Brazil!! first time here 😀😀",
    "what keyboard is that, it sounds so clicky",
    "you are such a l0ser honestly",
    "Prüfung morgen, deshalb nur kurz hier",
    "привет всем, как дела?",
    "b a d w o r d",
    "is the stream going to be on friday at 8pm or 9pm?",
    "PogChamp PogChamp PogChamp",
    "https://example.com/clip/AbCdEf123 check this",
    "café crème is the best, fight me",
    "jerk chicken recipe when?",
    "I think the 2024 version was better tbh",
    "ｆｕｌｌｗｉｄｔｈ text is annoying",
    "@streamer can you say hi to my brother",
    "noooooo not the boss again",
    "idk man the patch notes said 3.1.4 fixed that",
];

/// `n` distinct letters-only terms, 4 to 10 letters, from a fixed seed.
pub fn terms(n: usize) -> String {
    let mut rng = fastrand::Rng::with_seed(7);
    let mut out = String::from("badword\ncrud\njerk\nloser\nidiot\nyou suck\n!jerk chicken\n");
    for i in 0..n {
        let len = rng.usize(4..=10);
        let word: String = (0..len).map(|_| rng.lowercase()).collect();
        out.push_str(&word);
        if i % 10 == 0 {
            out.push_str(" | category=generated weight=2");
        }
        out.push('\n');
    }
    out
}
