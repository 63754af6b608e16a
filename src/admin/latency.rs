//! `GET /v1/latency/matrix`: the measured matrix for the dashboard's panel
//! (`page/latency.js`). Read-only. Per client area (the network's country
//! in the serving geo database, else the network; an ASN or a country the
//! feed named) and region: the measured figure (ms, samples, distinct
//! senders, age, source) or `"estimated": true`, and how many networks each
//! region wins. `?top=N` (1 to 200, default 50) bounds the areas, those with
//! the most samples first.

use super::{AdminState, Reply, Request};
use crate::latency::NetKey;

const DEFAULT_TOP: usize = 50;

pub(crate) fn matrix(state: &AdminState, req: &Request) -> Reply {
    let top = match req.query.get("top").map(|t| t.parse::<usize>()) {
        None => DEFAULT_TOP,
        Some(Ok(n)) if (1..=200).contains(&n) => n,
        Some(_) => return Reply::text(400, "top: use a whole number from 1 to 200"),
    };
    let Some(handle) = crate::reload::latency::handle() else {
        return Reply::json(
            serde_json::json!({"regions": [], "networks": 0, "areas_total": 0, "areas": [], "wins": {}}),
        );
    };
    let snap = state.snap.load();
    let area = |k: &NetKey| match *k {
        NetKey::Net(addr, _) => match snap.geo.locate(addr).country {
            Some(c) => String::from_utf8_lossy(&c).into_owned(),
            None => k.to_string(),
        },
        NetKey::Asn(_) => k.to_string(),
        NetKey::Country(c) => String::from_utf8_lossy(&c).into_owned(),
    };
    Reply::json(handle.matrix(&area, top))
}
