use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

use super::*;
use crate::geo::Location;

fn regions() -> Vec<String> {
    vec!["eu-west".into(), "us-east".into(), "ap-northeast".into()]
}

fn agg() -> Aggregator {
    Aggregator::new(regions(), AggregatorLimits::default())
}

fn v4(a: u8, b: u8, c: u8, d: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(a, b, c, d))
}

fn beacon(addr: IpAddr, region: u16, rtt_ms: f64) -> Sample {
    Sample {
        key: NetKey::of_addr(addr),
        region,
        rtt_ms,
        sender: Sender::Addr(addr),
        count: 1,
    }
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

#[test]
fn keys_are_the_senders_slash_24_or_slash_48() {
    assert_eq!(
        NetKey::of_addr(v4(203, 0, 113, 77)),
        NetKey::Net(v4(203, 0, 113, 0), 24)
    );
    let v6: IpAddr = "2001:db8:1:2:3::9".parse().unwrap();
    assert_eq!(
        NetKey::of_addr(v6),
        NetKey::Net("2001:db8:1::".parse().unwrap(), 48)
    );
    let mapped = IpAddr::V6(Ipv4Addr::new(198, 51, 100, 9).to_ipv6_mapped());
    assert_eq!(
        NetKey::of_addr(mapped),
        NetKey::Net(v4(198, 51, 100, 0), 24)
    );
    let narrow = "198.51.100.0/25".parse().unwrap();
    assert!(matches!(NetKey::of_net(narrow), Err(Rejected::Narrow(_))));
    let wide = "198.51.0.0/16".parse().unwrap();
    assert_eq!(NetKey::of_net(wide), Ok(NetKey::Net(v4(198, 51, 0, 0), 16)));
    assert!(NetKey::of_country("jp").is_err());
    assert_eq!(NetKey::of_country("JP"), Ok(NetKey::Country(*b"JP")));
}

#[test]
fn one_address_repeating_cannot_make_a_figure() {
    let mut a = agg();
    let t0 = Instant::now();
    let me = v4(203, 0, 113, 5);
    for i in 0..100 {
        a.add(&beacon(me, 0, 20.0), t0 + secs(i)).unwrap();
    }
    let key = NetKey::of_addr(me);
    assert_eq!(a.figures(&key, t0 + secs(100))[0], None);
    assert!(a.snapshot(t0 + secs(100)).rows.is_empty());
    // Two more senders of the same network, enough samples: it counts.
    let other = v4(203, 0, 113, 6);
    let third = v4(203, 0, 113, 7);
    a.add(&beacon(other, 0, 22.0), t0 + secs(101)).unwrap();
    assert_eq!(a.figures(&key, t0 + secs(101))[0], None, "two senders");
    a.add(&beacon(third, 0, 24.0), t0 + secs(102)).unwrap();
    let f = a.figures(&key, t0 + secs(102))[0].clone().expect("figure");
    assert_eq!(f.senders, 3);
    // The repeating sender kept only `per_sender` (4) samples: 4 + 1 + 1.
    assert_eq!(f.samples, 6);
    assert_eq!(f.rtt_ms, 20.0);
}

#[test]
fn too_few_samples_make_no_figure_even_from_distinct_senders() {
    let mut a = Aggregator::new(
        regions(),
        AggregatorLimits {
            min_samples: 5,
            min_senders: 3,
            ..Default::default()
        },
    );
    let t0 = Instant::now();
    for d in 1..=4 {
        a.add(&beacon(v4(10, 0, 0, d), 1, 30.0), t0).unwrap();
    }
    let key = NetKey::of_addr(v4(10, 0, 0, 1));
    assert_eq!(a.figures(&key, t0)[1], None);
    a.add(&beacon(v4(10, 0, 0, 5), 1, 30.0), t0).unwrap();
    assert!(a.figures(&key, t0)[1].is_some());
}

#[test]
fn the_figure_is_a_median_robust_to_outliers() {
    let mut a = agg();
    let t0 = Instant::now();
    let rtts = [40.0, 41.0, 42.0, 43.0, 9000.0, 9500.0, 0.5];
    for (i, r) in rtts.iter().enumerate() {
        a.add(&beacon(v4(10, 1, 1, i as u8 + 1), 0, *r), t0)
            .unwrap();
    }
    let f = a.figures(&NetKey::of_addr(v4(10, 1, 1, 1)), t0)[0]
        .clone()
        .unwrap();
    assert_eq!(f.rtt_ms, 42.0);
}

#[test]
fn old_samples_weigh_less_and_the_figure_follows_the_new_ones() {
    let mut a = Aggregator::new(
        regions(),
        AggregatorLimits {
            half_life: secs(60),
            ..Default::default()
        },
    );
    let t0 = Instant::now();
    // Six old samples at 100 ms, then four new ones at 30 ms, ten minutes
    // (ten half-lives) later: by count the median is 100, by decayed weight 30.
    for d in 1..=6 {
        a.add(&beacon(v4(10, 2, 2, d), 0, 100.0), t0).unwrap();
    }
    let later = t0 + secs(600);
    for d in 11..=14 {
        a.add(&beacon(v4(10, 2, 2, d), 0, 30.0), later).unwrap();
    }
    let key = NetKey::of_addr(v4(10, 2, 2, 1));
    let f = a.figures(&key, later)[0].clone().unwrap();
    assert_eq!(f.rtt_ms, 30.0);
    assert_eq!(f.samples, 10);
    // At the time of the old ones alone, it was 100.
    let mut b = Aggregator::new(regions(), a.limits().clone());
    for d in 1..=6 {
        b.add(&beacon(v4(10, 2, 2, d), 0, 100.0), t0).unwrap();
    }
    assert_eq!(b.figures(&key, t0)[0].clone().unwrap().rtt_ms, 100.0);
}

#[test]
fn stale_figures_age_out() {
    let mut a = Aggregator::new(
        regions(),
        AggregatorLimits {
            max_age: secs(3600),
            ..Default::default()
        },
    );
    let t0 = Instant::now();
    for d in 1..=5 {
        a.add(&beacon(v4(10, 3, 3, d), 2, 50.0), t0).unwrap();
    }
    let key = NetKey::of_addr(v4(10, 3, 3, 1));
    assert!(a.figures(&key, t0 + secs(3600))[2].is_some());
    // Past max_age the figure no longer counts, even before expire() runs.
    assert!(a.figures(&key, t0 + secs(3601))[2].is_none());
    assert!(a.snapshot(t0 + secs(3601)).rows.is_empty());
    a.expire(t0 + secs(3601));
    assert!(a.is_empty());
    assert_eq!(a.counters().aged_out, 1);
}

#[test]
fn the_number_of_networks_is_bounded_and_the_oldest_goes() {
    let mut a = Aggregator::new(
        regions(),
        AggregatorLimits {
            max_keys: 3,
            ..Default::default()
        },
    );
    let t0 = Instant::now();
    for n in 1..=3u8 {
        a.add(&beacon(v4(10, n, 0, 1), 0, 10.0), t0 + secs(u64::from(n)))
            .unwrap();
    }
    // Network 1 is refreshed, so network 2 is now the oldest.
    a.add(&beacon(v4(10, 1, 0, 2), 0, 10.0), t0 + secs(10))
        .unwrap();
    a.add(&beacon(v4(10, 4, 0, 1), 0, 10.0), t0 + secs(11))
        .unwrap();
    assert_eq!(a.len(), 3);
    assert_eq!(a.counters().evicted, 1);
    let later = t0 + secs(12);
    let has = |a: &Aggregator, n: u8| {
        a.figures(&NetKey::of_addr(v4(10, n, 0, 1)), later).len() == 3 && a.keys_contains(n)
    };
    assert!(has(&a, 1) && !has(&a, 2) && has(&a, 3) && has(&a, 4));
}

impl Aggregator {
    fn keys_contains(&self, n: u8) -> bool {
        self.keys_for_test()
            .contains(&NetKey::of_addr(v4(10, n, 0, 1)))
    }
}

#[test]
fn absurd_values_and_unknown_regions_are_refused_and_counted() {
    let mut a = agg();
    let t0 = Instant::now();
    let me = v4(10, 9, 9, 9);
    for bad in [f64::NAN, f64::INFINITY, -1.0, 0.0, 0.05, 10_000.5, 1e9] {
        assert_eq!(
            a.add(&beacon(me, 0, bad), t0)
                .map_err(|e| matches!(e, Rejected::Absurd(_))),
            Err(true),
            "{bad}"
        );
    }
    assert_eq!(
        a.add(&beacon(me, 3, 20.0), t0),
        Err(Rejected::UnknownRegion(3))
    );
    let mut zero = beacon(me, 0, 20.0);
    zero.count = 0;
    assert!(a.add(&zero, t0).is_err());
    assert!(a.is_empty(), "nothing kept");
    let c = a.counters();
    assert_eq!((c.absurd, c.unknown_region, c.accepted), (8, 1, 0));
    // The bounds themselves are round trips.
    a.add(&beacon(me, 0, 0.1), t0).unwrap();
    a.add(&beacon(me, 0, 10_000.0), t0).unwrap();
}

#[test]
fn the_feed_stands_for_many_senders() {
    let mut a = agg();
    let t0 = Instant::now();
    let key = NetKey::Asn(64500);
    let s = Sample {
        key,
        region: 1,
        rtt_ms: 75.0,
        sender: Sender::Feed,
        count: 3,
    };
    a.add(&s, t0).unwrap();
    assert!(a.figures(&key, t0)[1].is_none(), "3 of 5 samples");
    a.add(&Sample { count: 2, ..s }, t0).unwrap();
    let f = a.figures(&key, t0)[1].clone().unwrap();
    assert!(f.feed && f.samples == 5 && f.senders == 0);
}

#[test]
fn the_snapshot_is_a_latency_table_the_strategy_reads() {
    let mut a = agg();
    let t0 = Instant::now();
    for d in 1..=5 {
        a.add(&beacon(v4(198, 51, 100, d), 0, 12.0), t0).unwrap();
        a.add(&beacon(v4(198, 51, 100, d), 2, 180.0 + f64::from(d)), t0)
            .unwrap();
    }
    let v6: IpAddr = "2001:db8:7::1".parse().unwrap();
    for i in 1..=5u16 {
        let addr = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 7, 0, 0, 0, 0, i));
        a.add(&beacon(addr, 1, 33.0), t0).unwrap();
    }
    for (key, ms) in [(NetKey::Asn(64500), 50.0), (NetKey::Country(*b"JP"), 60.0)] {
        a.add(
            &Sample {
                key,
                region: 1,
                rtt_ms: ms,
                sender: Sender::Feed,
                count: 10,
            },
            t0,
        )
        .unwrap();
    }
    let now = t0 + secs(40);
    let t = a.snapshot(now);
    assert_eq!(t.rows.len(), 4);
    let loc = Location::default();
    let r = t.row(v4(198, 51, 100, 200), &loc).expect("row") as usize;
    assert_eq!(t.rows[r], vec![Some(12.0), None, Some(183.0)]);
    assert_eq!(
        t.label(r as u32).unwrap_or_default(),
        "measured 198.51.100.0/24: eu-west 12 ms (5 samples from 5 senders, 40 s old); \
         ap-northeast 183 ms (5 samples from 5 senders, 40 s old)"
    );
    let r = t.row(v6, &loc).unwrap() as usize;
    assert_eq!(t.rows[r], vec![None, Some(33.0), None]);
    // Precedence as the static table's: CIDR, then ASN, then country.
    let loc = Location {
        asn: Some(64500),
        country: Some(*b"JP"),
        ..Default::default()
    };
    let r = t.row(v4(192, 0, 2, 1), &loc).unwrap() as usize;
    assert_eq!(t.rows[r][1], Some(50.0));
    assert!(
        t.label(r as u32)
            .unwrap_or_default()
            .contains("from the feed"),
        "{}",
        t.label(r as u32).unwrap_or_default()
    );
    let loc = Location {
        country: Some(*b"JP"),
        ..Default::default()
    };
    let r = t.row(v4(192, 0, 2, 1), &loc).unwrap() as usize;
    assert_eq!(t.rows[r][1], Some(60.0));
    // The handle gives the same table, as an Arc the strategy takes.
    let h = LatencyHandle::new(a);
    assert_eq!(h.snapshot(now).rows.len(), 4);
}

