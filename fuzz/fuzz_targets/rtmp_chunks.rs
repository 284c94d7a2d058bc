#![no_main]
// A media server's chunk stream, any bytes: never a panic, memory bounded by what arrived.
libfuzzer_sys::fuzz_target!(|data: &[u8]| vidcast_rtmp::fuzzing::chunk_reader(data));
