//! STUB
use super::name::Name;
pub fn type_mnemonic(t: u16) -> String { format!("TYPE{t}") }
pub fn rdata_target(rtype: u16, rdata: &[u8]) -> Option<Name> {
    match rtype { 2 | 5 | 12 | 39 => Name::from_wire(rdata), 15 => Name::from_wire(rdata.get(2..)?), 33 => Name::from_wire(rdata.get(6..)?), _ => None }
}
