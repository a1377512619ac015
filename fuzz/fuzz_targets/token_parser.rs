//! Fuzzes `evidence::parse_tokens`: any string either fails with an error naming a token, or
//! gives tokens that print back to a string parsing to the same tokens.
#![no_main]

use jghm::evidence::parse_tokens;
use jghm::model::Part;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    match parse_tokens(Part::Text, text) {
        Ok(tokens) => {
            assert!(!tokens.is_empty());
            let printed = tokens.iter().map(|t| t.to_string()).collect::<Vec<_>>().join(",");
            assert_eq!(parse_tokens(Part::Text, &printed).unwrap(), tokens);
            assert_eq!(tokens.len(), text.split(',').count());
        }
        Err(e) => {
            let message = e.to_string();
            assert!(!message.is_empty() && !message.contains('\n'));
        }
    }
});
