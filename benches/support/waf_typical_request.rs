// The typical request shared by the WAF benchmark and its instruction-count example.

const UA: &str =
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36";
const REFERER: &str = "https://shop.example.com/catalog/shoes?sort=price&page=2";

/// About 1 KiB of JSON, flattened by the proxy into ~20 string fields.
const JSON_FIELDS: &[(&str, &str)] = &[
    ("order.id", "ord_9f8e7d6c5b4a"),
    ("order.customer.name", "Jane O'Connor"),
    ("order.customer.email", "jane.oconnor@example.org"),
    ("order.customer.phone", "+1 (555) 010-2233"),
    ("order.shipping.street", "1200 Market Street, Apt 4B"),
    ("order.shipping.city", "San Francisco"),
    ("order.shipping.state", "CA"),
    ("order.shipping.zip", "94103"),
    ("order.shipping.country", "US"),
    ("order.items[0].sku", "SHOE-RUN-42-BLU"),
    ("order.items[0].title", "Trail runner, blue, size 42"),
    ("order.items[1].sku", "SOCK-3PK-M"),
    ("order.items[1].title", "Running socks (3 pack) - medium"),
    (
        "order.notes",
        "Please leave the parcel at the front desk if nobody answers; thanks a lot & have a nice day!",
    ),
    ("order.coupon", "SPRING-2024"),
    ("order.currency", "USD"),
    ("order.payment.method", "card"),
    ("order.payment.last4", "4242"),
    (
        "order.gift_message",
        "Happy birthday Sam! Select any colour you like from the shop, and let me know <3",
    ),
    ("order.created_at", "2024-04-18T10:22:31.123Z"),
];

pub fn typical() -> Vec<Item<'static>> {
    let mut items = vec![
        Item::new(Location::Path, "path", b"/api/v2/orders/checkout"),
        Item::new(Location::QueryArg, "session", b"a1b2c3d4e5"),
        Item::new(Location::QueryArg, "lang", b"en-US"),
        Item::new(Location::QueryArg, "q", b"red+running+shoes+size+42"),
        Item::new(Location::QueryArg, "utm_source", b"newsletter"),
        Item::new(Location::QueryArg, "redirect", b"%2Faccount%2Forders%3Ftab%3Drecent"),
        Item::new(Location::Header, "user-agent", UA.as_bytes()),
        Item::new(Location::Header, "referer", REFERER.as_bytes()),
    ];
    items.extend(
        JSON_FIELDS
            .iter()
            .map(|(k, v)| Item::new(Location::JsonString, k, v.as_bytes())),
    );
    items
}
