//! The rollout state machine (see issue 5).
