mod common;
use common::*;

#[test]
fn proxies_to_the_origin() {
    let origin = Origin::spawn("127.0.0.1:0").expect("origin");
    let p = Proxy::start(&single_pool(&origin), &[]);
    let r = client().get(p.url("/hello")).send().expect("request");
    assert_eq!(r.status(), 200);
    assert_eq!(origin.seen_path("/hello").len(), 1);
}
