//! Decodes arbitrary bytes as a chunk segment and its chunks as XOR; must never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use thanos_model::chunkenc::float_iterator;
use thanos_tsdb::chunks::{ChunkReader, decode_chunk};

fuzz_target!(|data: &[u8]| {
    if let Ok(c) = decode_chunk(data, 0)
        && let Ok(it) = float_iterator(c.encoding, c.data)
    {
        for _ in it {}
    }
    let Ok(r) = ChunkReader::from_segments(vec![("chunks/000001".into(), data.to_vec().into())])
    else {
        return;
    };
    for off in 0..data.len().min(256) as u64 {
        if let Ok(c) = r.chunk(off)
            && let Ok(it) = float_iterator(c.encoding, c.data)
        {
            for _ in it {}
        }
    }
});
