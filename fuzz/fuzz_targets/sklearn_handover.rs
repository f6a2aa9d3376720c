#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| mlserver_fuzz::sklearn_handover(data));
