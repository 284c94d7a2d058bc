#![no_main]
// Any byte stream, in data-driven chunks: never a panic, never a buffer past the limit.
libfuzzer_sys::fuzz_target!(|data: &[u8]| vidcast_proto::fuzzing::decode_stream(data, 1 << 16));
