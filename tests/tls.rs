//! TLS at the edge: certificates chosen by SNI, HTTP/2 by ALPN in front of an HTTP/1.1 origin,
//! TLS facts in telemetry, the plain-http redirect listener, and TLS to the upstream. Every
//! certificate is made at test time by a throwaway CA.

mod common;
use common::*;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;

use openssl::asn1::Asn1Time;
use openssl::bn::{BigNum, MsbOption};
use openssl::ec::{EcGroup, EcKey};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{PKey, Private};
use openssl::ssl::{NameType, SslAcceptor, SslMethod};
use openssl::x509::extension::{
    AuthorityKeyIdentifier, BasicConstraints, ExtendedKeyUsage, KeyUsage, SubjectAlternativeName, SubjectKeyIdentifier,
};
use openssl::x509::{X509Name, X509NameBuilder, X509};
use reqwest::blocking::Client;

fn new_key() -> PKey<Private> {
    let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).expect("P-256");
    PKey::from_ec_key(EcKey::generate(&group).expect("EC key")).expect("pkey")
}

/// A v3 certificate for `cn` valid from now for two days; also returns its subject name.
fn cert_builder(cn: &str, key: &PKey<Private>) -> (openssl::x509::X509Builder, X509Name) {
    let mut name = X509NameBuilder::new().expect("name");
    name.append_entry_by_nid(Nid::COMMONNAME, cn).expect("CN");
    let name = name.build();
    let mut b = X509::builder().expect("builder");
    b.set_version(2).expect("v3");
    let mut serial = BigNum::new().expect("bn");
    serial.rand(64, MsbOption::MAYBE_ZERO, false).expect("serial");
    b.set_serial_number(&serial.to_asn1_integer().expect("serial"))
        .expect("serial");
    b.set_subject_name(&name).expect("subject");
    b.set_pubkey(key).expect("pubkey");
    b.set_not_before(&Asn1Time::days_from_now(0).expect("now"))
        .expect("not before");
    b.set_not_after(&Asn1Time::days_from_now(2).expect("later"))
        .expect("not after");
    (b, name)
}

/// A throwaway certificate authority.
struct Ca {
    cert: X509,
    key: PKey<Private>,
}

/// A leaf certificate and its key, as PEM text.
struct Leaf {
    cert_pem: String,
    key_pem: String,
    der: Vec<u8>,
}

impl Ca {
    fn new(cn: &str) -> Ca {
        let key = new_key();
        let (mut b, subject) = cert_builder(cn, &key);
        b.set_issuer_name(&subject).expect("issuer");
        let ski = SubjectKeyIdentifier::new()
            .build(&b.x509v3_context(None, None))
            .expect("ski");
        b.append_extension(BasicConstraints::new().critical().ca().build().expect("bc"))
            .expect("bc");
        b.append_extension(
            KeyUsage::new()
                .critical()
                .key_cert_sign()
                .crl_sign()
                .build()
                .expect("ku"),
        )
        .expect("ku");
        b.append_extension(ski).expect("ski");
        b.sign(&key, MessageDigest::sha256()).expect("sign");
        Ca { cert: b.build(), key }
    }

    fn pem(&self) -> String {
        String::from_utf8(self.cert.to_pem().expect("pem")).expect("utf8")
    }

    fn issue(&self, names: &[&str]) -> Leaf {
        let key = new_key();
        let (mut b, _) = cert_builder(names[0], &key);
        b.set_issuer_name(self.cert.subject_name()).expect("issuer");
        let mut san = SubjectAlternativeName::new();
        for n in names {
            san.dns(n);
        }
        let ctx = b.x509v3_context(Some(&self.cert), None);
        let san = san.build(&ctx).expect("san");
        let ski = SubjectKeyIdentifier::new().build(&ctx).expect("ski");
        let aki = AuthorityKeyIdentifier::new().keyid(false).build(&ctx).expect("aki");
        b.append_extension(san).expect("san");
        b.append_extension(ski).expect("ski");
        b.append_extension(aki).expect("aki");
        b.append_extension(BasicConstraints::new().build().expect("bc"))
            .expect("bc");
        b.append_extension(KeyUsage::new().critical().digital_signature().build().expect("ku"))
            .expect("ku");
        b.append_extension(ExtendedKeyUsage::new().server_auth().build().expect("eku"))
            .expect("eku");
        b.sign(&self.key, MessageDigest::sha256()).expect("sign");
        let cert = b.build();
        Leaf {
            cert_pem: String::from_utf8(cert.to_pem().expect("pem")).expect("utf8"),
            key_pem: String::from_utf8(key.private_key_to_pem_pkcs8().expect("key pem")).expect("utf8"),
            der: cert.to_der().expect("der"),
        }
    }
}

