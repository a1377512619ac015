//! Fuzzes `Jghm::from_json`: any bytes either fail with an error or give a valid model that
//! survives a round trip through JSON and an upward BP pass without panicking.
#![no_main]

use jghm::bp;
use jghm::model::Jghm;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(model) = Jghm::from_json(text) else { return };
    // A valid model writes JSON that reads back as the same model.
    let again = Jghm::from_json(&model.to_json()).expect("a valid model's JSON is valid");
    assert_eq!(again.to_json(), model.to_json());
    // Inference on it never panics, and log p is a log-probability or -inf, never NaN or > 0.
    if model.tree().nodes.len() <= 10_000 {
        let x = vec![0; model.image_len()];
        let y = vec![model.text_vocab() - 1; model.text_len()];
        for ll in [bp::log_px(&model, &x), bp::log_py(&model, &y), bp::log_pxy(&model, &x, &y)].map(|r| r.expect("valid tokens")) {
            assert!(!ll.is_nan() && ll <= 1e-9, "log-likelihood {ll}");
        }
    }
});
