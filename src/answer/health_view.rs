//! The health view the query path reads: probe results from the health table,
//! operator overrides of regions and endpoints, weights and dials — all as atomics, so a
//! query takes no lock. Built for each snapshot; refreshed in place when an
//! operator changes an override.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};

use crate::health::{
    CheckSpec, HealthTable, Override, PersistedState, ShedDials, TargetId, TargetKey,
};
use crate::policy::ZoneSteering;
use crate::policy::{dial, AddrAnswer, Endpoint, HealthView, NO_HEALTH};

const NONE: u8 = 0;
const FORCE_UP: u8 = 1;
const FORCE_DOWN: u8 = 2;
const DRAIN: u8 = 3;
/// No operator override, and a pushed verdict says down (`health::Verdicts`).
const PUSHED_DOWN: u8 = 4;

/// Operator weights, kept across reloads and persisted with the health state.
pub type Weights = Arc<Mutex<BTreeMap<String, u32>>>;

/// Operator traffic dials in percent (0-100), by the same names as weights;
/// kept across reloads and persisted with the health state.
pub type Dials = Arc<Mutex<BTreeMap<String, u8>>>;

/// Names an operator uses for an endpoint: `endpoint:<name>/<region>` and
/// `region:<region>`.
#[derive(Debug, Clone)]
pub struct EndpointNames {
    pub endpoint: String,
    pub region: String,
}

/// Assigns health slots and endpoint ids across all zones; returns the probe
/// targets (slot -> key) and the names of each endpoint id.
/// `checks[i]` are the health checks zone `i`'s endpoints refer to by index.
pub(crate) fn assign(
    zones: &mut [ZoneSteering],
    checks: &[Vec<CheckSpec>],
) -> (Vec<TargetKey>, Vec<EndpointNames>) {
    let mut targets: Vec<TargetKey> = Vec::new();
    let mut index: BTreeMap<String, u32> = BTreeMap::new();
    let mut names = Vec::new();
    for (zi, zone) in zones.iter_mut().enumerate() {
        let checks: &[CheckSpec] = checks.get(zi).map_or(&[], |c| c.as_slice());
        let regions: Vec<String> = zone.policy.regions.iter().map(|r| r.name.clone()).collect();
        for p in zone.names.iter_mut() {
            for e in p.endpoints.iter_mut() {
                e.health_id = names.len() as u32;
                names.push(EndpointNames {
                    endpoint: format!("endpoint:{}", e.label),
                    region: format!(
                        "region:{}",
                        regions.get(e.region as usize).cloned().unwrap_or_default()
                    ),
                });
                // Local probe index -> global slot; one slot per distinct target.
                let mut local = Vec::new();
                for pr in &e.probes {
                    let Some(check) = checks.get(pr.check as usize) else {
                        local.push(NO_HEALTH);
                        continue;
                    };
                    let key = TargetKey {
                        check: check.clone(),
                        addr: pr.addr,
                    };
                    let k = format!("{key:?}");
                    let slot = *index.entry(k).or_insert_with(|| {
                        targets.push(key);
                        (targets.len() - 1) as u32
                    });
                    local.push(slot);
                }
                let map = |h: u32| local.get(h as usize).copied().unwrap_or(NO_HEALTH);
                let remap = |list: &mut Vec<AddrAnswer>| {
                    for a in list.iter_mut() {
                        if a.health != NO_HEALTH {
                            a.health = map(a.health);
                        }
                    }
                };
                remap(&mut e.a_each);
                remap(&mut e.aaaa_each);
                for (i, pr) in e.probes.iter_mut().enumerate() {
                    pr.slot = map(i as u32);
                }
                // The lower-TTL twin answers for the same endpoint.
                if let Some(d) = e.degraded.as_mut() {
                    d.health_id = e.health_id;
                    remap(&mut d.a_each);
                    remap(&mut d.aaaa_each);
                    d.probes = e.probes.clone();
                }
            }
        }
    }
    (targets, names)
}

/// Health, overrides and weights for one snapshot.
#[derive(Debug)]
pub struct HealthBridge {
    table: Arc<HealthTable>,
    /// Probe slot -> the table's id for it.
    slots: Vec<Option<TargetId>>,
    /// Endpoint id -> override in force (endpoint's own, else its region's).
    overrides: Vec<AtomicU8>,
    /// Endpoint id -> operator weight, or u32::MAX for the file's.
    weights: Vec<AtomicU32>,
    /// Endpoint id -> dial in force: the lower of its own and its region's.
    dials: Vec<AtomicU8>,
    names: Vec<EndpointNames>,
    operator_weights: Weights,
    operator_dials: Dials,
    /// The dials load shedding asks for (`[shed.REGION]`), and endpoint id ->
    /// its region's cell there (none when the region does not shed; empty when
    /// no region does): the dial in force is the lower of it and `dials`.
    shed: Arc<ShedDials>,
    shed_slots: Vec<u16>,
}