// Hysteresis.

fn rules() -> Hysteresis {
    Hysteresis {
        margin_ms: 5.0,
        margin_pct: 10.0,
        hold: secs(60),
    }
}

#[test]
fn the_first_figures_pick_the_lowest_at_once() {
    let t0 = Instant::now();
    let s = next_winner(
        &Standing::default(),
        &[Some(50.0), Some(20.0), None],
        t0,
        &rules(),
    );
    assert_eq!(s.region, Some(1));
    // A winner that lost its figure is replaced at once.
    let s = next_winner(&s, &[Some(50.0), None, Some(70.0)], t0, &rules());
    assert_eq!(s.region, Some(0));
    // No figures: the winner stays (the estimate decides).
    let s = next_winner(&s, &[None, None, None], t0, &rules());
    assert_eq!(s.region, Some(0));
}

#[test]
fn a_better_region_wins_only_when_held_past_the_margin() {
    let t0 = Instant::now();
    let mut s = Standing {
        region: Some(0),
        challenger: None,
    };
    // 100 vs 80: better by 20 ms and 20%: a challenger, not yet a winner.
    for i in 0..6 {
        s = next_winner(&s, &[Some(100.0), Some(80.0)], t0 + secs(i * 10), &rules());
        assert_eq!(s.region, Some(0), "at {} s", i * 10);
    }
    s = next_winner(&s, &[Some(100.0), Some(80.0)], t0 + secs(60), &rules());
    assert_eq!(s.region, Some(1));
    assert_eq!(s.challenger, None);
}

