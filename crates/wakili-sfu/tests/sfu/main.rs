//! The SFU end to end: real UDP (and ICE-TCP) on 127.0.0.1, str0m sessions as the browsers,
//! synthetic VP8 simulcast and Opus media.

mod harness;

use wakili_testkit::webrtc as client;

mod forwarding;
mod ice_tcp;
mod layers;
mod lifecycle;
mod listening;
mod membership;
mod pause;
mod recording;
mod refusals;
mod speaker;
