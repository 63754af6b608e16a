//! Where a client is: the operator's CIDR overrides first, then the database. The
//! prefix length of the result is how far the answer holds: the database network,
//! narrowed so that it never spans an override (an ECS scope must not claim a
//! network part of which is located differently).

use std::net::IpAddr;

use super::cidr::{CidrTable, IpNet};
use super::{GeoError, Location, Locator, MAPPED_ID, OVERRIDE_ID};

/// The database (if any) and the operator's overrides.
#[derive(Debug, Default)]
pub struct ClientLocator {
    pub database: Option<Locator>,
    overrides: CidrTable<Location>,
}

impl ClientLocator {
    pub fn new(database: Option<Locator>) -> ClientLocator {
        ClientLocator {
            database,
            overrides: CidrTable::new(),
        }
    }

    /// Pins a network to a location, ahead of the database.
    pub(crate) fn add_override(&mut self, net: IpNet, location: Location) -> Result<(), GeoError> {
        self.overrides.insert(net, location)
    }

    pub fn overrides(&self) -> usize {
        self.overrides.len()
    }

    /// Calls `visit(first address, prefix length, id, location)` for blocks that
    /// cover one family once, in address order (IPv4 in the top 32 bits of the
    /// key), over each of which [`locate`](Self::locate) gives one location (but
    /// for `prefix_len`): the database's networks ([`Locator::networks`]), cut
    /// where an override lies inside one, and wherever `cut(key, len)` says the
    /// caller's own tables need it. Equal ids mean equal locations.
    pub fn blocks(
        &self,
        v6: bool,
        cut: &dyn Fn(u128, u8) -> bool,
        visit: &mut dyn FnMut(u128, u8, u32, &Location),
    ) -> Result<(), GeoError> {
        let mut emit = |key: u128, len: u8, id: u32, loc: &Location| {
            self.cut_block(v6, key, len, id, loc, cut, visit)
        };
        match &self.database {
            Some(db) => db.networks(v6, &mut emit),
            None if v6 => {
                super::visit_cut_at_mapped(0, 0, 0, &Location::default(), &mut emit);
                Ok(())
            }
            None => {
                emit(0, 0, 0, &Location::default());
                Ok(())
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn cut_block(
        &self,
        v6: bool,
        key: u128,
        len: u8,
        id: u32,
        loc: &Location,
        cut: &dyn Fn(u128, u8) -> bool,
        visit: &mut dyn FnMut(u128, u8, u32, &Location),
    ) {
        if id == MAPPED_ID {
            return visit(key, len, id, loc);
        }
        let bits = if v6 { 128 } else { 32 };
        if len < bits && (self.overrides.has_entry_inside(v6, key, len) || cut(key, len)) {
            let half = 1u128 << (127 - len);
            self.cut_block(v6, key, len + 1, id, loc, cut, visit);
            self.cut_block(v6, key | half, len + 1, id, loc, cut, visit);
            return;
        }
        match self.overrides.lookup_block(v6, key) {
            Some((i, o)) => visit(key, len, OVERRIDE_ID + i as u32, o),
            None => visit(key, len, id, loc),
        }
    }

    /// Locates an address. Never fails: an address nobody knows is `Location` with
    /// no fields set.
    pub fn locate(&self, ip: IpAddr) -> Location {
        if let Some((loc, p)) = self.overrides.lookup(ip) {
            let mut l = *loc;
            l.prefix_len = self.overrides.narrowest_overlap(ip, p);
            return l;
        }
        let mut l = match &self.database {
            Some(db) => db.lookup(ip),
            None => Location::default(),
        };
        if !self.overrides.is_empty() {
            l.prefix_len = self.overrides.narrowest_overlap(ip, l.prefix_len);
        }
        l
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn override_wins_and_narrows_the_database_network() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/geo/city.mmdb");
        let db = Locator::open(std::path::Path::new(path), None).unwrap();
        let mut c = ClientLocator::new(Some(db));
        let de = Location {
            country: Some(*b"DE"),
            continent: Some(*b"EU"),
            ..Location::default()
        };
        // 198.18.0.0/16 is US-VA in the fixture; pin a /24 inside it to DE.
        c.add_override("198.18.5.0/24".parse().unwrap(), de)
            .unwrap();
        let inside = c.locate("198.18.5.9".parse().unwrap());
        assert_eq!(inside.country, Some(*b"DE"));
        assert_eq!(inside.prefix_len, 24);
        let outside = c.locate("198.18.200.1".parse().unwrap());
        assert_eq!(outside.country, Some(*b"US"));
        assert!(outside.prefix_len > 16 && outside.prefix_len <= 24);
        let elsewhere = c.locate("192.0.2.1".parse().unwrap());
        assert_eq!(elsewhere.country, Some(*b"JP"));
        assert_eq!(elsewhere.prefix_len, 24);
    }

    #[test]
    fn no_database_means_unknown_everywhere() {
        let c = ClientLocator::new(None);
        let l = c.locate("8.8.8.8".parse().unwrap());
        assert_eq!(l, Location::default());
        assert_eq!(l.prefix_len, 0);
    }
}