#[test]
fn both_margins_are_needed() {
    let t0 = Instant::now();
    let s = Standing {
        region: Some(0),
        challenger: None,
    };
    // 6 ms better but only 3%: not a challenger.
    let n = next_winner(&s, &[Some(200.0), Some(194.0)], t0, &rules());
    assert_eq!(n.challenger, None);
    // 20% better but only 4 ms.
    let n = next_winner(&s, &[Some(20.0), Some(16.0)], t0, &rules());
    assert_eq!(n.challenger, None);
    // Both: a challenger.
    let n = next_winner(&s, &[Some(50.0), Some(40.0)], t0, &rules());
    assert_eq!(n.challenger, Some((1, t0)));
}

#[test]
fn figures_alternating_around_the_margin_do_not_move_the_winner() {
    let t0 = Instant::now();
    let mut s = Standing {
        region: Some(0),
        challenger: None,
    };
    // Region 1 alternates between just past the margin (44 vs 50: 6 ms, 12%)
    // and just inside it (47: 3 ms), every 10 s, for an hour.
    for i in 0..360u64 {
        let b = if i % 2 == 0 { 44.0 } else { 47.0 };
        s = next_winner(&s, &[Some(50.0), Some(b)], t0 + secs(i * 10), &rules());
        assert_eq!(s.region, Some(0), "moved at {} s", i * 10);
    }
    // Two regions swapping places each reading: neither holds long enough.
    for i in 0..360u64 {
        let (a, b) = if i % 2 == 0 {
            (80.0, 40.0)
        } else {
            (40.0, 80.0)
        };
        s = next_winner(&s, &[Some(a), Some(b)], t0 + secs(i * 10), &rules());
        assert_eq!(s.region, Some(0), "moved at {} s", i * 10);
    }
}

