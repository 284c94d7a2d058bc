#![no_main]
// Any bytes as an original-client stream: never a panic, never a buffer or frame past the limit.
libfuzzer_sys::fuzz_target!(|data: &[u8]| vidcast_legacy::fuzzing::decode_stream(data, 1 << 16));
