//! The command grammar (`domain::command`, `domain::duration`): any text is
//! a command, help or a named error, never a panic; every duration that
//! parses is within a second and a week and displays as text that parses
//! back to it; the words after it are the text's own words.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tempadmin::domain::command::Command;
use tempadmin::domain::duration::GrantDuration;

fn check_duration(d: GrantDuration) {
    assert!((1..=GrantDuration::MAX_SECS).contains(&d.as_secs()), "{d}");
    assert_eq!(GrantDuration::parse(&d.to_string()), Ok(d));
}

fuzz_target!(|text: &str| {
    if let Ok(d) = GrantDuration::parse(text) {
        check_duration(d);
    }
    match Command::parse(text) {
        Ok(Command::Request { duration, words }) => {
            check_duration(duration);
            let all: Vec<&str> = text.split_whitespace().collect();
            assert_eq!(&all[1..], words.as_slice());
            assert_eq!(GrantDuration::parse(all[0]), Ok(duration));
        }
        Ok(_) => {}
        Err(e) => {
            // The error names the first word, as typed.
            assert_eq!(Some(e.0.as_str()), text.split_whitespace().next());
        }
    }
});