#[test]
fn the_aggregator_gives_the_winner_of_its_figures() {
    let mut a = agg();
    let t0 = Instant::now();
    for d in 1..=5 {
        a.add(&beacon(v4(10, 7, 7, d), 0, 90.0), t0).unwrap();
        a.add(&beacon(v4(10, 7, 7, d), 2, 30.0), t0).unwrap();
    }
    let key = NetKey::of_addr(v4(10, 7, 7, 1));
    let s = a.winner(&key, &Standing::default(), t0, &rules());
    assert_eq!(s.region, Some(2));
    let held = Standing {
        region: Some(0),
        challenger: None,
    };
    let s = a.winner(&key, &held, t0, &rules());
    assert_eq!((s.region, s.challenger), (Some(0), Some((2, t0))));
}

// Hysteresis on the live table.
mod steady {
    use super::super::*;
    use std::collections::HashMap;
    use std::time::{Duration, Instant};

    fn rules() -> Hysteresis {
        Hysteresis {
            margin_ms: 5.0,
            margin_pct: 10.0,
            hold: Duration::from_secs(60),
        }
    }

    /// The region the policy would pick from a published row: the lowest.
    fn pick(row: &[Option<f32>]) -> usize {
        row.iter()
            .enumerate()
            .filter_map(|(i, f)| Some((i, (*f)?)))
            .min_by(|a, b| a.1.total_cmp(&b.1))
            .map(|(i, _)| i)
            .unwrap()
    }