/// An endpoint whose region does not shed.
const NO_SHED: u16 = u16::MAX;

impl HealthBridge {
    pub fn new(
        table: Arc<HealthTable>,
        targets: &[TargetKey],
        names: Vec<EndpointNames>,
        operator_weights: Weights,
        operator_dials: Dials,
    ) -> HealthBridge {
        let slots = targets.iter().map(|k| table.id(k)).collect();
        let b = HealthBridge {
            overrides: names.iter().map(|_| AtomicU8::new(NONE)).collect(),
            weights: names.iter().map(|_| AtomicU32::new(u32::MAX)).collect(),
            dials: names.iter().map(|_| AtomicU8::new(dial::FULL)).collect(),
            table,
            slots,
            names,
            operator_weights,
            operator_dials,
            shed: Arc::new(ShedDials::new([])),
            shed_slots: Vec::new(),
        };
        b.refresh();
        b
    }

    /// The bridge reading load shedding's dials too: each endpoint's dial in
    /// force is the lowest of its own, its region's and its region's shed dial.
    /// The operator's dials are never written by the shedder.
    pub fn with_shed(mut self, shed: Arc<ShedDials>) -> HealthBridge {
        self.shed_slots = self
            .names
            .iter()
            .map(|n| {
                let region = n.region.strip_prefix("region:").unwrap_or(&n.region);
                shed.index(region)
                    .and_then(|i| u16::try_from(i).ok())
                    .unwrap_or(NO_SHED)
            })
            .collect();
        if self.shed_slots.iter().all(|&s| s == NO_SHED) {
            self.shed_slots.clear();
        }
        self.shed = shed;
        crate::health::bump_epoch();
        self
    }

    /// The shed dial of endpoint id `i`, where its region sheds.
    #[inline]
    fn shed_dial(&self, i: usize) -> Option<u8> {
        match self.shed_slots.get(i) {
            Some(&s) if s != NO_SHED => Some(self.shed.at(s as usize)),
            _ => None,
        }
    }

    /// A bridge with no checks: every endpoint up unless overridden.
    pub fn empty() -> HealthBridge {
        HealthBridge::new(
            Arc::new(HealthTable::new(Vec::new())),
            &[],
            Vec::new(),
            Weights::default(),
            Dials::default(),
        )
    }

    pub fn table(&self) -> &Arc<HealthTable> {
        &self.table
    }

    pub(crate) fn operator_weights(&self) -> &Weights {
        &self.operator_weights
    }

    pub(crate) fn operator_dials(&self) -> &Dials {
        &self.operator_dials
    }

    /// The dial in force for each region name (`region:NAME`), where one is set
    /// on it or on any of its endpoints: the lowest among its endpoints.
    pub fn region_dials(&self) -> BTreeMap<String, u8> {
        let mut out: BTreeMap<String, u8> = BTreeMap::new();
        for (i, n) in self.names.iter().enumerate() {
            let d = self.dials[i].load(Ordering::Relaxed);
            let d = self.shed_dial(i).map_or(d, |s| d.min(s));
            let e = out.entry(n.region.clone()).or_insert(dial::FULL);
            *e = (*e).min(d);
        }
        out
    }

    /// What the state file keeps: overrides, weights and last known health.
    pub(crate) fn persisted(&self) -> PersistedState {
        let mut st = PersistedState::from_table(&self.table);
        if let Ok(w) = self.operator_weights.lock() {
            st.weights = w.clone();
        }
        if let Ok(d) = self.operator_dials.lock() {
            st.dials = d.clone();
        }
        st
    }

    /// Every endpoint and region name that an override can address.
    pub(crate) fn known_names(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .names
            .iter()
            .flat_map(|n| [n.endpoint.clone(), n.region.clone()])
            .collect();
        v.sort();
        v.dedup();
        v
    }

