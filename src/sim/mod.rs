//! Loopback simulators of the outside services, shared by `tempadmin demo`,
//! the integration tests and the benchmark. They follow the real APIs'
//! documented shapes and record every call.

pub mod jumpcloud;
pub mod slack;
pub mod slack_sender;
