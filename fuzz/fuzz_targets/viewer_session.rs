#![no_main]
// A viewer's end of a connection fed any bytes as the hub's, acking frames: never a panic.
libfuzzer_sys::fuzz_target!(|data: &[u8]| vidcast_proto::fuzzing::viewer_session(data));