    #[test]
    fn flapping_figures_never_move_the_published_winner() {
        let names = vec!["a".to_string(), "b".to_string()];
        let key = NetKey::of_addr("203.0.113.1".parse().unwrap());
        let mut s = Steady::new(rules());
        let t0 = Instant::now();
        let mut first = vec![Some(50.0), None];
        s.hold(key, &mut first, &names, t0);
        assert_eq!(pick(&first), 0);
        // b flaps around the margin every 10 s for 10 minutes: never held.
        for i in 1..60u64 {
            let b = if i % 2 == 0 { 40.0 } else { 52.0 };
            let mut row = vec![Some(50.0), Some(b)];
            let note = s.hold(key, &mut row, &names, t0 + Duration::from_secs(i * 10));
            assert_eq!(pick(&row), 0, "round {i}: {row:?}");
            if b < 50.0 {
                let note = note.expect("explained");
                assert!(
                    note.contains("held on a") && note.contains("b 40 ms"),
                    "{note}"
                );
            }
        }
        // b better by the margins without a break for the hold: it moves once.
        let t1 = t0 + Duration::from_secs(600);
        let mut moved_at = None;
        for i in 0..10u64 {
            let mut row = vec![Some(50.0), Some(30.0)];
            s.hold(key, &mut row, &names, t1 + Duration::from_secs(i * 10));
            if pick(&row) == 1 && moved_at.is_none() {
                moved_at = Some(i * 10);
            }
        }
        assert_eq!(moved_at, Some(60));
    }

    #[test]
    fn the_live_snapshot_holds_a_winner_against_a_shared_challenger() {
        let names = vec!["a".to_string(), "b".to_string()];
        let mut agg = Aggregator::new(names.clone(), AggregatorLimits::default());
        let addr = "203.0.113.1".parse().unwrap();
        let key = NetKey::of_addr(addr);
        let t0 = Instant::now();
        for _ in 0..5 {
            let s = Sample {
                key,
                region: 0,
                rtt_ms: 50.0,
                sender: Sender::Probe(addr),
                count: 1,
            };
            agg.add(&s, t0).unwrap();
        }
        let mut steady = Steady::new(rules());
        let t = agg.snapshot_with(t0, &HashMap::new(), Some(&mut steady));
        assert_eq!(t.rows[0], vec![Some(50.0), None]);
        let theirs = Figure {
            rtt_ms: 20.0,
            samples: 9,
            senders: 0,
            feed: false,
            probes: 0,
            site: Some("other".into()),
            newest: t0,
        };
        let shared = HashMap::from([(key, vec![None, Some(theirs)])]);
        let t = agg.snapshot_with(t0 + Duration::from_secs(1), &shared, Some(&mut steady));
        assert_eq!(
            pick(&t.rows[0]),
            0,
            "held: {:?} {}",
            t.rows[0],
            t.label(0).unwrap_or_default()
        );
        assert!(
            t.label(0).unwrap_or_default().contains("shared by other"),
            "{}",
            t.label(0).unwrap_or_default()
        );
        assert!(
            t.label(0).unwrap_or_default().contains("held on a"),
            "{}",
            t.label(0).unwrap_or_default()
        );
        let t = agg.snapshot_with(t0 + Duration::from_secs(62), &shared, Some(&mut steady));
        assert_eq!(
            t.rows[0],
            vec![Some(50.0), Some(20.0)],
            "moved after the hold"
        );
        // Without hysteresis the challenger would win at once.
        let raw = agg.snapshot_with(t0 + Duration::from_secs(1), &shared, None);
        assert_eq!(pick(&raw.rows[0]), 1);
        assert_eq!(steady.len(), 1);
    }
}

