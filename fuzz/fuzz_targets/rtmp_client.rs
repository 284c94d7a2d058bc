#![no_main]
// The restream client after the handshake, fed any bytes as the server's: never a panic.
libfuzzer_sys::fuzz_target!(|data: &[u8]| vidcast_rtmp::fuzzing::client_session(data));