/// The edge under test: a TLS listener with two certificates, a plain listener redirecting to
/// it, and a plain listener redirecting to the default https port.
struct Edge {
    proxy: Proxy,
    tls: SocketAddr,
    redirect_default_port: SocketAddr,
    ca_pem: String,
    a: Leaf,
    b: Leaf,
}

fn start_edge(origin: &Origin) -> Edge {
    let ca = Ca::new("Palisade Test CA");
    let a = ca.issue(&["a.example.test"]);
    let b = ca.issue(&["*.b.example.test"]);
    let tls = free_addr();
    let redirect_default_port = free_addr();
    let config = BASE.replace(
        "listeners:\n  - address: {LISTEN}\n",
        &format!(
            "listeners:
  - address: {{LISTEN}}
    redirect_https: true
    https_port: {tls_port}
  - address: {redirect_default_port}
    redirect_https: true
  - address: {tls}
    tls:
      http2: true
      certificates:
        - cert: a.pem
          key: a.key
          server_names: [a.example.test]
        - cert: b.pem
          key: b.key
          server_names: [\"*.b.example.test\"]
",
            tls_port = tls.port()
        ),
    );
    assert_ne!(
        config, BASE,
        "BASE no longer has the listener section this test replaces"
    );
    let config = format!("{config}{}", single_pool(origin));
    let proxy = Proxy::start_with(
        &config,
        &[
            ("a.pem", &a.cert_pem),
            ("a.key", &a.key_pem),
            ("b.pem", &b.cert_pem),
            ("b.key", &b.key_pem),
        ],
        &[],
    );
    eventually("the TLS listener", || TcpStream::connect(tls).ok());
    Edge {
        proxy,
        tls,
        redirect_default_port,
        ca_pem: ca.pem(),
        a,
        b,
    }
}

impl Edge {
    /// A client that trusts only the test CA and resolves every test name to the edge.
    fn client(&self) -> Client {
        let mut b = reqwest::blocking::Client::builder()
            .use_native_tls()
            .tls_built_in_root_certs(false)
            .add_root_certificate(reqwest::Certificate::from_pem(self.ca_pem.as_bytes()).expect("CA"))
            .tls_info(true)
            .redirect(reqwest::redirect::Policy::none())
            .timeout(PATIENCE);
        for name in ["a.example.test", "x.b.example.test", "b.example.test", "c.example.test"] {
            // The port comes from the URL; only the address is taken from here.
            b = b.resolve(name, SocketAddr::new(self.tls.ip(), 0));
        }
        b.build().expect("client")
    }

    fn https(&self, host: &str, path: &str) -> String {
        format!("https://{host}:{}{path}", self.tls.port())
    }
}

fn served_certificate(r: &reqwest::blocking::Response) -> Vec<u8> {
    r.extensions()
        .get::<reqwest::tls::TlsInfo>()
        .and_then(|t| t.peer_certificate())
        .expect("TLS info with the peer certificate")
        .to_vec()
}

#[test]
fn the_certificate_is_chosen_by_sni() {
    let origin = Origin::spawn("127.0.0.1:0").expect("origin");
    let edge = start_edge(&origin);
    let c = edge.client();

    // Host name verification only passes when the certificate for that name was served.
    let r = c
        .get(edge.https("a.example.test", "/a"))
        .send()
        .expect("a.example.test verifies");
    assert_eq!(r.status(), 200);
    assert!(
        served_certificate(&r) == edge.a.der,
        "a.example.test got another certificate"
    );

    let r = c
        .get(edge.https("x.b.example.test", "/b"))
        .send()
        .expect("x.b.example.test verifies");
    assert_eq!(r.status(), 200);
    assert!(
        served_certificate(&r) == edge.b.der,
        "x.b.example.test got another certificate"
    );

    // Names no certificate covers get the first (default) one, which the client rejects: the
    // wildcard covers subdomains only, not the apex.
    for host in ["b.example.test", "c.example.test"] {
        let e = c
            .get(edge.https(host, "/"))
            .send()
            .expect_err(&format!("{host} must fail verification"));
        assert!(e.is_connect(), "{host}: expected a TLS failure, got {e:?}");
    }
    assert_eq!(
        origin.seen().len(),
        2,
        "only the two verified requests reached the origin"
    );
}

#[test]
fn http2_at_the_edge_and_http1_to_the_origin_with_tls_in_telemetry() {
    let origin = Origin::spawn("127.0.0.1:0").expect("origin");
    let edge = start_edge(&origin);
    let c = edge.client();

    let r = c
        .get(edge.https("x.b.example.test", "/h2?lang=en"))
        .send()
        .expect("request");
    assert_eq!(r.status(), 200);
    assert_eq!(r.version(), reqwest::Version::HTTP_2, "ALPN should pick h2");
    let id = r
        .headers()
        .get("x-request-id")
        .expect("request id")
        .to_str()
        .expect("ascii")
        .to_string();
    let body: serde_json::Value = r.json().expect("origin echo");

    // The origin only speaks HTTP/1.1; it got one request with the authority as Host.
    let seen = origin.seen_path("/h2");
    assert_eq!(seen.len(), 1);
    assert_eq!(body["target"], "/h2?lang=en");
    assert_eq!(
        seen[0].headers.get("host").map(String::as_str),
        Some(format!("x.b.example.test:{}", edge.tls.port()).as_str()),
        "the HTTP/2 authority must become the HTTP/1.1 Host header"
    );
    assert_eq!(
        seen[0].headers.get("x-forwarded-proto").map(String::as_str),
        Some("https")
    );

    let ev = edge.proxy.event_for(&id);
    assert_eq!(ev["http"]["version"], "2");
    assert_eq!(ev["tls"]["server_name"], "x.b.example.test");
    let version = ev["tls"]["version"].as_str().expect("tls.version");
    assert!(version == "TLSv1.3" || version == "TLSv1.2", "tls.version {version}");
    assert_eq!(ev["url"]["domain"], "x.b.example.test");

    // A client that only offers HTTP/1.1 is served HTTP/1.1 on the same listener.
    let h1 = reqwest::blocking::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(edge.ca_pem.as_bytes()).expect("CA"))
        .resolve("a.example.test", SocketAddr::new(edge.tls.ip(), 0))
        .http1_only()
        .build()
        .expect("client");
    let r = h1.get(edge.https("a.example.test", "/h1")).send().expect("request");
    assert_eq!(r.status(), 200);
    assert_eq!(r.version(), reqwest::Version::HTTP_11);
    let id = r
        .headers()
        .get("x-request-id")
        .expect("request id")
        .to_str()
        .expect("ascii")
        .to_string();
    let ev = edge.proxy.event_for(&id);
    assert_eq!(ev["http"]["version"], "1.1");
    assert_eq!(ev["tls"]["server_name"], "a.example.test");

    // Plain-http requests carry no tls object.
    let r = client()
        .get(format!("http://{}/plain", edge.proxy.addr))
        .send()
        .expect("request");
    let id = r
        .headers()
        .get("x-request-id")
        .expect("request id")
        .to_str()
        .expect("ascii")
        .to_string();
    assert!(edge.proxy.event_for(&id).get("tls").is_none());
}