/// The refresh looks again only at networks with news, and what it publishes
/// is what a table made from scratch of the same samples would be.
#[test]
fn a_refresh_remakes_only_changed_networks_and_matches_a_full_build() {
    let t0 = Instant::now();
    let mut live = agg();
    let mut steady = Steady::new(Hysteresis::default());
    let none = std::collections::HashMap::new();
    let feed = |n: u8, region: u16, rtt_ms: f64| Sample {
        key: NetKey::of_addr(v4(198, 18, n, 1)),
        region,
        rtt_ms,
        sender: Sender::Feed,
        count: 5,
    };
    let mut all = Vec::new();
    for n in 0..200u8 {
        for r in 0..3u16 {
            let s = feed(n, r, 10.0 + f64::from(n) + f64::from(r) * 7.0);
            live.add(&s, t0).unwrap();
            all.push((s, t0));
        }
    }
    let first = live
        .refresh(t0, &none, Some(&mut steady))
        .expect("a first table");
    assert_eq!(first.rows.len(), 200);
    assert!(
        live.refresh(t0 + secs(10), &none, Some(&mut steady))
            .is_none(),
        "nothing new: no table to publish"
    );
    // One network's figure moves: a table again, the rest as before.
    let s = feed(7, 1, 400.0);
    live.add(&s, t0 + secs(20)).unwrap();
    all.push((s, t0 + secs(20)));
    let now = t0 + secs(30);
    let t = live
        .refresh(now, &none, Some(&mut steady))
        .expect("a changed figure");
    let mut fresh = agg();
    for (s, at) in &all {
        fresh.add(s, *at).unwrap();
    }
    let full = fresh.snapshot(now);
    assert_eq!(t.rows, full.rows);
    let loc = Location::default();
    for n in [0u8, 7, 199] {
        let ip = v4(198, 18, n, 9);
        let (a, b) = (t.row(ip, &loc).unwrap(), full.row(ip, &loc).unwrap());
        assert_eq!(t.label(a), full.label(b), "label of 198.18.{n}.0/24");
        assert_eq!(t.narrowest_overlap(ip, 16), 24);
    }
    assert_eq!(
        t.rows[7][1],
        Some(400.0),
        "the median of 5 at 17 ms and 5 at 400 ms"
    );
    // Every sample ages out: the table empties, once.
    let late = t0 + secs(3700);
    let gone = live
        .refresh(late, &none, Some(&mut steady))
        .expect("aged out");
    assert!(gone.rows.is_empty());
    assert!(
        steady.is_empty(),
        "the hysteresis forgets networks that left"
    );
    assert!(live
        .refresh(late + secs(10), &none, Some(&mut steady))
        .is_none());
}

#[test]
fn remapped_regions_keep_their_samples_and_drop_the_others() {
    let t0 = Instant::now();
    let mut a = agg();
    let feed = |n: u8, region: u16, rtt_ms: f64| Sample {
        key: NetKey::of_addr(v4(198, 18, n, 1)),
        region,
        rtt_ms,
        sender: Sender::Feed,
        count: 5,
    };
    for n in 0..3u8 {
        a.add(&feed(n, 0, 10.0), t0).unwrap();
        a.add(&feed(n, 2, 30.0), t0).unwrap();
    }
    a.add(&feed(9, 1, 20.0), t0).unwrap();
    assert_eq!(a.snapshot(t0).rows.len(), 4);
    // eu-west stays (now second), us-east goes, sa-east is new.
    let limits = AggregatorLimits {
        max_keys: 2,
        ..AggregatorLimits::default()
    };
    let to = a.remap(
        vec!["sa-east".into(), "eu-west".into(), "ap-northeast".into()],
        limits,
    );
    assert_eq!(to, vec![Some(1), None, Some(2)]);
    assert_eq!(a.regions()[1], "eu-west");
    assert_eq!(a.len(), 2, "198.18.9.0/24 had only us-east; then the bound");
    let t = a.snapshot(t0 + secs(1));
    assert_eq!(t.rows, vec![vec![None, Some(10.0), Some(30.0)]; 2]);
    assert!(
        a.add(&feed(1, 0, 5.0), t0 + secs(2)).is_ok(),
        "the new region"
    );
}
