//! The security console in a real headless Chromium (tests/common/webdriver.rs): sign in,
//! watch an abusive account appear among the offenders while it attacks through Palisade,
//! press its Ban button, and see its next request refused while another account still passes.
//! A wrong token is refused on the page and kept nowhere.
//!
//! Fails in CI without chromium and chromedriver; skipped with a message elsewhere.

mod common;
use common::*;

#[path = "common/webdriver.rs"]
mod webdriver;

const TOKEN: &str = "console-test-token-0123456789";

/// Strikes are set high: the ban must come from the console's button, not from the policy.
const POLICY: &str = "\
rules:
  - id: no-admin-probing
    match:
      path_prefix: [/admin]
    action: block
  - id: wp-scan
    match:
      path_prefix: [/wp-login.php]
    action: block
offenders:
  strikes: 1000
  window: 10m
  ban_for: 10m
  identity: header:x-account
";

struct Setup {
    _origin: Origin,
    p: Proxy,
    admin: String,
}

fn start() -> Setup {
    let (origin, p, admin) = start_with_admin(POLICY, TOKEN);
    Setup {
        _origin: origin,
        p,
        admin: format!("http://{admin}/"),
    }
}

fn request(p: &Proxy, path: &str, account: &str) -> reqwest::blocking::Response {
    client()
        .get(p.url(path))
        .header("x-account", account)
        .send()
        .expect("request")
}

fn sign_in(b: &webdriver::Browser, token: &str) {
    let field = b.wait_for("#token");
    b.type_into(&field, token);
    b.click(&b.wait_for("#signin"));
}

#[test]
fn an_operator_bans_an_attacking_account_from_the_console() {
    let Some(b) = webdriver::browser() else { return };
    let s = start();
    b.goto(&s.admin);
    sign_in(&b, TOKEN);
    b.wait("the console", || {
        b.find_all("#console").first().filter(|c| b.displayed(c)).cloned()
    });
    let stored = b.script("return sessionStorage.getItem('palisade-admin-token')");
    assert_eq!(stored, TOKEN, "the token is kept for the tab");
    let cookies = b.script("return document.cookie");
    assert_eq!(cookies, "", "and never as a cookie");

    // The attack: an account probing for admin pages and WordPress logins, beside a client
    // that behaves.
    assert_eq!(request(&s.p, "/home", "alice").status(), 200);
    let mut refused_ids = Vec::new();
    for path in ["/admin", "/wp-login.php", "/admin/users", "/admin/config"] {
        let r = request(&s.p, path, "mallory");
        assert_eq!(r.status(), 403);
        refused_ids.push(request_id(&r));
    }
    // Not banned yet: strikes alone do not reach the threshold.
    assert_eq!(request(&s.p, "/home", "mallory").status(), 200);

    // The refusals appear in the live feed with their request ids…
    for id in &refused_ids {
        b.wait_for(&format!("#feed tr[data-request-id='{id}']"));
    }
    let row = b.wait_for(&format!("#feed tr[data-request-id='{}']", refused_ids[1]));
    let text = b.text(&row);
    assert!(text.contains("wp-scan") && text.contains("/wp-login.php"), "{text}");
    // …and the account among the offenders, as a pseudonym.
    let button = b.wait_for("#offenders tr[data-actor^='id:hmac:'] button.ban");
    let offender = b.text(&b.wait_for("#offenders tr[data-actor^='id:hmac:']"));
    assert!(
        offender.contains("no-admin-probing"),
        "{offenders}",
        offenders = offender
    );
    assert!(
        !offender.contains("mallory"),
        "the account is never shown in clear: {offender}"
    );

    b.click(&button);
    // The ban shows in the active bans with its time left…
    let ban = b.wait_for("#bans tr[data-actor^='id:hmac:']");
    b.wait("the time left", || {
        let t = b.text(&ban);
        (t.contains("59m") || t.contains("1h")).then_some(())
    });
    // …and the account's next request is refused, while the other account passes.
    let r = request(&s.p, "/home", "mallory");
    assert_eq!(r.status(), 403);
    assert_eq!(request(&s.p, "/home", "alice").status(), 200);
    let banned_id = request_id(&r);
    let row = b.wait_for(&format!("#feed tr[data-request-id='{banned_id}']"));
    assert!(b.text(&row).contains("repeat-offender-ban"), "{}", b.text(&row));

    // Unban from the ban list: the account passes again.
    b.click(&b.wait_for("#bans tr[data-actor^='id:hmac:'] button.unban"));
    b.wait("the ban lifted", || {
        b.find_all("#bans tr[data-actor^='id:hmac:']").is_empty().then_some(())
    });
    assert_eq!(request(&s.p, "/home", "mallory").status(), 200);

    // Signing out forgets the token.
    b.click(&b.wait_for("#signout"));
    b.wait("the sign-in form", || {
        b.find_all("#signin-panel").first().filter(|e| b.displayed(e)).cloned()
    });
    assert_eq!(
        b.script("return sessionStorage.getItem('palisade-admin-token')"),
        serde_json::Value::Null
    );
}

