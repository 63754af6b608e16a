//! Any text as a master file. No panic, and every record read comes back the same:
//! its RDATA formatted to presentation form and parsed again gives the same wire bytes.

#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use signpost::zone::master::{parse_text, split_fields, MasterOptions};
use signpost::zone::name::Name;
use signpost::zone::rdata::{format_rdata, parse_rdata, type_mnemonic};
use signpost_fuzz::include_may_escape;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if include_may_escape(&text) {
        return;
    }
    let Ok(origin) = Name::parse("example.test.", None) else {
        return;
    };
    let opts = MasterOptions {
        origin,
        default_ttl: Some(300),
    };
    let (records, _errors) = parse_text(
        &text,
        Path::new("fuzz.zone"),
        1,
        Path::new("/nonexistent"),
        &opts,
    );
    // Names in formatted RDATA are absolute, so the origin of the second parse does
    // not matter; the root makes a relative name that slipped through visible.
    let root = Name::root();
    for r in &records {
        let shown = format_rdata(r.rtype, &r.rdata);
        let tname = type_mnemonic(r.rtype);
        let fields = split_fields(&shown)
            .unwrap_or_else(|e| panic!("{tname} {shown:?} does not split into fields: {e}"));
        let again = parse_rdata(r.rtype, &fields, &root).unwrap_or_else(|e| {
            panic!(
                "{tname} {shown:?} (from {:02x?}) does not parse back: {e}",
                r.rdata
            )
        });
        assert_eq!(
            again, r.rdata,
            "{tname} {shown:?} parses back to different RDATA"
        );
    }
});
