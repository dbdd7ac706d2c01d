#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| labpods_redfish::fuzzing::response_body(data));
