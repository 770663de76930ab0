//! Pure decision logic: samples, previous state and `now` in; a decision and its reasons out.
//! Nothing here talks to a server or reads the wall clock.

pub mod contingency;
pub mod rollout;
pub mod scaling;