    /// Recomputes the atomics from the table's named overrides, the pushed
    /// verdicts in force now, and the weights.
    pub fn refresh(&self) {
        let named = self.table.named_overrides();
        let verdicts = self.table.verdicts().live(std::time::SystemTime::now());
        // The endpoint's own verdict, else its region's, as for overrides.
        let pushed_down = |n: &EndpointNames| {
            verdicts
                .get(&n.endpoint)
                .or_else(|| verdicts.get(&n.region))
                .is_some_and(|p| !p.health.is_up())
        };
        let weights = self
            .operator_weights
            .lock()
            .map(|w| w.clone())
            .unwrap_or_default();
        let dials = self
            .operator_dials
            .lock()
            .map(|d| d.clone())
            .unwrap_or_default();
        for (i, n) in self.names.iter().enumerate() {
            let o = match named.get(&n.endpoint) {
                Some(o) if !o.is_none() => *o,
                _ => named.get(&n.region).copied().unwrap_or_default(),
            };
            let v = match o {
                Override::None if pushed_down(n) => PUSHED_DOWN,
                Override::None => NONE,
                Override::ForceUp => FORCE_UP,
                Override::ForceDown => FORCE_DOWN,
                Override::Drain => DRAIN,
            };
            self.overrides[i].store(v, Ordering::Relaxed);
            let w = weights
                .get(&n.endpoint)
                .or_else(|| weights.get(&n.region))
                .copied()
                .unwrap_or(u32::MAX);
            self.weights[i].store(w, Ordering::Relaxed);
            let own = dials.get(&n.endpoint).copied().unwrap_or(dial::FULL);
            let region = dials.get(&n.region).copied().unwrap_or(dial::FULL);
            self.dials[i].store(own.min(region).min(dial::FULL), Ordering::Relaxed);
        }
        crate::health::bump_epoch();
    }

    fn slot_up(&self, slot: u32) -> bool {
        if slot == NO_HEALTH {
            return true;
        }
        match self.slots.get(slot as usize).copied().flatten() {
            Some(id) => self.table.is_up(id),
            None => true,
        }
    }

    /// The override in force for an endpoint: its own, else its region's.
    pub(crate) fn override_in_force(&self, e: &Endpoint) -> Override {
        match self.override_of(e) {
            FORCE_UP => Override::ForceUp,
            FORCE_DOWN => Override::ForceDown,
            DRAIN => Override::Drain,
            _ => Override::None,
        }
    }

    /// Whether a pushed verdict takes the endpoint out (no override being in force).
    pub(crate) fn pushed_down(&self, e: &Endpoint) -> bool {
        self.override_of(e) == PUSHED_DOWN
    }

    /// The stable keys of the probe targets an endpoint's health comes from, as
    /// `/status` names them under `targets`.
    pub(crate) fn target_keys(&self, e: &Endpoint) -> Vec<String> {
        e.probes
            .iter()
            .filter_map(|p| self.slots.get(p.slot as usize).copied().flatten())
            .filter_map(|id| self.table.key(id))
            .map(|k| k.stable_key())
            .collect()
    }

    fn override_of(&self, e: &Endpoint) -> u8 {
        self.overrides
            .get(e.health_id as usize)
            .map(|a| a.load(Ordering::Relaxed))
            .unwrap_or(NONE)
    }
}

impl HealthView for HealthBridge {
    fn endpoint_up(&self, e: &Endpoint) -> bool {
        match self.override_of(e) {
            FORCE_UP => return true,
            FORCE_DOWN | DRAIN | PUSHED_DOWN => return false,
            _ => {}
        }
        if e.probes.is_empty() {
            return true;
        }
        let addrs = e.a_each.len() + e.aaaa_each.len();
        if addrs == 0 {
            // A CNAME endpoint: its probe decides.
            return e.probes.iter().any(|p| self.slot_up(p.slot));
        }
        let up = e
            .a_each
            .iter()
            .chain(e.aaaa_each.iter())
            .filter(|a| self.slot_up(a.health))
            .count();
        up as u32 >= e.min_healthy
    }

    fn address_up(&self, a: &AddrAnswer) -> bool {
        self.slot_up(a.health)
    }

    fn forced_up(&self, e: &Endpoint) -> bool {
        self.override_of(e) == FORCE_UP
    }

    fn drained(&self, e: &Endpoint) -> bool {
        self.override_of(e) == DRAIN
    }

    fn dial(&self, e: &Endpoint) -> u8 {
        let i = e.health_id as usize;
        let own = self
            .dials
            .get(i)
            .map_or(dial::FULL, |d| d.load(Ordering::Relaxed));
        self.shed_dial(i).map_or(own, |s| own.min(s))
    }

    fn dial_note(&self, e: &Endpoint) -> Option<String> {
        let i = e.health_id as usize;
        let slot = *self.shed_slots.get(i).filter(|&&s| s != NO_SHED)?;
        let own = self
            .dials
            .get(i)
            .map_or(dial::FULL, |d| d.load(Ordering::Relaxed));
        let shed = self.shed.at(slot as usize);
        Some(format!(
            "the lowest of the operator's (or a ramp's) {own}% and shedding's {shed}% serves ({})",
            self.shed.note(slot as usize)
        ))
    }

    fn weight(&self, e: &Endpoint) -> u32 {
        match self
            .weights
            .get(e.health_id as usize)
            .map(|w| w.load(Ordering::Relaxed))
        {
            Some(w) if w != u32::MAX => w,
            _ => e.weight,
        }
    }
}
