//! Opens arbitrary bytes as an index-header and as an index to build one from; must never
//! panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use thanos_tsdb::index_header::{IndexHeader, build_index_header};

fuzz_target!(|data: &[u8]| {
    if let Ok(h) = IndexHeader::from_bytes(data.to_vec().into(), "index-header", 4) {
        for name in h.label_names() {
            if let Ok(values) = h.label_values(name) {
                for v in values {
                    let _ = h.postings_range(name, v);
                }
            }
        }
        let _ = h.symbol(0);
    }
    let _ = build_index_header(data.len() as u64, |a, b| {
        data.get(a as usize..b as usize)
            .map(<[u8]>::to_vec)
            .ok_or_else(|| thanos_tsdb::Error::invalid("index", "range outside the data"))
    });
});