#[test]
fn a_wrong_token_is_refused_clearly_and_kept_nowhere() {
    let Some(b) = webdriver::browser() else { return };
    let s = start();
    b.goto(&s.admin);
    sign_in(&b, "not-the-token");
    let error = b.wait("the refusal", || {
        b.find_all("#signin-error").first().filter(|e| b.displayed(e)).cloned()
    });
    assert!(b.text(&error).contains("Wrong token"), "{}", b.text(&error));
    let console = b.wait_for("#console");
    assert!(!b.displayed(&console), "nothing is shown without the token");
    assert_eq!(
        b.script("return sessionStorage.getItem('palisade-admin-token')"),
        serde_json::Value::Null
    );
    eventually("the refusal counted", || {
        (s.p.metric("palisade_admin_refusals_total{reason=\"wrong_token\"}") == Some(1.0)).then_some(())
    });
    // The right token then works.
    sign_in(&b, TOKEN);
    b.wait("the console", || {
        b.find_all("#console").first().filter(|c| b.displayed(c)).cloned()
    });
}

/// Screenshots for the README: `cargo test --test console_browser -- --ignored`. Writes
/// docs/img/console.png after some traffic and a ban.
#[test]
#[ignore = "writes docs/img/console.png; run by hand"]
fn screenshot_for_the_readme() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    let Some(b) = webdriver::browser() else { return };
    let s = start();
    b.goto(&s.admin);
    sign_in(&b, TOKEN);
    b.wait_for("#offenders");
    // Steady traffic with a few attackers, kept up until the picture is taken.
    let stop = Arc::new(AtomicBool::new(false));
    let url = s.p.url("");
    let traffic = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let c = client();
            let get = |path: &str, account: &str| {
                let _ = c.get(format!("{url}{path}")).header("x-account", account).send();
            };
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                get("/home", "alice");
                get(&format!("/page/{n}"), "bob");
                if n % 3 == 0 {
                    get("/admin", "mallory");
                }
                if n % 5 == 0 {
                    get("/wp-login.php", "trudy");
                }
                n += 1;
                std::thread::sleep(std::time::Duration::from_millis(15 + (n % 7) * 5));
            }
        })
    };
    std::thread::sleep(std::time::Duration::from_secs(20));
    let ban = b.wait_for("#offenders tr[data-actor^='id:hmac:'] button.ban");
    b.click(&ban);
    b.wait_for("#bans tr[data-actor^='id:hmac:']");
    std::thread::sleep(std::time::Duration::from_secs(5));
    let out = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/img/console.png");
    std::fs::create_dir_all(out.parent().expect("dir")).expect("mkdir");
    b.screenshot(&out);
    stop.store(true, Ordering::Relaxed);
    traffic.join().expect("traffic");
}