#[test]
fn plain_listener_redirects_to_https_and_never_forwards() {
    let origin = Origin::spawn("127.0.0.1:0").expect("origin");
    let edge = start_edge(&origin);
    let plain = edge.proxy.addr;
    let c = reqwest::blocking::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .resolve("a.example.test", SocketAddr::new(plain.ip(), 0))
        .timeout(PATIENCE)
        .build()
        .expect("client");

    for method in [reqwest::Method::GET, reqwest::Method::POST, reqwest::Method::HEAD] {
        let r = c
            .request(
                method.clone(),
                format!("http://a.example.test:{}/shop/cart?item=42&qty=2", plain.port()),
            )
            .body(if method == reqwest::Method::POST {
                "secret=1"
            } else {
                ""
            })
            .send()
            .expect("request");
        assert_eq!(r.status(), 308, "{method}");
        assert_eq!(
            r.headers().get("location").and_then(|v| v.to_str().ok()),
            Some(format!("https://a.example.test:{}/shop/cart?item=42&qty=2", edge.tls.port()).as_str()),
            "{method}"
        );
    }
    // Port 443 is left out of the target.
    let r = client()
        .get(format!("http://{}/x?y=1", edge.redirect_default_port))
        .header("host", "shop.example.test")
        .send()
        .expect("request");
    assert_eq!(r.status(), 308);
    assert_eq!(
        r.headers().get("location").and_then(|v| v.to_str().ok()),
        Some("https://shop.example.test/x?y=1")
    );
    assert!(
        origin.seen().is_empty(),
        "a redirect listener must never forward: {:?}",
        origin.seen()
    );

    // Following the redirect lands on the TLS listener, which does forward.
    let follow = reqwest::blocking::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(edge.ca_pem.as_bytes()).expect("CA"))
        .resolve("a.example.test", SocketAddr::new(plain.ip(), 0))
        .timeout(PATIENCE)
        .build()
        .expect("client");
    let r = follow
        .get(format!("http://a.example.test:{}/shop/cart?item=42", plain.port()))
        .send()
        .expect("request");
    assert_eq!(r.status(), 200);
    assert_eq!(r.url().scheme(), "https");
    let seen = origin.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].target, "/shop/cart?item=42");
    assert_eq!(
        seen[0].headers.get("x-forwarded-proto").map(String::as_str),
        Some("https")
    );
}

