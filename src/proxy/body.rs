//! Request bodies a stage wants whole before the origin sees any of it (request_filter, after
//! the head stages): read into Pingora's retry buffer, which the proxy then replays upstream,
//! and run through the stages' body phase. Bounded: a body declared larger than the limit is
//! passed uninspected or refused, as the stage asked; a chunked body that grows past the limit
//! is refused, since what was read can no longer be replayed whole.

use http::header;
use pingora::prelude::*;

use super::ctx::RequestCtx;
use super::respond::Reply;
use crate::metrics::METRICS;
use crate::stage::{Oversize, Pipeline};
use crate::traffic::limits::BODY_NOT_INSPECTABLE;

/// Pingora's retry buffer holds at most this much; a larger body read here could not be
/// replayed upstream (`pingora-core` `protocols/http/v1/common.rs`).
pub const MAX_INSPECTED_BODY: usize = 64 * 1024;

/// Read and judge the body when a stage asked for it. `Some(reply)`: answer instead of
/// proxying.
pub async fn inspect(session: &mut Session, ctx: &mut RequestCtx, pipeline: &Pipeline) -> Result<Option<Reply>> {
    let Some(want) = ctx.ledger.wants.body else {
        return Ok(None);
    };
    if session.is_upgrade_req() {
        return Ok(None);
    }
    let req = session.req_header();
    let declared = req
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let chunked = req.headers.contains_key(header::TRANSFER_ENCODING);
    if declared.unwrap_or(0) == 0 && !chunked {
        return Ok(None);
    }
    let limit = want.limit.min(MAX_INSPECTED_BODY);
    if declared.is_some_and(|n| n > limit as u64) {
        return Ok(match want.oversize {
            Oversize::Pass => {
                METRICS.bodies_uninspected.inc();
                None
            }
            Oversize::Refuse => Some(Reply::Refuse(BODY_NOT_INSPECTABLE)),
        });
    }
    session.enable_retry_buffering();
    let mut total = 0usize;
    loop {
        let Some(chunk) = session.read_request_body().await? else {
            let _ = pipeline.body_chunk(&[], true, &mut ctx.ledger);
            break;
        };
        total += chunk.len();
        if total > limit {
            return Ok(Some(Reply::Refuse(BODY_NOT_INSPECTABLE)));
        }
        let end = session.is_body_done();
        let _ = pipeline.body_chunk(&chunk, end, &mut ctx.ledger);
        if end {
            break;
        }
    }
    ctx.body_inspected = true;
    Ok(ctx.ledger.verdict.enforced().then_some(Reply::Deny))
}
