//! Opens arbitrary bytes as an index and exercises every read path; must never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use thanos_model::Matcher;
use thanos_tsdb::index::IndexReader;

fuzz_target!(|data: &[u8]| {
    let Ok(ix) = IndexReader::from_bytes(data.to_vec().into(), "index") else {
        return;
    };
    let _ = ix.symbols();
    for name in ix.label_names() {
        if let Ok(values) = ix.label_values(name) {
            for v in values {
                let _ = ix.postings(name, v);
            }
        }
    }
    if let Ok(all) = ix.all_postings() {
        for r in all.into_iter().take(1000) {
            let _ = ix.series(r);
        }
    }
    let _ = ix.postings_for_matchers(&[Matcher::equal("a", "b")]);
    let _ = ix.symbol_ref("a");
});
