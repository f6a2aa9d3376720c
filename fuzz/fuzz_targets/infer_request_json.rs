#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| mlserver_fuzz::infer_request_json(data));