/// A one-request-per-connection HTTPS origin; answers with the SNI it was asked for.
fn tls_origin(leaf: &Leaf) -> (SocketAddr, Arc<AtomicUsize>) {
    let mut acceptor = SslAcceptor::mozilla_intermediate_v5(SslMethod::tls()).expect("acceptor");
    acceptor
        .set_certificate(&X509::from_pem(leaf.cert_pem.as_bytes()).expect("cert"))
        .expect("cert");
    acceptor
        .set_private_key(&PKey::private_key_from_pem(leaf.key_pem.as_bytes()).expect("key"))
        .expect("key");
    let acceptor = Arc::new(acceptor.build());
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let served = Arc::new(AtomicUsize::new(0));
    let count = served.clone();
    thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let (acceptor, count) = (acceptor.clone(), count.clone());
            thread::spawn(move || {
                let Ok(mut s) = acceptor.accept(stream) else { return };
                let mut req = Vec::new();
                let mut buf = [0u8; 1024];
                while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => req.extend_from_slice(&buf[..n]),
                    }
                }
                count.fetch_add(1, Ordering::SeqCst);
                let sni = s.ssl().servername(NameType::HOST_NAME).unwrap_or("").to_string();
                let body = format!("{{\"tls_origin\":true,\"sni\":{sni:?}}}");
                let _ = write!(
                    s,
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = s.shutdown();
            });
        }
    });
    (addr, served)
}

#[test]
fn upstream_tls_is_verified_against_the_configured_ca() {
    let ca = Ca::new("Palisade Upstream CA");
    let leaf = ca.issue(&["origin.example.test"]);
    let (backend, served) = tls_origin(&leaf);
    let pools = format!(
        "upstreams:
  good:
    backends: [\"{backend}\"]
    tls: {{sni: origin.example.test}}
  wrong_name:
    backends: [\"{backend}\"]
    tls: {{sni: other.example.test}}
  unverified:
    backends: [\"{backend}\"]
    tls: {{sni: other.example.test, verify: false}}
routes:
  - {{name: good, path_prefix: /good, upstream: good}}
  - {{name: wrong_name, path_prefix: /wrong, upstream: wrong_name}}
  - {{name: unverified, path_prefix: /unverified, upstream: unverified}}
"
    );
    let config = BASE.replace("server:\n", "server:\n  ca_file: {DIR}/ca.pem\n");
    assert_ne!(config, BASE);
    let p = Proxy::start_with(&format!("{config}{pools}"), &[("ca.pem", &ca.pem())], &[]);
    let c = client();

    let r = c.get(p.url("/good")).send().expect("request");
    assert_eq!(r.status(), 200);
    let body: serde_json::Value = r.json().expect("json");
    assert_eq!(body["tls_origin"], true);
    assert_eq!(body["sni"], "origin.example.test");
    assert_eq!(served.load(Ordering::SeqCst), 1);

    // The certificate does not name other.example.test: verification refuses the backend and
    // the request never reaches it.
    let r = c.get(p.url("/wrong")).send().expect("request");
    assert_eq!(r.status(), 502);
    // The edge closes the connection after an error answer and must announce it, or this
    // keep-alive client would send the next request into a reset.
    assert_eq!(
        r.headers().get("connection").and_then(|v| v.to_str().ok()),
        Some("close")
    );
    assert_eq!(
        served.load(Ordering::SeqCst),
        1,
        "a request went to an unverified backend"
    );

    // verify: false is the explicit opt-out.
    let r = c.get(p.url("/unverified")).send().expect("request");
    assert_eq!(r.status(), 200);
    assert_eq!(served.load(Ordering::SeqCst), 2);
}
