#![no_main]
// The hub's end of a connection fed any bytes, with time passing: never a panic, always closes.
libfuzzer_sys::fuzz_target!(|data: &[u8]| vidcast_proto::fuzzing::hub_session(data));
