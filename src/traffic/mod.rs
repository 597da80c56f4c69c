//! The compiled traffic model every request reads from the snapshot, and the pure rules of
//! traffic handling: routes, upstream pools, size and rate limits, request framing. Built from
//! configuration off the request path; driven by `proxy`.

pub mod compress;
pub mod framing;
pub mod limits;
pub mod routes;
pub mod upstream;
pub mod ws;
