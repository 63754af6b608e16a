//! The measured matrix the dashboard draws: per client area (a country from
//! the geo database, or the network itself where it has none; an ASN or a
//! country the feed named) and region, the measured figure or "estimated",
//! and how many networks each region wins. Pure: made from the rows the
//! last refresh published, with the caller's `area` of a network.
//!
//! Bounded: at most `top` areas (those with the most samples), `MAX_TOP` at
//! most whatever is asked.

use std::collections::BTreeMap;
use std::time::Instant;

use serde_json::{json, Value};

use super::key::NetKey;
use super::live::LiveRows;

/// The most areas one answer holds.
pub(crate) const MAX_TOP: usize = 200;

/// One area's figures for one region, over its networks.
#[derive(Default, Clone)]
struct Sum {
    /// Per network: its figure, weighted by its samples (for the area's median).
    figures: Vec<(f32, u32)>,
    samples: u64,
    senders: u64,
    probes: u64,
    feed: bool,
    shared: bool,
    newest_age_s: Option<u64>,
}

#[derive(Default)]
struct Area {
    networks: usize,
    samples: u64,
    cells: Vec<Sum>,
}

/// The matrix of `rows` as of `now`, `top` areas at most.
pub(crate) fn matrix(
    rows: Option<&LiveRows>,
    regions: &[String],
    area: &dyn Fn(&NetKey) -> String,
    top: usize,
    now: Instant,
) -> Value {
    let width = regions.len();
    let mut areas: BTreeMap<String, Area> = BTreeMap::new();
    let mut wins = vec![0u64; width];
    let mut networks = 0usize;
    for (key, cells, published) in rows.into_iter().flat_map(|r| r.iter()) {
        networks += 1;
        let a = areas.entry(area(&key)).or_default();
        a.cells.resize(width, Sum::default());
        a.networks += 1;
        let best = published
            .iter()
            .enumerate()
            .filter_map(|(i, m)| Some((i, (*m)?)))
            .min_by(|x, y| x.1.total_cmp(&y.1));
        if let Some((i, _)) = best.filter(|(i, _)| *i < width) {
            wins[i] += 1;
        }
        for (i, f) in cells.into_iter().enumerate().take(width) {
            let Some(f) = f else { continue };
            let s = &mut a.cells[i];
            s.figures.push((f.rtt_ms, f.samples.max(1)));
            s.samples += u64::from(f.samples);
            s.senders += f.senders as u64;
            s.probes += u64::from(f.probes);
            s.feed |= f.feed;
            s.shared |= f.site.is_some();
            let age = now.saturating_duration_since(f.newest).as_secs();
            s.newest_age_s = Some(s.newest_age_s.map_or(age, |a| a.min(age)));
            a.samples += u64::from(f.samples);
        }
    }
    let total = areas.len();
    let mut list: Vec<(String, Area)> = areas.into_iter().collect();
    list.sort_by(|x, y| y.1.samples.cmp(&x.1.samples).then_with(|| x.0.cmp(&y.0)));
    list.truncate(top.min(MAX_TOP));
    let areas: Vec<Value> = list
        .into_iter()
        .map(|(name, a)| {
            let cells: Vec<Value> = regions
                .iter()
                .zip(a.cells.iter())
                .map(|(region, s)| cell(region, s))
                .collect();
            json!({"area": name, "networks": a.networks, "samples": a.samples, "cells": cells})
        })
        .collect();
    let wins: serde_json::Map<String, Value> = regions
        .iter()
        .zip(wins)
        .map(|(r, n)| (r.clone(), json!(n)))
        .collect();
    json!({
        "regions": regions,
        "networks": networks,
        "areas_total": total,
        "areas": areas,
        "wins": wins,
    })
}

/// A region's cell: the sample-weighted median of its networks' figures, or
/// "estimated" where none of them has one.
fn cell(region: &str, s: &Sum) -> Value {
    if s.figures.is_empty() {
        return json!({"region": region, "estimated": true});
    }
    let mut f = s.figures.clone();
    f.sort_by(|a, b| a.0.total_cmp(&b.0));
    let half = f.iter().map(|x| u64::from(x.1)).sum::<u64>().div_ceil(2);
    let mut acc = 0u64;
    let ms = f
        .iter()
        .find(|x| {
            acc += u64::from(x.1);
            acc >= half
        })
        .map_or(f[0].0, |x| x.0);
    let mut sources = Vec::new();
    if s.senders > 0 {
        sources.push("beacons");
    }
    if s.feed {
        sources.push("feed");
    }
    if s.probes > 0 {
        sources.push("probes");
    }
    if s.shared {
        sources.push("shared");
    }
    json!({
        "region": region,
        "ms": ms,
        "samples": s.samples,
        "senders": s.senders,
        "age_s": s.newest_age_s,
        "source": sources.join("+"),
    })
}
