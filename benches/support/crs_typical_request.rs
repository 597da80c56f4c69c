// The CRS tier's typical request, shared by its benchmark and `examples/crs_cost.rs`.

use palisade::waf::crs::{uri_for, CrsRequest};

const UA: &str =
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36";
const QUERY: &str = "session=a1b2c3d4e5&lang=en-US&q=red+running+shoes+size+42&utm_source=newsletter&redirect=%2Faccount%2Forders%3Ftab%3Drecent";
const ATTACK_QUERY: &str = "session=a1b2c3d4e5&lang=en-US&q=1%27%20union%20select%20password%20from%20users--&utm_source=newsletter&redirect=%2Faccount%2Forders%3Ftab%3Drecent";

/// About 1 KiB of JSON: the 20 string fields of `benches/support/waf_typical_request.rs`, two
/// numbers per item and a `meta` object.
fn body(notes: &str) -> String {
    format!(
        r#"{{"order":{{"id":"ord_9f8e7d6c5b4a","customer":{{"name":"Jane O'Connor","email":"jane.oconnor@example.org","phone":"+1 (555) 010-2233"}},"shipping":{{"street":"1200 Market Street, Apt 4B","city":"San Francisco","state":"CA","zip":"94103","country":"US"}},"items":[{{"sku":"SHOE-RUN-42-BLU","title":"Trail runner, blue, size 42","qty":1,"price":129.95}},{{"sku":"SOCK-3PK-M","title":"Running socks (3 pack) - medium","qty":2,"price":14.5}}],"notes":"{notes}","coupon":"SPRING-2024","currency":"USD","payment":{{"method":"card","last4":"4242"}},"gift_message":"Happy birthday Sam! Select any colour you like from the shop, and let me know <3","created_at":"2024-04-18T10:22:31.123Z","meta":{{"device":"desktop","viewport":"1920x1080","campaign":"spring-sale-newsletter-2024","ab_test":"checkout-v3-blue-button","locale":"en-US","timezone":"America/Los_Angeles","client_version":"web-5.12.3","fingerprint":"c0ffee1234567890abcdef","consent":"analytics,marketing"}}}}}}"#
    )
}

fn headers(len: usize) -> http::HeaderMap {
    let mut h = http::HeaderMap::new();
    for (k, v) in [
        ("host", "shop.example.com".to_owned()),
        ("user-agent", UA.to_owned()),
        ("referer", "https://shop.example.com/catalog/shoes?sort=price&page=2".to_owned()),
        ("accept", "application/json, text/plain, */*".to_owned()),
        ("accept-language", "en-US,en;q=0.9".to_owned()),
        ("accept-encoding", "gzip, deflate, br".to_owned()),
        ("content-type", "application/json".to_owned()),
        ("content-length", len.to_string()),
    ] {
        h.insert(
            http::HeaderName::from_static(k),
            http::HeaderValue::from_str(&v).expect("header"),
        );
    }
    h
}

/// The typical request (clean) and the same with two attacks (SQLi in `q`, XSS in the body),
/// leaked for `'static` borrows.
pub fn typical_requests() -> (CrsRequest<'static>, CrsRequest<'static>, CrsRequest<'static>) {
    let clean = body("Please leave the parcel at the front desk if nobody answers; thanks a lot & have a nice day!");
    let attack = body("<img src=x onerror=alert(document.cookie)>");
    assert!((1000..1200).contains(&clean.len()), "{}", clean.len());
    let leak = |s: String| -> &'static str { Box::leak(s.into_boxed_str()) };
    let uri = leak(uri_for("/api/v2/orders/checkout", Some(QUERY)));
    let attack_uri = leak(uri_for("/api/v2/orders/checkout", Some(ATTACK_QUERY)));
    let h: &'static http::HeaderMap = Box::leak(Box::new(headers(clean.len())));
    let ha: &'static http::HeaderMap = Box::leak(Box::new(headers(attack.len())));
    let (clean, attack) = (leak(clean).as_bytes(), leak(attack).as_bytes());
    let req = |uri: &'static str, h: &'static http::HeaderMap, body: Option<&'static [u8]>| CrsRequest {
        client_ip: "203.0.113.7".parse().expect("ip"),
        method: "POST",
        uri,
        headers: h,
        body,
    };
    (req(uri, h, Some(clean)), req(attack_uri, ha, Some(attack)), req(uri, h, None))
}
